"""The broker of the embedded defaults (`gridwatch demo`, a command without
GRIDWATCH_MQTT_URL), on a free port of 127.0.0.1, for as long as the command runs.

Where a `mosquitto` binary is installed it is a private Mosquitto with the limits of
deploy/mosquitto.conf (`LIMITS`) and persistence in the data directory; otherwise an
in-process amqtt, which speaks MQTT 3.1.1 only and does not resend what a crashed subscriber
held unacknowledged. Either way it requires the user and password gridwatch generated for
itself, kept in the data directory (`broker/credentials`, mode 0600). Production uses
Mosquitto or EMQX (see deploy/).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from amqtt.plugins.base import BaseAuthPlugin
from amqtt.session import Session

from gridwatch.errors import ServiceUnavailable
from gridwatch.ingest.broker_credentials import new_password, password_hash
from gridwatch.store.embedded import free_port

USER = "gridwatch"
# deploy/mosquitto.conf's queue and session limits (a test keeps the two in step).
LIMITS = (
    "max_inflight_messages 10000",
    "max_queued_messages 1000000",
    "max_queued_bytes 1073741824",
    "persistent_client_expiration 7d",
    "autosave_interval 60",
)


def mosquitto_binary() -> str | None:
    """Where mosquitto is (it often lives in /usr/sbin, off a user's PATH); None if absent."""
    return shutil.which("mosquitto", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")


def broker_password(directory: Path) -> str:
    """The embedded broker's password, made once and kept in `directory`/credentials."""
    path = directory / "credentials"
    with contextlib.suppress(FileNotFoundError):
        return path.read_text().strip()
    directory.mkdir(parents=True, exist_ok=True)
    password = new_password()
    # O_EXCL: two commands starting at once agree on the first one's password.
    with contextlib.suppress(FileExistsError):
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(handle, "w") as out:
            out.write(password + "\n")
    return path.read_text().strip()


class EmbeddedBroker:
    """A private Mosquitto, or amqtt in a daemon thread, requiring gridwatch's credentials.

    `data_dir`: where the credentials and Mosquitto's data live (a temporary directory if
    None); `mosquitto`: None to use it when installed, False for amqtt."""

    def __init__(
        self,
        data_dir: Path | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        mosquitto: bool | None = None,
    ) -> None:
        if data_dir is None:
            data_dir = Path(tempfile.mkdtemp(prefix="gridwatch-broker-"))
        self.directory = Path(data_dir) / "broker"
        self.host = host
        self.port = port or free_port(host)
        self.password = broker_password(self.directory)
        binary = mosquitto_binary() if mosquitto is not False else None
        self._server = _Mosquitto(binary, self) if binary else _Amqtt(self)

    @property
    def kind(self) -> str:
        return "mosquitto" if isinstance(self._server, _Mosquitto) else "amqtt"

    @property
    def address(self) -> str:
        """Where it listens, without the credentials."""
        return f"mqtt://{self.host}:{self.port}"

    def publish_example(self, topic: str, payload: str) -> str:
        """A mosquitto_pub command that publishes `payload` to `topic` here at QoS 1, each
        value quoted for a POSIX shell (a payload may hold a quote of its own)."""
        address = ["-h", self.host, "-p", str(self.port), "-u", USER, "-P", self.password]
        return shlex.join(["mosquitto_pub", *address, "-q", "1", "-t", topic, "-m", payload])

    @property
    def url(self) -> str:
        return f"mqtt://{USER}:{quote(self.password, safe='')}@{self.host}:{self.port}"

    def start(self) -> str:
        """Start listening; returns the broker URL, credentials included."""
        self._server.start()
        return self.url

    def stop(self) -> None:
        self._server.stop()


@dataclass
class _Mosquitto:
    binary: str
    broker: EmbeddedBroker
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        directory = self.broker.directory
        (directory / "passwd").write_text(f"{USER}:{password_hash(self.broker.password)}\n")
        os.chmod(directory / "passwd", 0o600)
        log_path = directory / "mosquitto.log"
        config = [
            f"listener {self.broker.port} {self.broker.host}",
            "allow_anonymous false",
            f"password_file {directory / 'passwd'}",
            *LIMITS,
            "persistence true",
            f"persistence_location {directory}/",
            f"log_dest file {log_path}",
            # Run as root, mosquitto would switch to its own user, who cannot read the files.
            f"user {pwd.getpwuid(os.geteuid()).pw_name}",
        ]
        (directory / "mosquitto.conf").write_text("\n".join(config) + "\n")
        # The installed mosquitto with a configuration written here; no shell. Its own
        # process group: Ctrl-C reaches gridwatch, which then stops it after the others.
        self.process = subprocess.Popen(  # noqa: S603
            [self.binary, "-c", str(directory / "mosquitto.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while self.process.poll() is None and time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.broker.host, self.broker.port), 1),
            ):
                return
            time.sleep(0.05)
        self.stop()
        tail = log_path.read_text(errors="replace")[-1000:] if log_path.exists() else ""
        raise ServiceUnavailable(f"embedded Mosquitto did not start:\n{tail}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)  # it saves its sessions first
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


@dataclass
class _Amqtt:
    broker: EmbeddedBroker
    loop: asyncio.AbstractEventLoop | None = None
    stopped: asyncio.Event | None = None
    thread: threading.Thread | None = None
    ready: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def start(self) -> None:
        # amqtt logs every refused MQTT 5 probe and client disconnect as an error.
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        self.thread = threading.Thread(target=self._serve, name="embedded-broker", daemon=True)
        self.thread.start()
        if not self.ready.wait(30) or self.error is not None:
            raise ServiceUnavailable(f"embedded MQTT broker did not start: {self.error}")

    def stop(self) -> None:
        if self.loop is not None and self.stopped is not None:
            self.loop.call_soon_threadsafe(self.stopped.set)
        if self.thread is not None:
            self.thread.join(timeout=10)

    def _serve(self) -> None:
        from amqtt.broker import Broker

        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            self.stopped = asyncio.Event()
            broker = Broker(
                {
                    "listeners": {
                        "default": {
                            "type": "tcp",
                            "bind": f"{self.broker.host}:{self.broker.port}",
                        }
                    },
                    "plugins": {
                        f"{__name__}.GeneratedCredentials": {
                            "user": USER,
                            "password": self.broker.password,
                        }
                    },
                }
            )
            try:
                await broker.start()
            except Exception as exc:
                self.error = exc
                self.ready.set()
                return
            self.ready.set()
            await self.stopped.wait()
            await broker.shutdown()

        asyncio.run(main())


class GeneratedCredentials(BaseAuthPlugin):
    """amqtt authentication: gridwatch's own user and password, nobody else."""

    @dataclass
    class Config:
        user: str
        password: str

    async def authenticate(self, *, session: Session | None) -> bool:
        config = self.context.config  # amqtt makes it our Config from the plugin's settings
        return (
            isinstance(config, GeneratedCredentials.Config)
            and session is not None
            and session.username == config.user
            and hmac.compare_digest((session.password or "").encode(), config.password.encode())
        )
