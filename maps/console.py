"""The console's pages (值班台, alert, case, ledger, the phone view /m) as Jinja2 templates: data
in, HTML out.
Pure like the maps: the API gathers what the caller may see, this draws it.

Every string comes from maps/texts.py; every time is shown in the district's zone, never the
browser's; the pages' scripts read what they need from one JSON block, not from globals
scattered through the page.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import jinja2

from gridwatch.maps.pages import PageContext, nav_links

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("gridwatch.maps", "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
)


def render_page(template: str, ctx: PageContext, page: str, title: str, **data: Any) -> str:
    """The console page `template` for the caller of `ctx`; `page` marks its tab in the bar."""
    t = ctx.t

    def local(value: datetime | None, pattern: str = "%m-%d %H:%M") -> str:
        return value.astimezone(ctx.zone).strftime(pattern) if value else ""

    return _ENV.get_template(template).render(
        t=t,
        c=t["console"],
        ctx=ctx,
        page=page,
        title=title,
        nav=nav_links(t),
        local=local,
        duration=lambda hours: duration_text(hours, t["console"]),
        stamp=local(ctx.updated, "%H:%M"),
        **data,
    )


def render_fragment(template: str, t: dict, **data: Any) -> str:
    """A part of a page (`template` with `data`), as a page's script fetches it to redraw."""
    return _ENV.get_template(template).render(t=t, c=t["console"], **data)


def duration_text(hours: float | None, c: dict) -> str:
    """Hours as a person reads them: '2天3小时', '45分钟' ('2 d 3 h', '45 min' in English)."""
    if hours is None:
        return ""
    sep = "" if c["h"] == "小时" else " "
    minutes = round(hours * 60)
    if minutes < 60:
        return f"{minutes}{sep}{c['min']}"
    days, rest = divmod(minutes // 60, 24)
    if days:
        return f"{days}{sep}{c['days']}" + (f" {rest}{sep}{c['h']}" if rest else "")
    return f"{rest}{sep}{c['h']}"
