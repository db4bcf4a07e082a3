"""The keyword library CSV: `category,keyword,weight` (类别,关键词,权重), weight optional
(1 when empty or left out); UTF-8 or GBK as the other tables (`gridwatch.imports.tables`)."""

from __future__ import annotations

import math
import unicodedata
from pathlib import Path

from gridwatch.disputes.folding import fold
from gridwatch.disputes.matcher import MIN_KEYWORD_LENGTH, Keyword
from gridwatch.imports.tables import TableFormat, read_table
from gridwatch.model.vocabulary import DISPUTE_CATEGORIES

KEYWORDS = TableFormat(
    "keywords",
    ("category", "keyword", "weight"),
    ("类别", "关键词", "权重"),
    aliases={"分类": "category", "类型": "category", "词": "keyword", "关键字": "keyword"},
    optional=("weight",),
)
MAX_CATEGORY_LENGTH = 40
MAX_KEYWORD_LENGTH = 100
MAX_WEIGHT = 100.0


def read_keywords_csv(path: str | Path, warnings: list[str] | None = None) -> list[Keyword]:
    """Parse a keyword library CSV; raises InputFileError naming the file and each bad row.

    A category other than the starter's eight is read, with a warning (a typo would make a
    category of its own)."""
    first_row_of: dict[tuple[str, str], int] = {}

    def parse(cells: dict[str, str], row: int, row_warnings: list[str]):
        problems: list[str] = []
        category, keyword = cells["category"], cells["keyword"]
        if problem := _text_problem("category", category, MAX_CATEGORY_LENGTH):
            problems.append(problem)
        elif category not in DISPUTE_CATEGORIES:
            row_warnings.append(
                f"category: {category!r} is none of the eight ({', '.join(DISPUTE_CATEGORIES)}); "
                "read as a category of its own"
            )
        folded = fold(keyword)
        if problem := _text_problem("keyword", keyword, MAX_KEYWORD_LENGTH):
            problems.append(problem)
        elif len(folded) < MIN_KEYWORD_LENGTH:
            problems.append(
                f"keyword: {keyword!r} is shorter than {MIN_KEYWORD_LENGTH} characters; "
                "one character is found in nearly every text"
            )
        elif category and first_row_of.setdefault((category, folded), row) != row:
            problems.append(
                f"keyword: {keyword!r} is already in category {category!r} in row "
                f"{first_row_of[(category, folded)]} (the same word in either script or width)"
            )
        weight = _weight(cells["weight"], problems)
        if problems:
            return None, problems
        return Keyword(category, keyword, weight), []

    return read_table(path, KEYWORDS, parse, warnings)


def _weight(text: str, problems: list[str]) -> float:
    if not text:
        return 1.0
    try:
        weight = float(unicodedata.normalize("NFKC", text))
    except ValueError:
        weight = math.nan
    if not (0 < weight <= MAX_WEIGHT):  # NaN fails too
        problems.append(f"weight: {text[:20]!r} must be a number above 0, at most {MAX_WEIGHT:g}")
    return weight


def _text_problem(field: str, text: str, longest: int) -> str | None:
    """What is wrong with a cell that must hold a short line of text; None when nothing."""
    if not text:
        return f"{field}: is empty"
    if len(text) > longest or _has_control(text):
        return (
            f"{field}: {text[:40]!r} must be at most {longest} characters "
            "without control characters"
        )
    return None


def _has_control(text: str) -> bool:
    return any(unicodedata.category(c) == "Cc" for c in text)
