"""The files the import tests write, and how a refused import reads: grid layers (as a user's
GIS writes them) with a small hierarchy of Qingshan District, Baotou, and residents CSVs."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pytest
from shapely.geometry import box

from gridwatch.cli import main
from gridwatch.errors import InputFileError
from gridwatch.imports.residents import COLUMNS, RESIDENTS, read_residents_csv

# -- grid layers ----------------------------------------------------------------------------

# Three grids in Qingshan District, Baotou (WGS-84 lon/lat).
BAOTOU = [
    ("QS-01-01-01", "富强社区第1网格", box(109.880, 40.640, 109.890, 40.650)),
    ("QS-01-01-02", "富强社区第2网格", box(109.890, 40.640, 109.900, 40.650)),
    ("QS-01-01-03", "富强社区第3网格", box(109.880, 40.650, 109.900, 40.660)),
]


def write_layer(path: Path, rows: list[dict], crs: str | None = "EPSG:4326", **kwargs) -> Path:
    """Write rows (each with a "geometry" key) with geopandas, as a user's GIS would."""
    frame = gpd.GeoDataFrame(rows, geometry="geometry", crs=crs)
    frame.to_file(path, engine="pyogrio", **kwargs)
    return path


def baotou_rows() -> list[dict]:
    return [{"code": c, "name": n, "geometry": g} for c, n, g in BAOTOU]


# A small hierarchy in Qingshan District, Baotou: district > 2 streets > 2 communities > 3 grids.
DISTRICT = [("150204", "青山区", box(109.86, 40.62, 109.94, 40.68))]
STREETS = [
    ("ST-A", "西街道", box(109.86, 40.62, 109.90, 40.68)),
    ("ST-B", "东街道", box(109.90, 40.62, 109.94, 40.68)),
]
COMMUNITIES = [
    ("C-A1", "富强社区", box(109.86, 40.62, 109.88, 40.65)),
    ("C-B1", "幸福社区", box(109.90, 40.62, 109.92, 40.65)),
]
GRIDS = [
    ("G-1", "富强第1网格", box(109.861, 40.621, 109.869, 40.629)),
    ("G-2", "富强第2网格", box(109.871, 40.621, 109.879, 40.629)),
    ("G-3", "幸福第1网格", box(109.901, 40.621, 109.909, 40.629)),
]
CONTAINED_IN = {
    "ST-A": "150204", "ST-B": "150204", "C-A1": "ST-A", "C-B1": "ST-B",
    "G-1": "C-A1", "G-2": "C-A1", "G-3": "C-B1",
}  # fmt: skip


def write_features(path: Path, features, **fields) -> Path:
    """Write (code, name, geometry) features in WGS-84, with `fields` as columns of values
    per feature."""
    rows = [
        {"code": code, "name": name, **{k: v[i] for k, v in fields.items()}, "geometry": geom}
        for i, (code, name, geom) in enumerate(features)
    ]
    gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:4326").to_file(path, engine="pyogrio")
    return path


# -- residents CSVs -------------------------------------------------------------------------

# The columns every file has (a register that names no buildings leaves theirs out).
HEADER = ",".join(c for c in COLUMNS if c not in RESIDENTS.optional)
GOOD_ROWS = [
    "R00001,王桂兰,青山区富强路12号3栋2单元301室,40.6512,109.9011,QS-01-01-01,M00001,"
    "S00001-door;S00001-curtain,13900000001,true",
    "R00002,李德福,青山区幸福路5号1栋1单元102室,,,QS-01-02-03,M00002,S00002-door,,是",
    "R00003,张秀英,青山区青松路8号2栋3单元502室,40.6444,109.8950,,,,13900000003,否",
]


def write_csv(tmp_path, lines: list[str], name: str = "residents.csv", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def error_lines(path) -> list[str]:
    with pytest.raises(InputFileError) as caught:
        read_residents_csv(path)
    return str(caught.value).splitlines()


# -- imports through the CLI ----------------------------------------------------------------


def cli(*args: str) -> int:
    """`gridwatch ARGS` in this process; its exit code."""
    return main(list(args))


def assert_one_error_line(stderr: str, *needles: str) -> None:
    """A refusal reads as one `gridwatch: error:` line holding each of `needles`, no traceback."""
    errors = [line for line in stderr.splitlines() if line.startswith("gridwatch:")]
    assert len(errors) == 1, stderr
    assert errors[0].startswith("gridwatch: error: "), stderr
    for needle in needles:
        assert needle in errors[0], (needle, stderr)
    assert "Traceback" not in stderr
