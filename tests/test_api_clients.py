"""Clients nobody here wrote, against a real `gridwatch api` with its default limits: GDAL's
OGC API - Features driver (what QGIS uses) reads every layer whole, OWSLib finds the layers,
their queryables and their items, and a plain HTTP client reads the start of the alert
stream."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from owslib import ogcapi
from owslib.ogcapi.features import Features

from gridwatch.api.collections import COLLECTIONS, QUERYABLES_REL
from gridwatch.settings import Settings
from tests.support.api import ApiProcess

OGR_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def api(seeded_url, tmp_path_factory) -> Iterator[ApiProcess]:
    """The server with the rate limits people get (no test's generous ones)."""
    running = ApiProcess(seeded_url, tmp_path_factory.mktemp("api-clients"))
    yield running
    running.stop()


def _ogr(tool: str, *args: str, token: str) -> subprocess.CompletedProcess:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (Debian: apt-get install gdal-bin)")
    env = {
        **os.environ,
        "GDAL_HTTP_HEADERS": f"Authorization: Bearer {token}",
        "CPL_DEBUG": "OFF",
    }
    # A GDAL tool with arguments made here; no shell.
    return subprocess.run(
        [tool, *args], env=env, capture_output=True, text=True, timeout=OGR_TIMEOUT_S
    )


def _matched(api: ApiProcess, token: str) -> dict[str, int]:
    headers = {"Authorization": f"Bearer {token}"}
    counts = {}
    for cid in COLLECTIONS:
        page = httpx.get(f"{api.base}/collections/{cid}/items?limit=1", headers=headers).json()
        counts[cid] = page["numberMatched"]
    return counts


def test_gdal_reads_every_layer_whole(api, module_tokens, seeded_url):
    """`ogrinfo -so` reports every layer's count and `ogr2ogr` copies every feature of every
    layer, paging with GDAL's own defaults, under the rate limits a token has by default."""
    token = module_tokens.admin
    matched = _matched(api, token)
    with psycopg.connect(seeded_url) as conn:
        residents = conn.execute("SELECT count(*) FROM residents").fetchone()[0]
    assert matched["residents"] == residents >= 2000, "the sample district has its residents"
    source = f"OAPIF:{api.base}"
    summary = _ogr("ogrinfo", "-ro", "-al", "-so", source, token=token)
    assert summary.returncode == 0, summary.stderr
    assert "429" not in summary.stderr, summary.stderr
    for cid in COLLECTIONS:
        assert f"Layer name: {cid}" in summary.stdout, summary.stdout
    for cid, count in matched.items():
        copied = _ogr("ogr2ogr", "-f", "GeoJSON", "/vsistdout/", source, cid, token=token)
        assert copied.returncode == 0, (cid, copied.stderr[-2000:])
        assert "429" not in copied.stderr, (cid, copied.stderr[-2000:])
        features = json.loads(copied.stdout)["features"]
        assert len(features) == count, (cid, len(features), count)


def _resolve(document: dict, ref: str) -> dict:
    """A local `$ref` (`#/a/b`) of `document`."""
    assert ref.startswith("#/"), ref
    node = document
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def test_the_openapi_document_gives_gdal_its_page_size(api):
    """GDAL (3.8 and later) sizes its pages from the `limit` parameter the items operation
    refers to: the schema's default and maximum, with 1000 aimed for between them."""
    document = httpx.get(f"{api.base}/openapi.json").json()
    default = Settings.model_fields["api_default_limit"].default
    maximum = Settings.model_fields["api_max_limit"].default
    for cid in COLLECTIONS:
        parameters = document["paths"][f"/collections/{cid}/items"]["get"]["parameters"]
        refs = [p["$ref"] for p in parameters if "limit" in p.get("$ref", "")]
        assert len(refs) == 1, (cid, parameters)
        limit = _resolve(document, refs[0])
        assert limit["name"] == "limit" and limit["in"] == "query"
        assert limit["schema"]["default"] == default
        assert limit["schema"]["maximum"] == maximum
        gdal_page = min(max(1000, limit["schema"]["default"]), limit["schema"]["maximum"])
        assert gdal_page == 1000


@pytest.fixture
def owslib_features(api, module_tokens, monkeypatch):
    """OWSLib's client of the server with the admin's token. OWSLib adds the headers given
    to one client to a dictionary of the module: a copy stands in for it during the test."""
    monkeypatch.setattr(ogcapi, "REQUEST_HEADERS", dict(ogcapi.REQUEST_HEADERS))
    return Features(api.base, headers={"Authorization": f"Bearer {module_tokens.admin}"})


def test_owslib_reads_the_layers_and_their_queryables(api, owslib_features, module_tokens):
    """Every layer links its queryables (OGC API - Features Part 3): a JSON Schema of the
    properties its items can be filtered by, each of which the items route takes."""
    listed = owslib_features.collections()["collections"]
    assert [c["id"] for c in listed] == list(COLLECTIONS)
    for collection in listed:
        cid = collection["id"]
        links = [link["href"] for link in collection["links"] if link["rel"] == QUERYABLES_REL]
        assert links == [f"{api.base}/collections/{cid}/queryables"], collection["links"]
        schema = owslib_features.collection_queryables(cid)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["$id"] == links[0]
        assert schema["type"] == "object" and schema["additionalProperties"] is False
        assert schema["properties"], cid
        page = owslib_features.collection_items(cid, limit=2)
        assert page["type"] == "FeatureCollection" and len(page["features"]) <= 2
        for name, definition in schema["properties"].items():
            assert definition["type"] in ("string", "integer"), (cid, name)
            assert definition["title"], (cid, name)
            # A queryable is a property of the features, and a filter the items route takes.
            assert any(name in f["properties"] for f in page["features"]), (cid, name)
            value = definition.get("enum", [None])[0] or page["features"][0]["properties"][name]
            filtered = owslib_features.collection_items(cid, limit=5, **{name: value})
            assert filtered["type"] == "FeatureCollection", (cid, name)


def test_queryables_answer_like_their_collection(api, module_tokens):
    """An unknown layer is 404, no token 401, a device token 403, as for the layer itself."""
    headers = {"Authorization": f"Bearer {module_tokens.admin}"}
    missing = httpx.get(f"{api.base}/collections/nope/queryables", headers=headers)
    assert missing.status_code == 404 and "no collection" in missing.json()["reason"]
    found = httpx.get(f"{api.base}/collections/hazards/queryables", headers=headers)
    assert found.headers["content-type"] == "application/schema+json"
    for path in ("/collections/hazards", "/collections/hazards/queryables"):
        assert httpx.get(api.base + path).status_code == 401
        device = {"Authorization": f"Bearer {module_tokens.device}"}
        assert httpx.get(api.base + path, headers=device).status_code == 403, path


def _stream_head(api: ApiProcess, token: str, last_event_id: int | None) -> list[str]:
    """The lines of the stream up to its first blank line, read off a plain socket."""
    extra = f"Last-Event-ID: {last_event_id}\r\n" if last_event_id is not None else ""
    request = (
        f"GET /alerts/stream HTTP/1.1\r\nHost: 127.0.0.1:{api.port}\r\n"
        f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n{extra}"
        "Connection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", api.port), timeout=10) as sock:
        sock.sendall(request.encode())
        received = b""
        while b"\r\n\r\n" not in received or not _first_event_block(received):
            chunk = sock.recv(4096)
            assert chunk, f"the stream ended early: {received!r}"
            received += chunk
    head = received.partition(b"\r\n\r\n")[0]
    assert head.startswith(b"HTTP/1.1 200"), head
    return _first_event_block(received).decode().split("\n")


def _first_event_block(received: bytes) -> bytes:
    """The body's first block (up to a blank line), unchunked; empty until it is all there."""
    _, _, body = received.partition(b"\r\n\r\n")
    data = b""
    while body:  # chunked transfer: size line, data, CRLF
        size, _, rest = body.partition(b"\r\n")
        if not rest or int(size, 16) == 0:
            break
        data += rest[: int(size, 16)]
        body = rest[int(size, 16) + 2 :]
    block, found, _ = data.partition(b"\n\n")
    return block if found else b""


def test_the_stream_starts_by_naming_where_it_resumes(api, module_tokens, seeded_url):
    """The first block of the stream is the retry time and a comment naming the event the
    stream continues after: the newest one for a new client, the Last-Event-ID it sent for
    one that resumes. No `event:` line without data for a naive client to trip on."""
    with psycopg.connect(seeded_url) as conn:
        newest = conn.execute("SELECT coalesce(max(id), 0) FROM alert_events").fetchone()[0]
    assert newest > 5, "the sample activity has alert events"
    for last_event_id, after in ((None, newest), (3, 3), (0, 0)):
        lines = _stream_head(api, module_tokens.admin, last_event_id)
        assert lines[0] == "retry: 3000", lines
        assert lines[1] == f": gridwatch alert stream, after event {after}", lines
        assert not any(line.startswith("event:") for line in lines), lines
        assert not any(line.startswith("data:") for line in lines), lines
