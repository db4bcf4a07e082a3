"""Text of files from Chinese offices whose encoding is not declared: UTF-8, or GBK as Excel
and most GIS tools in China save it; and telling GBK apart from Western text, which decodes
as GB18030 too (into rare characters)."""

from __future__ import annotations

from collections.abc import Iterable

UNDECLARED = ("utf-8", "gb18030")  # GB18030: the superset of GBK, so GBK decodes right too


def looks_chinese(text: str) -> bool:
    """Whether most of the text's non-ASCII characters are in GB2312, the common Chinese set
    that nearly all names and addresses use, as GBK text decoded right would be."""
    wide = [ch for ch in text if ord(ch) > 0x7F]
    common = sum(1 for ch in wide if _in_gb2312(ch))
    return common * 2 >= len(wide)


def redecode(values: Iterable[str], wrongly_as: str = "latin-1") -> tuple[list[str], str] | None:
    """Texts that were decoded as `wrongly_as` (Latin-1: every byte is a character) decoded
    again as UTF-8 or as GBK, with the encoding that fits them all; None when neither does
    or they are plain ASCII (then the first decoding may well be right)."""
    raw = [value.encode(wrongly_as) for value in values]
    if all(chunk.isascii() for chunk in raw):
        return None
    for encoding in UNDECLARED:
        try:
            texts = [chunk.decode(encoding) for chunk in raw]
        except UnicodeDecodeError:
            continue
        if encoding == "utf-8" or looks_chinese("".join(texts)):
            return texts, encoding
    return None


def _in_gb2312(ch: str) -> bool:
    try:
        ch.encode("gb2312")
    except UnicodeEncodeError:
        return False
    return True
