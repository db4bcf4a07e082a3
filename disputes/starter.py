"""The starter keyword library shipped with gridwatch: eight categories of dispute, a few
hundred words to begin with, in use until a district imports its own
(`gridwatch keywords import FILE`). A starter, not the practice's 2,400-word library: each
district is expected to grow it from what its own notes and calls say."""

from __future__ import annotations

import csv
import io
from functools import cache
from importlib import resources

from gridwatch.disputes.matcher import Keyword

STARTER_FILE = "starter_keywords.csv"


@cache
def starter_keywords() -> tuple[Keyword, ...]:
    """The starter library's entries, in file order (an empty weight is 1)."""
    text = resources.files("gridwatch.disputes").joinpath(STARTER_FILE).read_text("utf-8")
    return tuple(
        Keyword(row["category"], row["keyword"], float(row["weight"] or 1))
        for row in csv.DictReader(io.StringIO(text))
    )
