"""From texts to warnings: each category a text hits is one warning, at the level the
accumulation rule gives it (`gridwatch.disputes.levels`), counted with the warnings its grid
already has and those of the texts planned before it."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from gridwatch.disputes.levels import others_in_window, warning_level
from gridwatch.disputes.matcher import CategoryHit, Matcher


@dataclass(frozen=True, slots=True)
class ScannedText:
    """A text as it comes in, with what the warning needs to know of where it comes from.

    `lives_alone`: the text is a visit note about (or a request from) a resident who lives
    alone; None asks the store to look the resident up."""

    source: str  # one of model.vocabulary.WARNING_SOURCES
    source_id: str
    text: str | None
    grid_id: int | None
    observed_at: datetime
    lon: float | None = None
    lat: float | None = None
    resident_id: str | None = None
    lives_alone: bool | None = None
    police_grid_id: int | None = None  # its police grid (警格), kept with the warning


@dataclass(frozen=True, slots=True)
class PastWarning:
    """A stored warning, as far as the accumulation rule and re-scans care."""

    source: str
    source_id: str
    category: str
    grid_id: int | None
    observed_at: datetime


@dataclass(frozen=True, slots=True)
class DisputeWarning:
    """A warning to store: a category a text hit, at its level."""

    text: ScannedText
    hit: CategoryHit
    level: int
    reason: str | None
    lives_alone: bool


def scan_texts(
    matcher: Matcher, texts: Iterable[ScannedText]
) -> list[tuple[ScannedText, CategoryHit]]:
    """Every (text, category hit) of the texts, in their order."""
    return [(text, hit) for text in texts for hit in matcher.scan(text.text)]


def plan_warnings(
    hits: Sequence[tuple[ScannedText, CategoryHit]],
    past: Iterable[PastWarning],
    lives_alone: dict[str, bool],
) -> list[DisputeWarning]:
    """The warnings the hits make, in the order of their texts' times, each counted with
    the past and the hits planned before it: a hit already stored (the same text scanned
    again) makes none; `lives_alone` tells of the residents named."""
    seen = {(p.source, p.source_id, p.category) for p in past}
    times: dict[tuple[int, str], list[datetime]] = defaultdict(list)
    for p in past:
        if p.grid_id is not None:
            times[(p.grid_id, p.category)].append(p.observed_at)
    planned = []
    for text, hit in sorted(hits, key=lambda pair: pair[0].observed_at):
        key = (text.source, text.source_id, hit.category)
        if key in seen:
            continue
        seen.add(key)
        alone = _lives_alone(text, lives_alone)
        others = 0
        if text.grid_id is not None:
            grid_times = times[(text.grid_id, hit.category)]
            others = others_in_window(text.observed_at, grid_times)
            grid_times.append(text.observed_at)
        level = warning_level(
            others, in_grid=text.grid_id is not None, visit_to_resident_alone=alone
        )
        planned.append(DisputeWarning(text, hit, level.level, level.reason, alone))
    return planned


def _lives_alone(text: ScannedText, residents: dict[str, bool]) -> bool:
    if text.lives_alone is not None:
        return text.lives_alone
    return text.resident_id is not None and residents.get(text.resident_id, False)
