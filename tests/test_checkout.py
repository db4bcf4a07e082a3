"""The checkout runs with either install: nothing in the repository's root shadows the
installed `gridwatch` package when commands run from there (`python -m gridwatch`, bench/)."""

from __future__ import annotations

import importlib.machinery
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_nothing_in_the_root_is_importable_as_gridwatch():
    # With `pip install .` (not editable), the directory a command runs from comes first on
    # sys.path: a `gridwatch` folder or module there would hide the installed package.
    assert importlib.machinery.PathFinder.find_spec("gridwatch", [str(ROOT)]) is None


def test_python_m_gridwatch_from_the_checkout_uses_the_whole_package():
    done = subprocess.run(
        [sys.executable, "-m", "gridwatch", "--help"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "demo" in done.stdout
    # The package found from the root is the installed one, with every room in it.
    probe = "import gridwatch.ingest.worker, gridwatch.dispatch.service, gridwatch.api.app"
    found = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert found.returncode == 0, found.stderr


def test_a_bench_script_starts_from_the_checkout():
    done = subprocess.run(
        [sys.executable, "bench/geo.py", "--help"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
