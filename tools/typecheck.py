"""Type-check gridwatch with mypy, as the package installs.

    python tools/typecheck.py [mypy options]

gridwatch installs one package, `gridwatch`, from several folders of this repository
(`[tool.setuptools.package-dir]` in pyproject.toml: `ingest/` is `gridwatch.ingest`, …).
mypy knows nothing of that mapping, so this lays the package out as it installs — a
temporary tree of links to the folders — runs `mypy -p gridwatch` over it with the
settings of `[tool.mypy]`, and prints each finding with the path of the file in this
repository. Exits with mypy's status.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def package_tree(into: Path) -> dict[str, str]:
    """Link each folder of the package-dir mapping where it installs; returns the prefixes
    to map mypy's paths back (installed path prefix → repository folder)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    mapping: dict[str, str] = config["tool"]["setuptools"]["package-dir"]
    top = into / "gridwatch"
    top.mkdir()
    back = {}
    for package, folder in sorted(mapping.items(), key=lambda item: item[0].count(".")):
        installed = Path(*package.split("."))
        if package == "gridwatch":
            for entry in (ROOT / folder).iterdir():
                if entry.suffix in (".py", ".typed"):
                    (top / entry.name).symlink_to(entry)
        else:
            (into / installed).symlink_to(ROOT / folder, target_is_directory=True)
        back[f"{installed.as_posix()}/"] = f"{folder}/"
    return back


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="gridwatch-typecheck-") as tree:
        back = package_tree(Path(tree))
        command = [
            sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
            "-p", "gridwatch", *sys.argv[1:],
        ]  # fmt: skip
        env = os.environ | {"MYPYPATH": tree}
        result = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)  # noqa: S603 - our own interpreter and arguments
    # The longest prefix first: "gridwatch/ingest/" before "gridwatch/".
    prefixes = sorted(back, key=len, reverse=True)
    pattern = re.compile("^(" + "|".join(re.escape(p) for p in prefixes) + ")", re.MULTILINE)
    output = pattern.sub(lambda m: back[m.group(1)], result.stdout)
    sys.stdout.write(output)
    sys.stderr.write(result.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
