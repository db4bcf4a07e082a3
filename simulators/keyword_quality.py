"""How well a keyword library warns of the disputes in labelled texts: recall per category
and per form, and false warnings per 1,000 texts.

A warning is one category a text hits (as `gridwatch.disputes.matcher.Matcher.scan` gives
them, each a level-1 warning when stored). It is *right* when the text tells of a dispute
of that category; every other warning is *false* — on a text that tells of no dispute, or
of another category than the one it tells of (`wrong_category`). A dispute text is *found*
when a warning of its own category is among its warnings.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from gridwatch.simulators.dispute_texts import FORMS, LabelledText


@dataclass(frozen=True, slots=True)
class CategoryQuality:
    """One category: its dispute texts, how many were found, and the false warnings of the
    category (on texts that are not of it)."""

    category: str
    texts: int
    found: int
    false_warnings: int

    @property
    def recall(self) -> float | None:
        return self.found / self.texts if self.texts else None


@dataclass(frozen=True, slots=True)
class KeywordQuality:
    texts: int
    disputes: int
    found: int
    warnings: int
    false_warnings: int
    wrong_category: int  # of the false warnings: on a dispute text, of another category
    categories: tuple[CategoryQuality, ...]
    texts_by_form: dict[str, int]
    found_by_form: dict[str, tuple[int, int]]  # form -> (found, dispute texts)
    false_by_form: dict[str, int]  # form -> false warnings on texts of that form

    @property
    def recall(self) -> float | None:
        return self.found / self.disputes if self.disputes else None

    def per_1000(self, count: int) -> float:
        """`count` per 1,000 texts."""
        return 1000 * count / self.texts if self.texts else 0.0

    def summary(self) -> dict:
        """The figures as one JSON-ready object."""
        return {
            "texts": self.texts,
            "disputes": self.disputes,
            "recall": _round(self.recall),
            "recall_by_form": {
                form: _round(found / total if total else None)
                for form, (found, total) in self.found_by_form.items()
                if total
            },
            "false_warnings_per_1000": round(self.per_1000(self.false_warnings), 1),
            "false_warnings_per_1000_by_form": {
                form: round(self.per_1000(n), 1) for form, n in self.false_by_form.items()
            },
            "wrong_category_per_1000": round(self.per_1000(self.wrong_category), 1),
            "precision": _round(
                (self.warnings - self.false_warnings) / self.warnings if self.warnings else None
            ),
            "categories": {
                c.category: {
                    "texts": c.texts,
                    "recall": _round(c.recall),
                    "false_warnings_per_1000": round(self.per_1000(c.false_warnings), 1),
                }
                for c in self.categories
            },
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def keyword_quality(
    texts: Sequence[LabelledText], warned: Sequence[Collection[str]], categories: Sequence[str]
) -> KeywordQuality:
    """The quality of the warnings `warned[i]` (categories) made for `texts[i]`, with a row
    for each of `categories` (and for any other category a text or warning names)."""
    if len(texts) != len(warned):
        raise ValueError(f"{len(texts)} texts but {len(warned)} sets of warnings")
    disputes: Counter[str] = Counter()
    found: Counter[str] = Counter()
    false: Counter[str] = Counter()
    found_by_form: Counter[str] = Counter()
    disputes_by_form: Counter[str] = Counter()
    false_by_form: Counter[str] = Counter()
    texts_by_form: Counter[str] = Counter()
    wrong_category = warnings = 0
    for text, hits in zip(texts, warned, strict=True):
        hits = set(hits)
        warnings += len(hits)
        texts_by_form[text.form] += 1
        if text.category is not None:
            disputes[text.category] += 1
            disputes_by_form[text.form] += 1
            if text.category in hits:
                found[text.category] += 1
                found_by_form[text.form] += 1
        wrong = hits - {text.category}
        false.update(wrong)
        false_by_form[text.form] += len(wrong)
        if text.category is not None:
            wrong_category += len(wrong)
    names = list(categories) + sorted((disputes.keys() | false.keys()) - set(categories))
    return KeywordQuality(
        texts=len(texts),
        disputes=sum(disputes.values()),
        found=sum(found.values()),
        warnings=warnings,
        false_warnings=sum(false.values()),
        wrong_category=wrong_category,
        categories=tuple(CategoryQuality(c, disputes[c], found[c], false[c]) for c in names),
        texts_by_form={f: texts_by_form[f] for f in FORMS},
        found_by_form={f: (found_by_form[f], disputes_by_form[f]) for f in FORMS},
        false_by_form={f: false_by_form[f] for f in FORMS},
    )
