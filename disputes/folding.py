"""One form for the variants of the same word: full-width and half-width (NFKD), upper and
lower case, traditional and simplified characters (OpenCC's tables).

Both the library's keywords and every text scanned are folded the same way, so that 鄰里糾紛,
邻里纠纷 and ＱＱ群 / qq群 meet. Folding works character by character, never on phrases or
across characters: a keyword folds to the same characters wherever it stands in a text, so a
keyword inside any text is found. Per character, NFKD rather than NFKC: a composed é and an
e followed by its combining accent both become the latter. The whole fold is one table, and
one `str.translate` pass over a text.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from functools import cache

import opencc

# The ranges of Han characters that have traditional forms: the unified ideographs, their
# extensions A and B, and the compatibility ideographs.
_HAN_RANGES = ((0x3400, 0x4DC0), (0x4E00, 0xA000), (0xF900, 0xFB00), (0x20000, 0x2A6E0))


def _convert(config: str, chars: list[str]) -> list[str]:
    """Each character converted alone by OpenCC: one call, each character on a line of its
    own (a line break is in no phrase of OpenCC's dictionaries)."""
    converted: list[str] = opencc.OpenCC(config).convert("\n".join(chars)).split("\n")
    if len(converted) != len(chars):
        raise RuntimeError(f"OpenCC {config} changed the number of lines of a character list")
    return converted


@cache
def han_table() -> dict[int, str]:
    """Each Han character mapped to the one character that stands for all its variants.

    OpenCC's two directions do not go round: 麹 is simplified already, yet its traditional
    form 麴 simplifies to 曲. So the characters that either direction links are taken as one
    class (union-find), and a class is written as the simplified form most of its members
    have: 麹, 麴 and 曲 all fold to 曲, and a word folds the same in either script."""
    chars = [chr(code) for start, end in _HAN_RANGES for code in range(start, end)]
    simplified = _convert("t2s", chars)
    parent: dict[str, str] = {}

    def root(c: str) -> str:
        while parent[c] != c:
            parent[c] = c = parent[parent[c]]
        return c

    for c, *linked in zip(chars, simplified, _convert("s2t", chars), strict=True):
        for other in linked:
            if len(other) == 1 and other != c:
                parent.setdefault(c, c)
                parent.setdefault(other, other)
                parent[root(other)] = root(c)
    classes: dict[str, list[str]] = {}
    for c in parent:
        classes.setdefault(root(c), []).append(c)
    of_char = dict(zip(chars, simplified, strict=True))
    table = {}
    for members in classes.values():
        votes = Counter(of_char[c] for c in members if of_char.get(c, "") in members)
        name = max(votes, key=lambda s: (votes[s], -ord(s))) if votes else min(members)
        table.update({ord(c): name for c in members if c != name})
    return table


@cache
def fold_table() -> dict[int, str]:
    """Every character that folds to something else, mapped to what it folds to: NFKD, then
    case-folded, then simplified (`han_table`)."""
    han = han_table()
    table = {}
    for code in range(0x110000):
        if 0xD800 <= code < 0xE000:
            table[code] = "\ufffd"  # a lone surrogate is no character: the automaton takes none
            continue
        c = chr(code)
        if code not in han and c.casefold() == c and unicodedata.is_normalized("NFKD", c):
            continue
        folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", c).casefold())
        folded = folded.translate(han)
        if folded != c:
            table[code] = folded
    return table


def fold(text: str) -> str:
    """`text` in the one form keywords are matched in: per character NFKD, case-folded,
    simplified."""
    return text.translate(fold_table())
