"""Shared by the tests that run `gridwatch demo` as a child process on its embedded defaults:
its environment, and waiting for what it prints. A pytest plugin: `demo_data`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.ports import free_port

OFFICER_LINE = r"duty officer token \(log in at (\S+)/login\): (\S+)"
LIVE_LINE = r"the district now lives"


@pytest.fixture(name="demo_data")
def demo_data_fixture() -> Iterator[Path]:
    """A data directory for the demo outside pytest's: run as root, the embedded PostgreSQL
    runs as a service user who must reach its directory, and each pytest session started
    as root makes pytest's own directory private again (mode 0700), as a session running
    beside this one does at any moment."""
    top = Path(tempfile.mkdtemp(prefix="gridwatch-demo-"))
    yield top / "data"
    shutil.rmtree(top, ignore_errors=True)


def demo_env(data: Path) -> dict[str, str]:
    """This environment without any GRIDWATCH_* setting: embedded services in `data`, the
    API on a free port."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("GRIDWATCH_")}
    env.update(
        GRIDWATCH_DATA_DIR=str(data), GRIDWATCH_API_PORT=str(free_port()), PYTHONUNBUFFERED="1"
    )
    return env


def wait_for_line(path: Path, pattern: str, process: subprocess.Popen, timeout: float):
    """The first match of `pattern` in the demo's output file; fails the test if the demo
    ends or `timeout` passes first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(pattern, path.read_text(encoding="utf-8", errors="replace"))
        if found:
            return found
        if process.poll() is not None:
            pytest.fail(f"the demo ended early: {path.read_text()[-2000:]}")
        time.sleep(0.2)
    pytest.fail(f"the demo printed no {pattern!r} within {timeout} s")
