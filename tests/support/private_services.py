"""A private Mosquitto and a private PostgreSQL that a test or a bench can stop and start.

Fault tests and benches need servers of their own: one they may restart, kill or starve
without touching anyone else's. `PrivateMosquitto` runs the broker with the limits of
`deploy/mosquitto.conf` (the queues and in-flight window gridwatch's delivery relies on) on
a free port of 127.0.0.1, anonymous or with a password file and ACL, with persistence on
in its own directory, so a restart keeps the persistent sessions and their queued messages
as a production broker does.
`PrivatePostgres` is the embedded PostgreSQL (`gridwatch.store.embedded`), which keeps its
port across restarts and runs as an unprivileged user when started as root.

`GridwatchProcess` runs a gridwatch command as production runs it, a child process with
its own environment, for the fault tests and the benches alike.

The fault tests and the benches (`bench/soak.py`, `bench/ingest.py`) use them alike; they
need gridwatch and the standard library, not pytest.
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

from gridwatch.errors import ServiceUnavailable
from gridwatch.ingest.embedded_broker import mosquitto_binary as installed_mosquitto
from gridwatch.store.embedded import EmbeddedPostgres
from tests.support.ports import free_port, listening

PrivatePostgres = EmbeddedPostgres  # start(), stop(mode="immediate"), start() on the same port

# The checkout's broker configuration.
DEPLOY_CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto.conf"

# What a private broker must not take from deploy/mosquitto.conf: where it listens, its
# files (passwords, ACL, TLS), log and data paths, the user it runs as. Everything else
# (the limits, and who may connect and as what) is kept as is.
_PRIVATE_OVERRIDES = {
    "listener", "port", "bind_address", "password_file", "acl_file",
    "cafile", "capath", "certfile", "keyfile", "tls_version", "require_certificate",
    "persistence", "persistence_location", "log_dest", "user", "pid_file", "include_dir",
}  # fmt: skip
# An anonymous private broker also drops these: it lets anyone in, and a client without a
# user name has no name to be given as its client id.
_ANONYMOUS_OVERRIDES = {"allow_anonymous", "use_username_as_clientid"}


def mosquitto_binary() -> str:
    """Where mosquitto is; ServiceUnavailable when it is not installed."""
    found = installed_mosquitto()
    if found is None:
        raise ServiceUnavailable("mosquitto is not installed (apt install mosquitto)")
    return found


def private_config(
    config: Path,
    port: int,
    workdir: Path,
    *,
    password_file: Path | None = None,
    acl_file: Path | None = None,
) -> tuple[str, list[str]]:
    """`config`'s text adapted to a private broker on `port` with its data in `workdir`;
    and the limits it kept (the `max_…` lines).

    Without `password_file` the broker is anonymous; with it, it checks users and the ACL
    as `config` says, with these files."""
    dropped = _PRIVATE_OVERRIDES if password_file else _PRIVATE_OVERRIDES | _ANONYMOUS_OVERRIDES
    kept = []
    for line in config.read_text().splitlines():
        words = line.split()
        if words and not line.startswith("#") and words[0] not in dropped:
            kept.append(line)
    if password_file is None:
        access = ["allow_anonymous true"]  # loopback only, for tests and benches
    else:
        access = [f"password_file {password_file}"]
        access += [f"acl_file {acl_file}"] if acl_file else []
    # The listener comes first: the per-listener options kept (use_username_as_clientid)
    # belong to the listener above them, and before any they would open a default one on 1883.
    lines = [
        f"listener {port} 127.0.0.1",
        *kept,
        *access,
        "persistence true",
        f"persistence_location {workdir}/",
        f"log_dest file {workdir}/mosquitto.log",
        # Run as root, mosquitto switches to its own user, who cannot write the directory.
        f"user {pwd.getpwuid(os.geteuid()).pw_name}",
    ]
    return "\n".join(lines) + "\n", [k for k in kept if k.startswith("max_")]


class PrivateMosquitto:
    """Mosquitto on a free port with persistence in `workdir`; restartable on the same port.

    Anonymous, or with `password_file` (and `acl_file`) checking users as `config` says."""

    def __init__(
        self,
        workdir: Path,
        config: Path = DEPLOY_CONFIG,
        *,
        password_file: Path | None = None,
        acl_file: Path | None = None,
    ) -> None:
        if not config.exists():
            raise ServiceUnavailable(f"no broker configuration at {config}")
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        text, self.limits = private_config(
            config, self.port, self.workdir, password_file=password_file, acl_file=acl_file
        )
        self.config_path = self.workdir / "mosquitto.conf"
        self.config_path.write_text(text)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def user_url(self, user: str, password: str) -> str:
        """The broker's URL with a user's credentials."""
        return f"mqtt://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "mosquitto.log"

    def start(self, timeout_s: float = 10.0) -> str:
        """Start the broker and wait until it accepts connections; returns its URL."""
        # The installed mosquitto with a configuration written here; no shell.
        self.process = subprocess.Popen(
            [mosquitto_binary(), "-c", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout_s
        while True:
            if listening(self.port):
                return self.url
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = (
                    self.log_path.read_text(errors="replace")[-2000:]
                    if self.log_path.exists()
                    else ""
                )
                raise ServiceUnavailable(f"mosquitto did not start:\n{tail}")
            time.sleep(0.05)

    def stop(self, kill: bool = False) -> None:
        """Stop the broker: SIGTERM (it saves its sessions first) or, with `kill`, SIGKILL
        (a crash: what came since the last autosave is gone)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def restart(self) -> None:
        """Stop and start again on the same port with the same persistence."""
        self.stop()
        self.start()

    def __enter__(self) -> PrivateMosquitto:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def rss_mb(pid: int) -> float | None:
    """Resident memory of a process, in MB (Linux /proc); None when it cannot be read."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


class GridwatchProcess:
    """`python -m gridwatch ARGS…` as a child process, its output appended to a log file."""

    def __init__(self, env: dict[str, str], args: list[str], log_path: Path) -> None:
        self.log_path = log_path
        with open(log_path, "ab") as log:
            # This interpreter running gridwatch with arguments made by the caller; no shell.
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gridwatch", *args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int:
        """SIGTERM (gridwatch drains and disconnects), then SIGKILL after 30 s."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
