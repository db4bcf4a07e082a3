"""The ground truth of the keyword quality report: the simulator's texts carry the labels
their sentences give them, and the report counts recall and false warnings as defined.

Not a test of the library's quality: `python bench/keyword_quality.py` measures that.
"""

from __future__ import annotations

import pytest

from gridwatch.model.vocabulary import DISPUTE_CATEGORIES
from gridwatch.simulators.dispute_texts import (
    HARD_NEGATIVES,
    MAX_CHARS,
    MIN_CHARS,
    PARAPHRASE,
    STATED,
    LabelledText,
    labelled_texts,
)
from gridwatch.simulators.keyword_quality import keyword_quality


def clauses_in(text: str) -> set[tuple[str | None, str]]:
    """The (category, form) of every labelled sentence `text` holds."""
    found = {(None, "hard_negative") for clause in HARD_NEGATIVES if clause in text}
    for form, pool in (("stated", STATED), ("paraphrase", PARAPHRASE)):
        found |= {(c, form) for c, clauses in pool.items() for clause in clauses if clause in text}
    return found


def test_every_text_holds_the_one_sentence_its_label_names():
    texts = labelled_texts(2000, seed=5)
    assert set(STATED) == set(PARAPHRASE) == set(DISPUTE_CATEGORIES)
    forms = {t.form for t in texts}
    assert forms == {"plain", "hard_negative", "stated", "paraphrase"}
    assert {t.category for t in texts} == {None, *DISPUTE_CATEGORIES}
    assert 0 < sum(t.traditional for t in texts) < 0.1 * len(texts)
    for text in texts:
        assert MIN_CHARS <= len(text.text) <= MAX_CHARS + 1, text
        assert (text.category is None) == (text.form in ("plain", "hard_negative")), text
        if text.traditional:
            continue
        held = clauses_in(text.text)
        if text.form == "plain":
            assert held == set(), text
        else:
            assert (text.category, text.form) in held, text
            assert {c for c, _ in held if c is not None} <= {text.category}, text


def test_the_same_seed_gives_the_same_texts():
    assert labelled_texts(50, seed=3) == labelled_texts(50, seed=3)
    assert labelled_texts(50, seed=3) != labelled_texts(50, seed=4)


def test_recall_and_false_warnings_are_counted_as_defined():
    texts = [
        LabelledText("a", "visit", "邻里纠纷", "stated"),  # found
        LabelledText("b", "visit", "邻里纠纷", "paraphrase"),  # missed, and a wrong category
        LabelledText("c", "request", "劳资纠纷", "stated"),  # found, with another category
        LabelledText("d", "patrol", None, "hard_negative"),  # two false warnings
        LabelledText("e", "patrol", None, "plain"),  # none
    ]
    warned = [{"邻里纠纷"}, {"债务经济"}, {"劳资纠纷", "涉稳信访"}, {"物业纠纷", "邻里纠纷"}, set()]
    report = keyword_quality(texts, warned, DISPUTE_CATEGORIES)
    assert (report.texts, report.disputes, report.found) == (5, 3, 2)
    assert report.recall == pytest.approx(2 / 3)
    assert (report.warnings, report.false_warnings, report.wrong_category) == (6, 4, 2)
    assert report.per_1000(report.false_warnings) == 800.0
    by_category = {c.category: c for c in report.categories}
    assert (by_category["邻里纠纷"].texts, by_category["邻里纠纷"].found) == (2, 1)
    assert by_category["邻里纠纷"].false_warnings == 1  # on the hard negative
    assert by_category["劳资纠纷"].recall == 1.0
    assert by_category["医疗纠纷"].recall is None
    assert report.found_by_form["paraphrase"] == (0, 1)
    assert report.false_by_form == {
        "plain": 0, "hard_negative": 2, "stated": 1, "paraphrase": 1
    }  # fmt: skip
    summary = report.summary()
    assert summary["recall"] == 0.667 and summary["false_warnings_per_1000"] == 800.0
    assert summary["precision"] == round(2 / 6, 3)
    assert summary["categories"]["物业纠纷"] == {
        "texts": 0, "recall": None, "false_warnings_per_1000": 200.0
    }  # fmt: skip


def test_texts_and_warnings_must_pair_up():
    with pytest.raises(ValueError, match="2 texts but 1"):
        keyword_quality([LabelledText("a", "visit", None, "plain")] * 2, [set()], ["邻里纠纷"])
