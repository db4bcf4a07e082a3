"""The tests' PostgreSQL (a pytest plugin): a server, migrated templates, and a database of
each test's own copied from them; and the queries tests make of such a database.

The server is the one named by GRIDWATCH_TEST_DATABASE_URL when set, otherwise an embedded
PostgreSQL. Each test gets its own database (a copy of a migrated template, with the sample
district loaded where asked), so tests never see each other's rows.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import psycopg
import pytest
import shapely

from gridwatch.errors import ServiceUnavailable
from gridwatch.store.migrate import migrate
from gridwatch.store.personal_data import AuditEntry, audit_entries

RUN_ID = uuid.uuid4().hex[:8]

Params = Sequence[Any] | Mapping[str, Any]


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at database `name`."""
    base, _, rest = url.rpartition("/")
    query = "?" + rest.split("?", 1)[1] if "?" in rest else ""
    return f"{base}/{name}{query}"


def create_database(server_url: str, name: str, template: str | None = None) -> str:
    """Database `name` on the server, made afresh (from `template` when given); its URL."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        suffix = f' TEMPLATE "{template}"' if template else ""
        conn.execute(f'CREATE DATABASE "{name}"{suffix}')
    return with_database(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    """Drop database `name`, closing whatever is still connected to it."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory) -> Iterator[str]:
    """URL of a PostgreSQL server's maintenance database."""
    url = os.environ.get("GRIDWATCH_TEST_DATABASE_URL")
    if url:
        yield url
        return
    from gridwatch.store.embedded import EmbeddedPostgres

    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg"))
    try:
        server.start()
    except ServiceUnavailable as exc:
        pytest.skip(f"no PostgreSQL: GRIDWATCH_TEST_DATABASE_URL unset and embedded failed: {exc}")
    yield with_database(server.url, "postgres")
    server.stop()


@pytest.fixture(scope="session")
def migrated_template(postgres_server) -> Iterator[str]:
    """A migrated, empty database to copy for each test."""
    name = f"gw_tmpl_{RUN_ID}"
    url = create_database(postgres_server, name)
    with psycopg.connect(url) as conn:
        migrate(conn)
    yield name
    drop_database(postgres_server, name)


@pytest.fixture(scope="session")
def district_template(postgres_server, migrated_template, tmp_path_factory) -> Iterator[str]:
    """A migrated database holding the sample district (grids, residents, workers)."""
    from gridwatch.simulators.sample import load_sample_district

    name = f"gw_dist_{RUN_ID}"
    url = create_database(postgres_server, name, template=migrated_template)
    with psycopg.connect(url) as conn:
        load_sample_district(conn, tmp_path_factory.mktemp("sample"))
    yield name
    drop_database(postgres_server, name)


def _fresh_database(server_url: str, template: str) -> Iterator[str]:
    name = f"gw_t_{uuid.uuid4().hex[:12]}"
    yield create_database(server_url, name, template=template)
    drop_database(server_url, name)


@pytest.fixture
def database_url(postgres_server, migrated_template) -> Iterator[str]:
    """A migrated empty database of this test's own."""
    yield from _fresh_database(postgres_server, migrated_template)


@pytest.fixture
def district_database_url(postgres_server, district_template) -> Iterator[str]:
    """A database of this test's own holding the sample district."""
    yield from _fresh_database(postgres_server, district_template)


@pytest.fixture
def blank_database_url(postgres_server) -> Iterator[str]:
    """An empty database, not migrated."""
    name = f"gw_b_{uuid.uuid4().hex[:12]}"
    yield create_database(postgres_server, name)
    drop_database(postgres_server, name)


def query(url: str, statement: str, params: Params = ()) -> list[tuple]:
    """Every row `statement` finds, on a connection of its own."""
    with psycopg.connect(url) as conn:
        return conn.execute(statement, params).fetchall()


def query_one(url: str, statement: str, params: Params = ()) -> tuple | None:
    """The first row `statement` finds (None when none), on a connection of its own."""
    with psycopg.connect(url) as conn:
        return conn.execute(statement, params).fetchone()


def execute(url: str, statement: str, params: Params = ()) -> None:
    """A write by another process, as the ingest or alert process makes one: on a connection
    of its own, committed at once."""
    with psycopg.connect(url) as conn:
        conn.execute(statement, params)


def count_rows(url: str, table: str, where: str = "TRUE", params: tuple = ()) -> int:
    [(count,)] = query(url, f"SELECT count(*) FROM {table} WHERE {where}", params)
    return count


def last_audit_id(url: str) -> int:
    """The newest personal_data_audit row's id (0 when none): an audit check reads after it."""
    [(last,)] = query(url, "SELECT coalesce(max(id), 0) FROM personal_data_audit")
    return last


def audit_after(url: str, last: int) -> list[AuditEntry]:
    """The audit rows written after id `last` (from `last_audit_id`), oldest first: what one
    step of a test recorded."""
    with psycopg.connect(url) as conn:
        return audit_entries(conn, after_id=last, limit=10_000)


def point_in_grid(url: str, code: str) -> tuple[float, float]:
    """(lon, lat) of a point inside grid `code`."""
    [(wkb,)] = query(url, "SELECT geometry FROM grids WHERE code = %s", (code,))
    point = shapely.from_wkb(bytes(wkb)).representative_point()
    return point.x, point.y


def fetch_all(url: str, query: str, params: tuple | dict = ()) -> list[tuple]:
    """The rows of one query of the database at `url`."""
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchall()


def settled_mornings(url: str, residents: list[str] | None = None) -> None:
    """Give homes the profile of homes watched for a while: three working-day mornings up at
    07:00, so the district's default morning window holds for them (a home still being
    learned has its window end at noon). All residents when none are named."""
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO home_profiles (resident_id, first_activity_s) "
            "SELECT id, ARRAY[25200, 25200, 25200] FROM residents "
            "WHERE %(all)s OR id = ANY(%(ids)s) ON CONFLICT (resident_id) DO NOTHING",
            {"all": residents is None, "ids": residents or []},
        )
