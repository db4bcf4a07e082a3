"""Broker credentials of devices: random passwords and Mosquitto password file lines.

A line is `user:$7$101$SALT$HASH`, the format `mosquitto_passwd` 2.0 writes by default:
PBKDF2-HMAC-SHA512 with 101 iterations, a 12-byte salt and a 64-byte hash, both base64.
The passwords are 32 random characters (192 bits), so the small iteration count the broker
pays at every CONNECT costs an attacker nothing they could use.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import secrets
import tempfile
from pathlib import Path

from gridwatch.errors import ConfigError, InputFileError

PBKDF2_ITERATIONS = 101
SALT_BYTES = 12
MAX_USER_LENGTH = 128
# `/`, `+` and `#` would let an ACL pattern (gw/meter/%u) reach other topics, `:` ends the
# user name in the password file, and `$` starts the broker's own topics.
_FORBIDDEN = frozenset("/+#:$")
# The gridwatch services' own broker users (gridwatch-ingest-0, gridwatch-alerts, ...): the
# broker makes a user name the client id, so a device by such a name would be a service.
SERVICE_USER_PREFIX = "gridwatch"


def new_password() -> str:
    """A strong random password for one device, safe to type and to put in a URL."""
    return secrets.token_urlsafe(24)


def password_hash(password: str, salt: bytes | None = None) -> str:
    """The `$7$` PBKDF2-SHA512 hash Mosquitto 2.0 checks a password against."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS)
    encode = base64.b64encode
    return f"$7${PBKDF2_ITERATIONS}${encode(salt).decode()}${encode(digest).decode()}"


def check_broker_user(name: str, what: str) -> str:
    """A device or worker id usable as a broker user and a topic level; else InputFileError."""
    if not name or len(name) > MAX_USER_LENGTH:
        raise InputFileError(f"{what} must be 1 to {MAX_USER_LENGTH} characters")
    bad = sorted({c for c in name if c in _FORBIDDEN or c.isspace() or not c.isprintable()})
    if bad:
        shown = " ".join(repr(c) for c in bad)
        raise InputFileError(
            f"{what} {name!r} cannot be a broker user: it contains {shown} "
            "(no / + # : $, spaces or control characters)"
        )
    if name.lower().startswith(SERVICE_USER_PREFIX):
        raise InputFileError(
            f"{what} {name!r} cannot be a broker user: names starting with "
            f"{SERVICE_USER_PREFIX!r} belong to gridwatch's own services"
        )
    return name


def set_password_line(path: Path, user: str, line: str) -> bool:
    """Replace `user`'s line in a password file, or append it; True if it was replaced."""
    lines = _read_lines(path)
    kept = [existing for existing in lines if _user_of(existing) != user]
    _write_lines(path, [*kept, line])
    return len(kept) != len(lines)


def remove_password_line(path: Path, user: str) -> bool:
    """Remove `user`'s line from a password file; True if there was one."""
    lines = _read_lines(path)
    kept = [existing for existing in lines if _user_of(existing) != user]
    if len(kept) != len(lines):
        _write_lines(path, kept)
    return len(kept) != len(lines)


def password_file_users(path: Path) -> set[str]:
    """The users a password file has a line for."""
    return {user for line in _read_lines(path) if (user := _user_of(line))}


def _user_of(line: str) -> str | None:
    user, colon, _ = line.partition(":")
    return user if colon and not line.startswith("#") else None


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ConfigError(f"cannot read the password file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"the password file {path} is not text: {exc.reason}") from None


def _write_lines(path: Path, lines: list[str]) -> None:
    """Write the whole file anew beside the old one and rename it over: the broker, reloading
    at any moment, reads either the old file or the new one, never half of one."""
    try:
        previous = path.stat()
    except FileNotFoundError:
        previous = None
    except OSError as exc:
        raise ConfigError(f"cannot use the password file {path}: {exc.strerror or exc}") from None
    try:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as exc:
        raise ConfigError(f"cannot write the password file {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write("".join(f"{line}\n" for line in lines))
        # Keep the broker able to read it: the old file's mode and owner, or 0600 for a new one.
        if previous is not None:
            os.chmod(temporary, previous.st_mode & 0o7777)
            if os.geteuid() == 0:
                os.chown(temporary, previous.st_uid, previous.st_gid)
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise ConfigError(f"cannot write the password file {path}: {exc.strerror or exc}") from None
