"""Photos posted as multipart/form-data with a hazard report, a resolve step (hazards and
requests) and a check-in, and served back at /media/{id}: upright and without EXIF, with a
smaller thumbnail, only to those who may see what they belong to (by its grid of either
system: a police officer's 警格 too). Hostile files refuse the whole post with nothing
stored; photos live in a folder or in an S3 store; forgetting a resident deletes the photos
of their visits."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import uuid
from datetime import datetime
from functools import partial
from pathlib import Path

import httpx
import psycopg
import pytest
import shapely
from PIL import Image

from gridwatch.cli import main
from gridwatch.media.blobs import delete_photos, photo_keys
from gridwatch.model.records import RequestIntake
from gridwatch.simulators.sample import load_police_grids
from gridwatch.store.grids import load_grid_catalog, load_leaf_grids
from gridwatch.store.media import delete_expired_checkin_media
from gridwatch.store.requests import open_requests, place_request
from gridwatch.store.users import create_user, revoke_user
from tests.support.api import GRID_A, GRID_B, NOW, ApiServer, Clock, api_settings, reason
from tests.support.databases import count_rows
from tests.support.object_store import BUCKET, s3_server
from tests.support.photos import CAMERA, exif_of, gif, jpeg_with_gps, png, png_bomb, size_of

MEDIA_URL = re.compile(r"/media/([0-9a-f-]{36})")


@pytest.fixture(scope="module")
def places(seeded_url) -> dict[str, tuple[float, float]]:
    """A point inside grid A and one inside grid B."""
    with psycopg.connect(seeded_url) as conn:
        rows = conn.execute(
            "SELECT code, geometry FROM grids WHERE code = ANY(%s)", ([GRID_A, GRID_B],)
        ).fetchall()
    found = {}
    for code, wkb in rows:
        point = shapely.from_wkb(bytes(wkb)).representative_point()
        found[code] = (point.x, point.y)
    return found


def _hazard(places, code: str = GRID_A, **extra) -> dict:
    lon, lat = places[code]
    return {"id": str(uuid.uuid4()), "lat": lat, "lon": lon, "category": "road",
            "severity": "low", **extra}  # fmt: skip


def _form(payload: dict | None, *photos: bytes, kind: str = "image/jpeg") -> dict:
    """httpx keywords for a multipart post: `payload` as JSON text, `photos` as files."""
    files = [("photos", (f"IMG_{n}.jpg", data, kind)) for n, data in enumerate(photos)]
    data = {} if payload is None else {"payload": json.dumps(payload, ensure_ascii=False)}
    return {"data": data, "files": files or None}


def _media_ids(urls: list[str]) -> list[str]:
    return [m.group(1) for url in urls if (m := MEDIA_URL.fullmatch(url))]


def _fetch(url: str, query: str, *params) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchall()


def _media_rows(url: str, **where) -> list[tuple]:
    (column, value), = where.items()  # fmt: skip
    query = {
        "hazard_id": "SELECT id FROM media WHERE hazard_id = %s",
        "request_id": "SELECT id FROM media WHERE request_id = %s",
        "resident_id": "SELECT id FROM media WHERE resident_id = %s",
    }[column]
    return _fetch(url, query, value)


def _files(server: ApiServer) -> set[str]:
    root = server.state.media.root
    return {p.name for p in Path(root).rglob("*") if p.is_file()} if Path(root).exists() else set()


def _second_resident(url: str, code: str, n: int) -> str:
    """The `n`-th resident of grid `code` by id (tests forget different ones)."""
    query = "SELECT r.id FROM residents r JOIN grids g ON g.id = r.grid_id WHERE g.code = %s"
    return _fetch(url, query + " ORDER BY r.id", code)[n][0]


# -- reports and steps with photos ------------------------------------------------------------


def test_a_hazard_with_a_photo_is_served_upright_without_exif_and_thumbnailed(
    http, places, seeded_url, module_server
):
    sent = jpeg_with_gps(640, 480)
    assert exif_of(sent)[0x8825], "the test photo carries a GPS block"
    report = _hazard(places, description="路面塌陷", photo_urls=["https://img.example.cn/a.jpg"])
    posted = http["worker_a"].post("/hazards", **_form(report, sent))
    assert posted.status_code == 201, posted.text
    urls = posted.json()["properties"]["photo_urls"]
    assert urls[0] == "https://img.example.cn/a.jpg" and len(urls) == 2
    [media_id] = _media_ids(urls)

    full = http["worker_a"].get(f"/media/{media_id}")
    assert full.status_code == 200, full.text
    assert full.headers["content-type"] == "image/jpeg"
    assert full.headers["cache-control"].startswith("private")
    assert full.headers["x-content-type-options"] == "nosniff"
    assert exif_of(full.content) == {}, "no EXIF at all: no GPS, no camera, no orientation"
    assert CAMERA.encode() not in full.content and b"home of R-1" not in full.content
    assert size_of(full.content) == (480, 640), "turned upright by its orientation"
    upright = Image.open(io.BytesIO(full.content)).convert("RGB")
    assert upright.getpixel((470, 10))[2] > 150, "the blue corner turned to the top right"

    thumb = http["worker_a"].get(f"/media/{media_id}/thumb")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert thumb.headers["cache-control"].startswith("private")
    assert size_of(thumb.content) == (240, 320) and len(thumb.content) < len(full.content)
    assert exif_of(thumb.content) == {}

    again = http["worker_a"].get(
        f"/media/{media_id}", headers={"If-None-Match": full.headers["etag"]}
    )
    assert again.status_code == 304 and not again.content

    with psycopg.connect(seeded_url) as conn:
        row = conn.execute(
            "SELECT m.content_type, m.bytes, m.thumb_bytes, m.sent_bytes, m.width, m.height, "
            "m.sha256, m.uploaded_by, m.step, g.code FROM media m JOIN grids g ON g.id = m.grid_id "
            "WHERE m.hazard_id = %s",
            (report["id"],),
        ).fetchone()
    assert row == (
        "image/jpeg", len(full.content), len(thumb.content), len(sent), 480, 640,
        hashlib.sha256(full.content).hexdigest(), "W001", "report", GRID_A,
    )  # fmt: skip
    # Kept under names made from the id alone, never the client's file name.
    image_key, thumb_key = photo_keys(uuid.UUID(media_id))
    assert {image_key, thumb_key} <= _files(module_server)
    assert not any(name.startswith("IMG_") for name in _files(module_server))
    for path in Path(module_server.state.media.root).rglob(f"{media_id}*"):
        assert b"GridwatchPhone" not in path.read_bytes()
        assert path.stat().st_mode & 0o777 == 0o600, "readable by gridwatch's user alone"


def test_a_repeated_report_keeps_its_first_photos_only(http, places, seeded_url):
    report = _hazard(places)
    first = http["worker_a"].post("/hazards", **_form(report, jpeg_with_gps()))
    again = http["worker_a"].post("/hazards", **_form(report, jpeg_with_gps(320, 240)))
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["properties"]["photo_urls"] == first.json()["properties"]["photo_urls"]
    assert len(_media_rows(seeded_url, hazard_id=report["id"])) == 1


def test_resolving_a_hazard_with_photos_and_links(http, places):
    report = _hazard(places)
    assert http["worker_a"].post("/hazards", json=report).status_code == 201
    step = {"note": "已修复", "photo_urls": ["https://img.example.cn/after.jpg"]}
    done = http["worker_a"].post(
        f"/hazards/{report['id']}/resolve", **_form(step, png(), kind="image/png")
    )
    assert done.status_code == 200, done.text
    event = done.json()["properties"]["events"][-1]
    assert event["action"] == "resolve" and event["note"] == "已修复"
    assert event["photo_urls"][0] == "https://img.example.cn/after.jpg"
    [media_id] = _media_ids(event["photo_urls"])
    kept = http["worker_a"].get(f"/media/{media_id}")
    assert kept.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(kept.content)).mode == "RGBA", "transparency kept"
    assert http["duty_street"].get(f"/media/{media_id}/thumb").status_code == 200
    assert http["worker_b"].get(f"/media/{media_id}").status_code == 404


def test_resolving_a_request_with_a_photo(http, seeded_url, places, module_tokens):
    lon, lat = places[GRID_A]
    with psycopg.connect(seeded_url) as conn:
        catalog, index = load_grid_catalog(conn), load_leaf_grids(conn).index
        intake = RequestIntake(
            id=uuid.uuid4(), source="app", service_code="sanitation", description="垃圾满了",
            reporter="app-gateway", requested_at=NOW, received_at=NOW, lon=lon, lat=lat,
        )  # fmt: skip
        grid = int(index.assign([lon], [lat])[0])
        [stored] = open_requests(conn, [(intake, place_request(intake, catalog, grid))], now=NOW)
    request_id = str(stored.request.id)
    worker = http["worker_a"]
    assert worker.post(f"/requests/{request_id}/accept", json={}).status_code == 200
    webp = io.BytesIO()
    Image.new("RGB", (800, 600), (90, 90, 200)).save(webp, "WEBP")
    done = worker.post(
        f"/requests/{request_id}/resolve",
        **_form({"note": "已清运"}, webp.getvalue(), kind="image/webp"),
    )
    assert done.status_code == 200, done.text
    event = done.json()["properties"]["events"][-1]
    [media_id] = _media_ids(event["photo_urls"])
    assert [str(r[0]) for r in _media_rows(seeded_url, request_id=request_id)] == [media_id]
    assert worker.get(f"/media/{media_id}").headers["content-type"] == "image/webp"
    assert http["worker_b"].get(f"/media/{media_id}").status_code == 404
    assert http["device"].get(f"/media/{media_id}").status_code == 403
    # The JSON step keeps working unchanged (an empty resolve is refused as before).
    missing = worker.post(f"/requests/{request_id}/resolve", **_form(None))
    assert missing.status_code == 422 and "Field required" in reason(missing)


def test_a_visit_with_photos_and_a_device_posting_for_a_worker(http, places, seeded_url):
    lon, lat = places[GRID_A]
    resident = _second_resident(seeded_url, GRID_A, 1)
    visit = {"lat": lat, "lon": lon, "kind": "visit", "resident_id": resident, "status": "ok",
             "ts": "2026-11-23T10:00:00+08:00"}  # fmt: skip
    posted = http["worker_a"].post("/checkins", **_form(visit, jpeg_with_gps(), jpeg_with_gps()))
    assert posted.status_code == 201, posted.text
    props = posted.json()["properties"]
    ids = _media_ids(props["photo_urls"])
    assert len(ids) == 2 and props["resident_id"] == resident
    fetched = http["worker_a"].get(f"/collections/checkins/items/{posted.json()['id']}")
    assert fetched.json()["properties"]["photo_urls"] == props["photo_urls"]
    assert http["worker_b"].get(f"/media/{ids[0]}").status_code == 404
    assert http["duty_community"].get(f"/media/{ids[1]}/thumb").status_code == 200
    # A device token posts for its worker, photos included; it may not read them back.
    by_device = http["device"].post(
        "/checkins",
        **_form(
            {"worker_id": "W001", "lat": lat, "lon": lon, "ts": "2026-11-23T10:05:00+08:00"},
            png(),
            kind="image/png",
        ),
    )
    assert by_device.status_code == 201, by_device.text
    [device_photo] = _media_ids(by_device.json()["properties"]["photo_urls"])
    assert http["device"].get(f"/media/{device_photo}").status_code == 403
    assert http["worker_a"].get(f"/media/{device_photo}").status_code == 200
    # JSON check-ins carry links too, as MQTT ones do.
    linked = http["worker_a"].post(
        "/checkins",
        json={
            "lat": lat,
            "lon": lon,
            "photo_urls": [f"/media/{ids[0]}"],
            "ts": "2026-11-23T10:10:00+08:00",
        },
    )
    assert linked.json()["properties"]["photo_urls"] == [f"/media/{ids[0]}"]


def test_who_may_see_a_photo(http, places, seeded_url, module_server):
    posted = http["worker_a"].post("/hazards", **_form(_hazard(places), jpeg_with_gps()))
    [media_id] = _media_ids(posted.json()["properties"]["photo_urls"])
    for path in (f"/media/{media_id}", f"/media/{media_id}/thumb"):
        for role in ("worker_a", "duty_community", "duty_street", "admin"):
            assert http[role].get(path).status_code == 200, (role, path)
        other = http["worker_b"].get(path)
        assert other.status_code == 404 and reason(other) == f"no photo {media_id}"
        assert http["anonymous"].get(path).status_code == 401
        assert http["device"].get(path).status_code == 403
    unknown = http["worker_a"].get(f"/media/{uuid.uuid4()}")
    assert unknown.status_code == 404
    assert http["worker_a"].get("/media/not-a-uuid/thumb").status_code == 404
    # A revoked token: 401 at once.
    with psycopg.connect(seeded_url) as conn:
        token = create_user(conn, "W001-phone", role="grid_worker", grid_codes=(GRID_A,))
    with module_server.client() as phone:
        phone.headers["Authorization"] = f"Bearer {token}"
        assert phone.get(f"/media/{media_id}").status_code == 200
        with psycopg.connect(seeded_url) as conn:
            revoke_user(conn, "W001-phone", now=NOW)
        assert phone.get(f"/media/{media_id}").status_code == 401
    # The console's session cookie works as for its pages, and the case page shows the
    # thumbnail linking to the photo.
    with httpx.Client(base_url=module_server.url) as browser:
        login = browser.post("/login", data={"token": _token(http, "worker_a")})
        assert login.status_code == 303
        assert browser.get(f"/media/{media_id}/thumb").status_code == 200
        page = browser.get(f"/console/cases/{posted.json()['id']}")
        assert f'<img src="/media/{media_id}/thumb"' in page.text
        assert f'href="/media/{media_id}"' in page.text


POLICE_GRID, OTHER_POLICE_GRID = "GA-QS-1-1-01", "GA-QS-2-3-06"  # 警格 of the sample district


def test_a_police_officer_sees_the_photos_of_a_hazard_in_their_police_grid(
    seeded_url, module_tokens, tmp_path
):
    """A photo follows what it belongs to: an officer given a 警格 (no management grid) who
    sees a hazard there sees its photo; the officer of another 警格 gets 404 for both."""
    with psycopg.connect(seeded_url) as conn:
        load_police_grids(conn, tmp_path / "police")
        officer = create_user(conn, "PO-photos", role="grid_worker", grid_codes=(POLICE_GRID,))
        other = create_user(conn, "PO-other", role="grid_worker", grid_codes=(OTHER_POLICE_GRID,))
        [(wkb,)] = conn.execute(
            "SELECT geometry FROM grids WHERE code = %s", (POLICE_GRID,)
        ).fetchall()
    point = shapely.from_wkb(bytes(wkb)).buffer(-0.0003).representative_point()
    hazard = {"id": str(uuid.uuid4()), "lon": point.x, "lat": point.y, "category": "road",
              "severity": "low"}  # fmt: skip
    settings = api_settings(tmp_path, seeded_url)
    with ApiServer(settings, seeded_url, Clock()) as server, server.client() as client:
        posted = client.post("/hazards", headers=module_tokens.header("admin"),
                             **_form(hazard, jpeg_with_gps()))  # fmt: skip
        assert posted.status_code == 201, posted.text
        [media_id] = _media_ids(posted.json()["properties"]["photo_urls"])
        for token, status in ((officer, 200), (other, 404)):
            client.headers["Authorization"] = f"Bearer {token}"
            assert client.get(f"/collections/hazards/items/{hazard['id']}").status_code == status
            for path in (f"/media/{media_id}", f"/media/{media_id}/thumb"):
                answer = client.get(path)
                assert answer.status_code == status, (token == officer, path, answer.text)
        assert reason(answer) == f"no photo {media_id}"


def _token(http, role: str) -> str:
    return http[role].headers["Authorization"].removeprefix("Bearer ")


# -- hostile posts: refused whole, nothing stored -----------------------------------------------


def _truncated() -> bytes:
    whole = jpeg_with_gps(800, 600)
    return whole[: len(whole) // 2]


@pytest.mark.parametrize(
    ("photos", "status", "words"),
    [
        ([b"#!/bin/sh\nrm -rf /\n"], 415, "photo 1 is not a JPEG, PNG or WebP image"),
        ([gif()], 415, "not a JPEG, PNG or WebP"),
        ([_truncated()], 422, "photo 1 is damaged or truncated"),
        ([png_bomb()], 422, "decompression bomb"),
        ([jpeg_with_gps(), b"\x89PNG\r\n\x1a\nnot really"], 422, "photo 2"),
        ([b""], 422, "photo 1 is an empty file"),
        ([png(4, 4)] * 21, 422, "at most 20"),
        ([png(4, 4)] * 23, 422, "at most 20"),
    ],
    ids=["script", "gif", "truncated", "bomb", "one-bad-of-two", "empty", "21", "23"],
)
def test_a_bad_photo_refuses_the_whole_post(
    http, places, seeded_url, module_server, photos, status, words
):
    before = _files(module_server)
    report = _hazard(places)
    refused = http["worker_a"].post("/hazards", **_form(report, *photos))
    assert refused.status_code == status, refused.text
    assert words in reason(refused)
    stored = count_rows(seeded_url, "hazard_reports", "id = %s", (report["id"],))
    assert stored == 0, "no half-stored report"
    assert _media_rows(seeded_url, hazard_id=report["id"]) == []
    assert _files(module_server) == before


def test_links_and_photos_together_stay_within_twenty(http, places):
    links = [f"https://img.example.cn/{n}.jpg" for n in range(19)]
    refused = http["worker_a"].post(
        "/hazards", **_form(_hazard(places, photo_urls=links), png(), png())
    )
    assert refused.status_code == 422 and "at most 20" in reason(refused)


def test_malformed_forms_are_refused_with_a_reason(http, places):
    worker = http["worker_a"]
    report = json.dumps(_hazard(places))
    unknown = worker.post("/hazards", data={"payload": report, "comment": "x"})
    assert unknown.status_code == 422 and "unknown form field 'comment'" in reason(unknown)
    text = worker.post("/hazards", data={"payload": report, "photos": "not a file"})
    assert text.status_code == 422 and "must be files" in reason(text)
    empty = worker.post("/hazards", **_form(None, png()))
    assert empty.status_code == 422 and "empty payload" in reason(empty)
    bad_json = worker.post("/hazards", data={"payload": "{"})
    assert bad_json.status_code == 422 and "not valid JSON" in reason(bad_json)
    twice = worker.post("/hazards", data={"payload": [report, report]})
    assert twice.status_code == 422 and "one 'payload'" in reason(twice)
    as_file = worker.post(
        "/hazards", files=[("payload", ("blob", report.encode(), "application/json"))]
    )
    assert as_file.status_code == 201, as_file.text  # a Blob of JSON is the payload too
    # A browser's form with its file input left empty sends a part with an empty filename
    # and no bytes: no photo, no refusal.
    browser_form = (
        b'--b\r\nContent-Disposition: form-data; name="payload"\r\n\r\n'
        + json.dumps(_hazard(places)).encode()
        + b'\r\n--b\r\nContent-Disposition: form-data; name="photos"; filename=""\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n\r\n--b--\r\n"
    )
    unchosen = worker.post(
        "/hazards",
        content=browser_form,
        headers={"content-type": "multipart/form-data; boundary=b"},
    )
    assert unchosen.status_code == 201 and unchosen.json()["properties"]["photo_urls"] == []
    plain = worker.post("/hazards", content=b"x", headers={"content-type": "text/plain"})
    assert plain.status_code == 415 and "multipart/form-data" in reason(plain)
    # Not a write that takes photos: a multipart body is not read ahead, and is refused.
    absence = worker.post("/absences", data={"payload": "{}"}, files=[("photos", ("a", b"x"))])
    assert absence.status_code == 422


@pytest.fixture(scope="module")
def small_server(seeded_url, tmp_path_factory):
    """A server that takes photos of at most 20,000 bytes."""
    settings = api_settings(tmp_path_factory.mktemp("small"), seeded_url, media_max_bytes=20_000)
    with ApiServer(settings, seeded_url, Clock()) as server:
        yield server


def _noise_jpeg(side: int) -> bytes:
    image = Image.frombytes("RGB", (side, side), bytes(range(256)) * (side * side * 3 // 256))
    out = io.BytesIO()
    image.effect_spread(7).save(out, "JPEG", quality=98)
    return out.getvalue()


def test_an_oversize_photo_or_body_is_413(small_server, module_tokens, places, seeded_url):
    big = _noise_jpeg(400)
    assert len(big) > 20_000
    report = _hazard(places)
    with small_server.client("worker_a", module_tokens) as worker:
        refused = worker.post("/hazards", **_form(report, png(), big))
        assert refused.status_code == 413 and "photo 2 has" in reason(refused)
        # A body over what 20 photos and the JSON can take is refused before it is read...
        limit = 64 * 1024 + 20 * 20_000 + 64 * 1024
        huge = b"-" * (limit + 1)
        declared = worker.post(
            "/hazards",
            content=huge,
            headers={"content-type": "multipart/form-data; boundary=xyz"},
        )
        assert declared.status_code == 413, declared.text

        # ...and one sent in chunks, without a length, is cut off where it passes the limit.
        def chunks():
            yield b'--xyz\r\nContent-Disposition: form-data; name="photos"; filename="a"\r\n\r\n'
            for _ in range(limit // 65536 + 2):
                yield b"\xff" * 65536

        streamed = worker.post(
            "/hazards",
            content=chunks(),
            headers={"content-type": "multipart/form-data; boundary=xyz"},
        )
        assert streamed.status_code == 413, streamed.text
    assert _media_rows(seeded_url, hazard_id=report["id"]) == []
    assert _files(small_server) == set()


# -- forgetting a resident ----------------------------------------------------------------------


def test_forgetting_a_resident_deletes_the_photos_of_their_visits(
    http, places, seeded_url, module_server
):
    lon, lat = places[GRID_A]
    resident = _second_resident(seeded_url, GRID_A, 2)
    visit = {"lat": lat, "lon": lon, "kind": "visit", "resident_id": resident,
             "status": "concern", "ts": "2026-11-23T09:00:00+08:00",
             "photo_urls": ["https://img.example.cn/door.jpg"]}  # fmt: skip
    posted = http["worker_a"].post("/checkins", **_form(visit, jpeg_with_gps(), png()))
    assert posted.status_code == 201, posted.text
    ids = _media_ids(posted.json()["properties"]["photo_urls"])
    keys = {key for media_id in ids for key in photo_keys(uuid.UUID(media_id))}
    assert keys <= _files(module_server)
    hazard = http["worker_a"].post("/hazards", **_form(_hazard(places), jpeg_with_gps()))
    [kept] = _media_ids(hazard.json()["properties"]["photo_urls"])

    printed = io.StringIO()
    data_dir = module_server.state.settings.data_dir
    command = ["residents", "forget", resident, "--by", "dpo", "--database-url", seeded_url,
               "--data-dir", str(data_dir)]  # fmt: skip
    with contextlib.redirect_stdout(printed):
        assert main(command) == 0
    assert "2 photo(s) of their home visits deleted" in printed.getvalue()
    assert keys & _files(module_server) == set(), "the images are gone"
    assert _media_rows(seeded_url, resident_id=resident) == []
    for media_id in ids:
        assert http["worker_a"].get(f"/media/{media_id}").status_code == 404
    visit_now = http["worker_a"].get(f"/collections/checkins/items/{posted.json()['id']}").json()
    assert visit_now["properties"]["photo_urls"] == [], "the links to the home go too"
    assert visit_now["properties"]["resident_id"] is None
    assert http["worker_a"].get(f"/media/{kept}").status_code == 200, "other photos stay"
    audited = _fetch(
        seeded_url,
        "SELECT actor, what FROM personal_data_audit WHERE action = 'forget' "
        "AND resident_ids = ARRAY[%s]",
        resident,
    )
    assert audited == [("dpo", "gridwatch residents forget")]


def test_photos_of_check_ins_past_retention_are_deleted(http, places, seeded_url, module_server):
    lon, lat = places[GRID_A]
    old = {"lat": lat, "lon": lon, "ts": "2026-11-20T06:00:00+08:00"}
    posted = http["worker_a"].post("/checkins", **_form(old, png()))
    [media_id] = _media_ids(posted.json()["properties"]["photo_urls"])
    keys = set(photo_keys(uuid.UUID(media_id)))
    assert keys <= _files(module_server)
    store = module_server.state.media
    with psycopg.connect(seeded_url) as conn:
        cut = datetime.fromisoformat("2026-11-20T06:00:01+08:00")
        gone = delete_expired_checkin_media(
            conn, before=cut, remove_photos=partial(delete_photos, store)
        )
    assert gone == 1 and keys & _files(module_server) == set()
    assert http["worker_a"].get(f"/media/{media_id}").status_code == 404


# -- an S3 store --------------------------------------------------------------------------------


def test_photos_kept_in_an_s3_store(seeded_url, module_tokens, places, tmp_path, monkeypatch):
    with s3_server(monkeypatch) as (endpoint, client):
        media_url = f"s3://{BUCKET}/district/photos?endpoint={endpoint}"
        settings = api_settings(tmp_path, seeded_url, media_url=media_url)
        with ApiServer(settings, seeded_url, Clock()) as server:
            with server.client("worker_a", module_tokens) as worker:
                lon, lat = places[GRID_A]
                resident = _second_resident(seeded_url, GRID_A, 3)
                visit = {"lat": lat, "lon": lon, "kind": "visit", "resident_id": resident,
                         "status": "ok", "ts": "2026-11-23T08:00:00+08:00"}  # fmt: skip
                posted = worker.post("/checkins", **_form(visit, jpeg_with_gps()))
                assert posted.status_code == 201, posted.text
                [media_id] = _media_ids(posted.json()["properties"]["photo_urls"])
                full = worker.get(f"/media/{media_id}")
                thumb = worker.get(f"/media/{media_id}/thumb")
            with server.client("worker_b", module_tokens) as other:
                assert other.get(f"/media/{media_id}").status_code == 404
        assert full.status_code == 200 and exif_of(full.content) == {}
        stored = client.get_object(Bucket=BUCKET, Key=f"district/photos/{media_id}")
        assert stored["Body"].read() == full.content
        assert stored["ContentType"] == "image/jpeg"
        small = client.get_object(Bucket=BUCKET, Key=f"district/photos/{media_id}.thumb")
        assert small["Body"].read() == thumb.content
        assert not (tmp_path / "data" / "media").exists(), "nothing written to the folder"

        monkeypatch.setenv("GRIDWATCH_MEDIA_URL", media_url)
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(["residents", "forget", resident, "--database-url", seeded_url]) == 0
        listed = client.list_objects_v2(Bucket=BUCKET, Prefix="district/photos/")
        assert listed.get("KeyCount", 0) == 0, "the visit's objects are deleted"


def test_an_unreachable_s3_store_refuses_the_post_and_stores_nothing(
    seeded_url, module_tokens, places, tmp_path, monkeypatch
):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    from tests.support.ports import free_port

    media_url = f"s3://{BUCKET}?endpoint=http://127.0.0.1:{free_port()}"
    settings = api_settings(tmp_path, seeded_url, media_url=media_url)
    report = _hazard(places)
    with (
        ApiServer(settings, seeded_url, Clock()) as server,
        server.client("worker_a", module_tokens) as worker,
    ):
        refused = worker.post("/hazards", **_form(report, png()))
    assert refused.status_code == 503 and "cannot be reached" in reason(refused)
    assert _media_rows(seeded_url, hazard_id=report["id"]) == []
    assert count_rows(seeded_url, "hazard_reports", "id = %s", (report["id"],)) == 0
