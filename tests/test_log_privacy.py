"""Database errors quote the values of the row at fault (PostgreSQL's DETAIL and CONTEXT):
none of that reaches gridwatch's logs or the embedded server's log, where a visit's note or
an absence's note would put residents' personal information."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import psycopg
import pytest

from gridwatch.api.runtime import Conn
from gridwatch.ingest.writer import BatchWriter, Message
from gridwatch.model.records import MeterReading, PatrolCheckin
from gridwatch.store.embedded import EmbeddedPostgres
from tests.support.api import ApiServer, Clock, api_settings

NOTE = "王秀华 13900000001 青山区富强路12号"


def test_a_rejected_batch_is_logged_without_its_rows(database_url, caplog):
    now = datetime.now(UTC)
    # No parser makes a check-in without a latitude; the database refuses it with a DETAIL
    # that holds the whole row, note included.
    bad = PatrolCheckin("W001", now, now, 109.9, None, None, "patrol", None, None, NOTE)
    good = MeterReading("M-1", now, now, 5.0, None, None)
    messages = [Message("t/meter/M-1", b"{}", now, good), Message("t/patrol/W001", b"{}", now, bad)]
    caplog.set_level(logging.INFO)
    with psycopg.connect(database_url) as conn:
        writer = BatchWriter(conn, mode="plain", zone=ZoneInfo("Asia/Shanghai"))
        assert writer.write(messages).dead_letters == 1
    assert "rejected" in caplog.text and "not-null" in caplog.text
    assert NOTE not in caplog.text and "王秀华" not in caplog.text


def test_a_database_error_in_a_request_is_logged_without_the_row(database_url, tmp_path, caplog):
    server = ApiServer(api_settings(tmp_path, database_url), database_url, Clock())

    def faulty(conn: Conn):
        conn.execute(
            "INSERT INTO absences (resident_id, starts_at, ends_at, note) "
            "VALUES ('R00001', now(), now() - interval '1 day', %s)",
            (NOTE,),
        )

    server.app.add_api_route("/faulty", faulty)
    caplog.set_level(logging.INFO)
    with server, server.client() as client:
        assert client.get("/faulty").status_code == 500
    assert "CheckViolation" in caplog.text
    assert "test_log_privacy.py" in caplog.text, "the frames are kept"
    assert "王秀华" not in caplog.text


@pytest.mark.slow
def test_the_embedded_server_logs_no_row_values(tmp_path):
    server = EmbeddedPostgres(tmp_path / "pg")
    url = server.start()
    try:
        with psycopg.connect(url) as conn:
            conn.execute("CREATE TABLE notes (note text, n int CHECK (n > 0))")
            conn.commit()
            with pytest.raises(psycopg.errors.CheckViolation, match="王秀华"):
                conn.execute("INSERT INTO notes VALUES (%s, -1)", (NOTE,))
    finally:
        server.stop()
    log = server.log_path.read_text()
    assert "violates check constraint" in log
    assert "王秀华" not in log and "13900000001" not in log
