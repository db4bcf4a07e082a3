"""The dispute keyword matcher: variants of a word meet (width, case, traditional and
simplified), a keyword inside any text is found, and the automaton finds exactly what a loop
of `in` over the library finds."""

from __future__ import annotations

from dataclasses import replace

import opencc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridwatch.disputes.folding import fold
from gridwatch.disputes.matcher import CategoryHit, Keyword, LoopMatcher, Matcher
from gridwatch.disputes.starter import starter_keywords
from gridwatch.model.vocabulary import DISPUTE_CATEGORIES

EXAMPLES = settings(max_examples=300, deadline=None)

# Any text at all around a keyword: folding works per character, so nothing before or after
# a keyword (a combining mark, a control character) changes how the keyword folds.
HAN = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)
NOTES = st.text(st.one_of(HAN, st.characters()), max_size=80)
WORD_CHARACTERS = st.one_of(HAN, st.sampled_from("abcdefghijklmnopqrstuvwxyzABCXYZ0123456789"))
WORDS = st.text(WORD_CHARACTERS, min_size=2, max_size=6)
CATEGORIES = st.sampled_from(["邻里纠纷", "婚姻家庭", "劳资纠纷", "债务经济"])
LIBRARIES = st.lists(
    st.builds(Keyword, CATEGORIES, WORDS, st.sampled_from([1.0, 0.5, 2.0])),
    min_size=1,
    max_size=30,
    unique_by=lambda k: (k.category, fold(k.keyword)),
)
TO_TRADITIONAL = opencc.OpenCC("s2t")


def full_width(text: str) -> str:
    """ASCII letters, digits and marks in their full-width forms, as Chinese IMEs type them."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def found(hits: list[CategoryHit]) -> set[tuple[str, str]]:
    return {(h.category, k) for h in hits for k in h.keywords}


def test_variants_of_a_word_meet():
    matcher = Matcher([Keyword("邻里纠纷", "邻居吵架"), Keyword("债务经济", "QQ群借钱")])
    hits = matcher.scan("樓上鄰居吵架了，又在ｑｑ群借錢")  # noqa: RUF001
    assert found(hits) == {("邻里纠纷", "邻居吵架"), ("债务经济", "QQ群借钱")}


def test_weights_add_up_to_a_hit():
    library = [Keyword("邻里纠纷", "噪音", 0.5), Keyword("邻里纠纷", "扰民", 0.5)]
    matcher = Matcher(library)
    assert matcher.scan("楼上噪音不断") == []
    [hit] = matcher.scan("楼上噪音不断。半夜扰民")
    assert (hit.category, hit.keywords, hit.weight) == ("邻里纠纷", ("噪音", "扰民"), 1.0)


def test_one_keyword_in_two_categories_hits_both():
    matcher = Matcher([Keyword("劳资纠纷", "拖欠"), Keyword("债务经济", "拖欠")])
    assert [h.category for h in matcher.scan("老板拖欠三个月")] == ["劳资纠纷", "债务经济"]


def test_overlapping_keywords_are_all_found():
    matcher = Matcher([Keyword("劳资纠纷", "拖欠工资"), Keyword("劳资纠纷", "欠工资不给")])
    [hit] = matcher.scan("老板拖欠工资不给")
    assert hit.keywords == ("拖欠工资", "欠工资不给")


def test_nothing_to_find():
    matcher = Matcher([Keyword("邻里纠纷", "邻居吵架")])
    assert matcher.scan(None) == [] and matcher.scan("") == []
    assert matcher.scan("今天走访 老人身体很好") == []
    assert Matcher([]).scan("邻居吵架") == []


def test_a_one_character_keyword_is_refused():
    with pytest.raises(ValueError, match="shorter than 2"):
        Matcher([Keyword("邻里纠纷", "\uff21")])  # a full-width A


def test_folding_keeps_control_characters_and_meets_decomposed_forms():
    assert fold("鄰\x00里\n糾紛") == "邻\x00里\n纠纷"
    assert fold("caf\u00e9") == fold("cafe\u0301")  # é composed, and e with its accent
    assert fold("\uf900") == fold("\u8c48") == "岂"  # a compatibility ideograph


@EXAMPLES
@given(LIBRARIES, st.data(), NOTES, NOTES)
def test_a_keyword_inside_any_note_is_found(library, data, before, after):
    n = data.draw(st.integers(0, len(library) - 1))
    library[n] = keyword = replace(library[n], weight=1.0)  # a hit alone
    hits = Matcher(library).scan(before + keyword.keyword + after)
    assert (keyword.category, keyword.keyword) in found(hits)


@EXAMPLES
@given(LIBRARIES, st.data(), NOTES, NOTES)
def test_width_case_and_script_variants_are_found(library, data, before, after):
    n = data.draw(st.integers(0, len(library) - 1))
    library[n] = keyword = replace(library[n], weight=1.0)
    variant = full_width(TO_TRADITIONAL.convert(keyword.keyword).swapcase())
    hits = Matcher(library).scan(before + variant + after)
    assert (keyword.category, keyword.keyword) in found(hits)


@EXAMPLES
@given(LIBRARIES, st.lists(st.one_of(NOTES, WORDS), max_size=6).map("".join))
def test_the_automaton_finds_what_a_loop_finds(library, note):
    assert Matcher(library).scan(note) == LoopMatcher(library).scan(note)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_text_is_scanned_without_error(text):
    hits = Matcher([Keyword("邻里纠纷", "邻居吵架"), Keyword("债务经济", "借钱")]).scan(text)
    assert {h.category for h in hits} <= {"邻里纠纷", "债务经济"}


def test_the_starter_library_covers_the_eight_categories():
    keywords = starter_keywords()
    assert {k.category for k in keywords} == set(DISPUTE_CATEGORIES)
    assert len(keywords) >= 300
    assert len({(k.category, fold(k.keyword)) for k in keywords}) == len(keywords)
    matcher = Matcher(keywords)
    assert [h.category for h in matcher.scan("老板拖欠工资三个月 工人们说要集体上访")] == [
        "劳资纠纷",
        "涉稳信访",
    ]
    assert matcher.scan("走访独居老人 身体状况良好 家中整洁") == []


def test_every_starter_keyword_matches_in_traditional_script():
    keywords = starter_keywords()
    matcher = Matcher(replace(k, weight=1.0) for k in keywords)  # each one a hit alone
    for k in keywords:
        hits = matcher.scan("據說" + TO_TRADITIONAL.convert(k.keyword) + "了")
        assert k.keyword in {w for h in hits for w in h.keywords}, k
