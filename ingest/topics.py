"""Which parser a topic goes to, and the subscriptions that bring those topics in."""

from __future__ import annotations

from collections.abc import Callable

from gridwatch.ingest import hazard, meter, owntracks, patrol, sensor
from gridwatch.ingest.payload import InvalidPayload, ParseContext, quoted
from gridwatch.model.records import HazardReport, MeterReading, PatrolCheckin, SensorEvent

Reading = MeterReading | SensorEvent | PatrolCheckin | HazardReport

_BY_KIND: dict[str, Callable[[str, bytes, ParseContext], Reading]] = {
    meter.KIND: meter.parse,
    sensor.KIND: sensor.parse,
    patrol.KIND: patrol.parse,
    hazard.KIND: hazard.parse,
}


def subscriptions(
    prefix: str, shared_group: str | None = None, owntracks_base: str = "owntracks"
) -> list[str]:
    """Topic filters for every inbound kind; `$share/{group}/` in front to share them."""
    filters = [f"{prefix}/{kind}/+" for kind in _BY_KIND] + [f"{owntracks_base}/+/+"]
    if shared_group:
        filters = [f"$share/{shared_group}/{f}" for f in filters]
    return filters


class TopicRouter:
    """Sends each topic to its parser; built once per worker for its topic prefix."""

    def __init__(self, prefix: str, owntracks_base: str = "owntracks") -> None:
        self._prefix = prefix
        self._owntracks = owntracks_base

    def parse(self, topic: str, payload: bytes, ctx: ParseContext) -> Reading:
        """Parse a message by its topic; raises InvalidPayload for bad input and Ignored for
        a message ignored on purpose."""
        # The prefix may span several levels ("city/district7"), so it is matched as text.
        if topic.startswith(self._prefix + "/"):
            levels = topic[len(self._prefix) + 1 :].split("/")
            parse_kind = _BY_KIND.get(levels[0]) if len(levels) == 2 else None
            if parse_kind is not None:
                return parse_kind(levels[1], payload, ctx)
        levels = topic.split("/")
        if len(levels) == 3 and levels[0] == self._owntracks:
            return owntracks.parse(levels[1], levels[2], payload, ctx)
        raise InvalidPayload(
            f"unknown topic {quoted(topic, 100)}: expected "
            f"{self._prefix}/(meter|sensor|patrol|hazard)/{{id}} or "
            f"{self._owntracks}/{{user}}/{{device}}"
        )
