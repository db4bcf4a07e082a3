"""Which step may follow which, shared by every kind of case: a table of actions, each with
the statuses it may start from and the status it leads to."""

from __future__ import annotations

from gridwatch.errors import Conflict

Transitions = dict[str, tuple[frozenset[str], str]]
"""action -> (statuses it may start from, status it leads to)"""


def follow(transitions: Transitions, kind: str, action: str, status: str) -> str:
    """The status `action` leads to from `status` in `transitions`; Conflict with the reason,
    naming the `kind` of case, when it may not follow."""
    if action not in transitions:
        raise ValueError(f"unknown {kind} action {action!r}")
    allowed, target = transitions[action]
    if status not in allowed:
        raise Conflict(
            f"cannot {action} a {kind} that is {status}: {action} needs it "
            f"{' or '.join(sorted(allowed))}"
        )
    return target
