"""Registering devices as an operator does, through the CLI."""

from __future__ import annotations

from pathlib import Path


def add_device(capsys, database_url: str, password_file: Path, *argv: str) -> str:
    """`gridwatch devices add ARGV --password-file F`; returns the password it printed."""
    from gridwatch.cli import main

    capsys.readouterr()
    code = main(
        ["devices", "add", *argv, "--password-file", str(password_file), "--database-url",
         database_url]
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    return out.splitlines()[-1]
