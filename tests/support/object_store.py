"""A real S3-speaking HTTP server for the tests: moto's ThreadedMotoServer on a free port of
127.0.0.1, with a bucket made through boto3 as any client would."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import boto3
import pytest
from moto.server import ThreadedMotoServer

BUCKET = "gridwatch-photos"


@contextmanager
def s3_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, object]]:
    """(endpoint URL, a boto3 client of it) with BUCKET made; AWS_* credentials set for the
    process, as a deployment sets them for gridwatch."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield endpoint, client
    finally:
        server.stop()
