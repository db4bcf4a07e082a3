"""The shipped broker configuration with credentials from `gridwatch devices add`.

A private Mosquitto runs deploy/mosquitto.conf with its listeners moved to free loopback
ports and its files pointed at this test's: the password file that `gridwatch devices add
--password-file` wrote, the shipped deploy/mosquitto.acl as it is, and a throwaway CA and
server certificate for the TLS listener. Ingest runs as its service user, gridwatch-ingest.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import psycopg
import pytest

from gridwatch.cli import main
from gridwatch.errors import ServiceUnavailable
from gridwatch.ingest.broker_credentials import new_password, password_hash, set_password_line
from gridwatch.ingest.mqtt import BrokerAddress, probe_protocol, publisher
from tests.support.databases import count_rows
from tests.support.devices import add_device
from tests.support.ports import free_port, listening
from tests.support.settings import make_settings
from tests.support.waiting import wait_for

REPO = Path(__file__).resolve().parent.parent
SHIPPED_CONFIG = REPO / "deploy" / "mosquitto.conf"
SHIPPED_ACL = REPO / "deploy" / "mosquitto.acl"
MOSQUITTO = shutil.which("mosquitto", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
OPENSSL = shutil.which("openssl")
SERVICE_USER = "gridwatch-ingest"

pytestmark = pytest.mark.skipif(MOSQUITTO is None, reason="needs the mosquitto binary")


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory) -> TlsFiles:
    """A throwaway CA and a server certificate it signed, for 127.0.0.1 and localhost."""
    if OPENSSL is None:
        pytest.skip("needs the openssl command to make a test CA")
    d = tmp_path_factory.mktemp("tls")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    (d / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        "authorityKeyIdentifier=keyid\n"
    )
    for command in (
        ["req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
         "-subj", "/CN=gridwatch test CA", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ["req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"],
        ["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
         "-CAcreateserial", "-days", "2", "-extfile", "server.ext", "-out", "server.crt"],
    ):  # fmt: skip
        subprocess.run([OPENSSL, *command], cwd=d, check=True, capture_output=True)
    return TlsFiles(d / "ca.crt", d / "server.crt", d / "server.key")


class PrivateBroker:
    """deploy/mosquitto.conf on free loopback ports, with this test's files."""

    def __init__(self, workdir: Path, password_file: Path, tls: TlsFiles) -> None:
        self.workdir = workdir
        self.port, self.tls_port = free_port(), free_port()
        replaced = {
            "listener 1883": f"listener {self.port} 127.0.0.1",
            "listener 8883": f"listener {self.tls_port} 127.0.0.1",
            "cafile": f"cafile {tls.ca}",
            "certfile": f"certfile {tls.cert}",
            "keyfile": f"keyfile {tls.key}",
            "password_file": f"password_file {password_file}",
            "acl_file": f"acl_file {SHIPPED_ACL}",
            "persistence_location": f"persistence_location {workdir}/",
            "log_dest": f"log_dest file {workdir}/mosquitto.log",
        }
        lines, seen = [], set()
        for line in SHIPPED_CONFIG.read_text().splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            key = next((k for k in replaced if line == k or line.split()[0] == k), None)
            seen.add(key)
            lines.append(replaced[key] if key else line)
        assert seen >= set(replaced), f"deploy/mosquitto.conf lacks {set(replaced) - seen}"
        # Run as root, mosquitto would switch to its own user, who cannot read these files.
        lines.append(f"user {pwd.getpwuid(os.geteuid()).pw_name}")
        config = workdir / "mosquitto.conf"
        config.write_text("\n".join(lines) + "\n")
        self.process = subprocess.Popen(
            [MOSQUITTO, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for(
            lambda: (
                self.process.poll() is not None
                or (listening(self.port) and listening(self.tls_port))
            ),
            10,
            "mosquitto to listen",
        )
        assert self.process.poll() is None, f"mosquitto did not start:\n{self.log()}"

    def url(self, user: str, password: str, *, tls: bool = False) -> str:
        scheme, port = ("mqtts", self.tls_port) if tls else ("mqtt", self.port)
        return f"{scheme}://{user}:{password}@127.0.0.1:{port}"

    def reload(self) -> None:
        """SIGHUP: Mosquitto rereads its password and ACL files."""
        self.process.send_signal(signal.SIGHUP)
        wait_for(lambda: "Reloading config" in self.log(), 10, "mosquitto to reload")

    def log(self) -> str:
        path = self.workdir / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture
def passwords(tmp_path) -> tuple[Path, str]:
    """A password file holding the ingest worker's service user, and its password."""
    path = tmp_path / "passwd"
    service_password = new_password()
    set_password_line(path, SERVICE_USER, f"{SERVICE_USER}:{password_hash(service_password)}")
    return path, service_password


@pytest.fixture
def broker(tmp_path, passwords, tls_files):
    running = PrivateBroker(tmp_path, passwords[0], tls_files)
    yield running
    running.stop()


class Device:
    """A device's own MQTT connection, publishing at QoS 1."""

    def __init__(self, url: str, ca_file: Path | None = None) -> None:
        self.client = publisher(BrokerAddress.from_url(url, ca_file), f"dev-{uuid.uuid4().hex[:8]}")

    def publish(self, topic: str, payload: dict) -> None:
        # The broker acknowledges a publish the ACL denies, too (MQTT 3.1.1), or answers
        # "not authorized" (MQTT 5): either way it is done with the message.
        self.client.publish(topic, orjson.dumps(payload), qos=1).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _ts(minutes_ago: int) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes_ago)).isoformat()


def test_devices_publish_only_as_themselves(
    capsys, tmp_path, database_url, passwords, broker, start_worker
):
    password_file, service_password = passwords
    meter = add_device(capsys, database_url, password_file, "M-1", "--kind", "meter")
    add_device(capsys, database_url, password_file, "M-2", "--kind", "meter")
    app = add_device(capsys, database_url, password_file, "phone-1", "--kind", "app",
                     "--worker", "W-1")  # fmt: skip
    broker.reload()  # the file changed after the broker read it
    settings = make_settings(
        tmp_path, database_url, broker.url(SERVICE_USER, service_password), topic_prefix="gw"
    )
    worker = start_worker(settings)

    as_meter, as_app = Device(broker.url("M-1", meter)), Device(broker.url("W-1", app))
    place = {"lat": 40.6, "lon": 109.9}
    # Each may publish under its own name only; the ACL drops everything else unseen.
    as_meter.publish("gw/meter/M-2", {"ts": _ts(9), "power_w": 1.0})
    as_meter.publish("gw/sensor/S-1", {"ts": _ts(9), "event": "motion"})
    as_app.publish("gw/patrol/W-2", {"ts": _ts(9), **place})
    as_app.publish("gw/meter/M-1", {"ts": _ts(9), "power_w": 1.0})
    as_app.publish("owntracks/W-2/phone", {"_type": "location", **place})
    as_meter.publish("gw/meter/M-1", {"ts": _ts(5), "power_w": 2.0})
    as_app.publish("gw/patrol/W-1", {"ts": _ts(5), **place})
    as_app.publish("owntracks/W-1/phone", {"_type": "location", **place})
    as_app.publish("gw/hazard/W-1", {"id": str(uuid.uuid4()), "ts": _ts(5), **place,
                                     "category": "road", "severity": "low"})  # fmt: skip
    wait_for(lambda: count_rows(database_url, "hazard_reports") == 1, 30, "the app's hazard report")
    # One publisher's messages arrive in order, so what was denied would be in by now.
    assert count_rows(database_url, "meter_readings", "meter_id = 'M-1'") == 1
    assert count_rows(database_url, "meter_readings") == 1
    assert count_rows(database_url, "sensor_events") == 0
    assert count_rows(database_url, "patrol_checkins", "worker_id = 'W-1'") == 2
    assert count_rows(database_url, "patrol_checkins") == 2
    assert count_rows(database_url, "dead_letters") == 0
    assert worker.stats.received == 4

    # A wrong password, no password, and a user nobody added are refused at CONNECT.
    for url in (
        broker.url("M-1", meter + "x"),
        broker.url("M-1", app),
        f"mqtt://127.0.0.1:{broker.port}",
        broker.url("M-3", meter),
    ):
        with pytest.raises(ServiceUnavailable, match="refused"):
            probe_protocol(BrokerAddress.from_url(url))

    # Revoked and reloaded: the broker cuts the meter's open connection and refuses a new one.
    capsys.readouterr()
    assert main(["devices", "revoke", "M-1", "--password-file", str(password_file),
                 "--database-url", database_url]) == 0  # fmt: skip
    broker.reload()
    wait_for(lambda: not as_meter.client.is_connected(), 10, "the revoked meter to be cut off")
    with pytest.raises(ServiceUnavailable, match="refused"):
        probe_protocol(BrokerAddress.from_url(broker.url("M-1", meter)))
    as_app.publish("gw/patrol/W-1", {"ts": _ts(1), **place})
    wait_for(lambda: count_rows(database_url, "patrol_checkins") == 3, 30, "the app still in")
    as_meter.close()
    as_app.close()


def test_ingest_over_tls_with_a_private_ca(
    capsys, tmp_path, database_url, passwords, broker, tls_files, start_worker
):
    password_file, service_password = passwords
    meter = add_device(capsys, database_url, password_file, "M-1", "--kind", "meter")
    broker.reload()
    service_url = broker.url(SERVICE_USER, service_password, tls=True)

    # Without the CA the broker's certificate is not trusted, and ingest says so.
    with pytest.raises(ServiceUnavailable, match="certificate verify failed"):
        probe_protocol(BrokerAddress.from_url(service_url))

    settings = make_settings(
        tmp_path, database_url, service_url, topic_prefix="gw", mqtt_ca_file=tls_files.ca
    )
    start_worker(settings)
    device = Device(broker.url("M-1", meter, tls=True), tls_files.ca)
    device.publish("gw/meter/M-1", {"ts": _ts(5), "power_w": 2.0})
    wait_for(lambda: count_rows(database_url, "meter_readings") == 1, 30, "the reading over TLS")
    device.close()
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT meter_id FROM meter_readings").fetchone()[0] == "M-1"
