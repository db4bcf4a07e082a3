"""The problem ledger's words for both kinds of case: hazards and citizens' requests stand in
one list (问题台账), so its statuses, categories and open states are those of either loop."""

from __future__ import annotations

from gridwatch.cases import hazards, requests
from gridwatch.model.services import SERVICE_CODES
from gridwatch.model.vocabulary import HAZARD_CATEGORIES

KINDS = ("hazard", "request")

STATUSES = (
    "received", "reported", "dispatched", "assigned", "accepted", "in_progress", "resolved",
    "feedback", "closed", "reopened",
)  # fmt: skip
"""Every status either loop has, in the order a case passes them: what the ledger's status
filter takes and its status sort follows."""

CATEGORIES = tuple(dict.fromkeys((*HAZARD_CATEGORIES, *SERVICE_CODES)))
"""A hazard's category or a request's service code (the hazard categories are services too)."""

_OPEN = {"hazard": hazards.OPEN_STATUSES, "request": requests.OPEN_STATUSES}


def is_open(kind: str, status: str) -> bool:
    """Someone still has to act on a case of `kind` in `status`: its deadline runs."""
    return status in _OPEN[kind]
