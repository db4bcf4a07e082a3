"""The keyword library and its matching automaton (Aho-Corasick): one pass over a text finds
every keyword of every category, however many there are.

A category is hit by a text when the weights of its distinct keywords found there add up to
`HIT_WEIGHT` or more: with the default weight 1 one keyword is enough, while words that are
only a sign together with others (吵, 钱) can be given 0.5.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import ahocorasick_rs

from gridwatch.disputes.folding import fold

HIT_WEIGHT = 1.0
MIN_KEYWORD_LENGTH = 2  # folded: one character (打, 钱) would be found in nearly every note


@dataclass(frozen=True, slots=True)
class Keyword:
    """One entry of a library: a word or phrase that signals a category, and its weight."""

    category: str
    keyword: str
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class CategoryHit:
    """What one text says of one category: the keywords found (as the library spells them,
    in the order of the library) and their summed weight."""

    category: str
    keywords: tuple[str, ...]
    weight: float


class Matcher:
    """An automaton over a library's folded keywords; build it once per library version."""

    def __init__(self, keywords: Iterable[Keyword]) -> None:
        entries = list(keywords)
        patterns: dict[str, list[int]] = {}  # folded keyword -> its entries
        for n, entry in enumerate(entries):
            folded = fold(entry.keyword)
            if len(folded) < MIN_KEYWORD_LENGTH:
                raise ValueError(
                    f"keyword {entry.keyword!r} is shorter than {MIN_KEYWORD_LENGTH} characters"
                )
            patterns.setdefault(folded, []).append(n)
        self.entries = entries
        self._of_pattern = list(patterns.values())
        self._automaton = ahocorasick_rs.AhoCorasick(list(patterns)) if patterns else None

    def __len__(self) -> int:
        return len(self.entries)

    def scan(self, text: str | None) -> list[CategoryHit]:
        """The categories `text` hits, in library order."""
        if not text or self._automaton is None:
            return []
        found = self._automaton.find_matches_as_indexes(fold(text), overlapping=True)
        if not found:
            return []
        entries = sorted({n for pattern, _, _ in found for n in self._of_pattern[pattern]})
        return category_hits(self.entries[n] for n in entries)


def category_hits(found: Iterable[Keyword]) -> list[CategoryHit]:
    """The categories that keywords found in one text (each once, in library order) hit."""
    by_category: dict[str, list[Keyword]] = defaultdict(list)
    for entry in found:
        by_category[entry.category].append(entry)
    hits = []
    for category, entries in by_category.items():
        weight = sum(k.weight for k in entries)
        if weight >= HIT_WEIGHT - 1e-9:  # ten keywords of 0.1 are a hit too
            hits.append(CategoryHit(category, tuple(k.keyword for k in entries), weight))
    return hits


class LoopMatcher:
    """What `Matcher` finds, by a loop of `in` over every (folded) keyword: the reference the
    automaton is checked and measured against (bench/keywords.py)."""

    def __init__(self, keywords: Iterable[Keyword]) -> None:
        self.keywords = [(fold(k.keyword), k) for k in keywords]

    def scan(self, text: str | None) -> list[CategoryHit]:
        if not text:
            return []
        folded = fold(text)
        return category_hits(k for word, k in self.keywords if word in folded)
