"""Which alert engine watches which home when several run side by side (`--partition I/N`).

A home belongs to the partition of its grid's code, so a whole grid is watched (and its
alerts published, in order) by one engine. A resident without a grid is placed by their own
id instead, so that residents imported before their grids spread over every engine rather
than weigh on one. The hash is SHA-256, the same in every process and on every machine
(Python's `hash` of a str is salted per process); `gridwatch.store.outbox.partition_sql` computes
the same number in SQL.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

NO_GRID_PREFIX = "resident/"
_SPEC = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


def partition_key(grid_code: str | None, resident_id: str | None) -> str:
    """What decides a home's partition: its grid code, or its own id when it has no grid."""
    return grid_code if grid_code else f"{NO_GRID_PREFIX}{resident_id or ''}"


def partition_of(key: str, count: int) -> int:
    """The partition (0 … count-1) of `key`: the first 4 bytes of its SHA-256, modulo count."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % count


@dataclass(frozen=True, slots=True)
class Partition:
    """Partition `index` of `count`, numbered from 0."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"the number of partitions must be at least 1, not {self.count}")
        if not 0 <= self.index < self.count:
            raise ValueError(
                f"partition {self.index} of {self.count} does not exist: "
                f"partitions are numbered 0 to {self.count - 1}"
            )

    @classmethod
    def parse(cls, text: str) -> Partition:
        """`I/N` as given on the command line, e.g. `0/4` … `3/4`."""
        match = _SPEC.fullmatch(text)
        if match is None:
            raise ValueError(f"partition {text!r} is not of the form I/N, e.g. 0/2 and 1/2")
        return cls(int(match.group(1)), int(match.group(2)))

    def owns(self, grid_code: str | None, resident_id: str | None) -> bool:
        """Whether the home with this grid (or, without one, this id) is in this partition."""
        return partition_of(partition_key(grid_code, resident_id), self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"
