"""Words every room uses the same way: the hierarchy, hazard categories and severities, the
kinds of place a community inspects."""

from __future__ import annotations

from typing import Literal

GRID_LEVELS = ("district", "street", "community", "grid")
"""The levels of the grid hierarchy, from the top (区) down to the grid (网格)."""

BELOW_GRID_LEVELS = ("building", "unit")
"""The ladder goes on below the grid: buildings (楼栋, polygons imported as grids are, each
inside a grid) and their units (单元, a stairwell's door: a point or an address). Points are
still placed in grids; a home or a case's point is then placed in its building."""

CONTACT_ROLES = ("unit_head", "building_lead")
"""Who a grid worker calls first about a home: the unit head (单元长) of its unit, the
building lead (楼栋长) of its building."""

GridSystem = Literal["management", "police"]
GRID_SYSTEMS: tuple[GridSystem, ...] = ("management", "police")
"""The grid systems that cut the same district: the management grids (网格: 区, 街道, 社区,
网格) and the police's (警格: 分局, 派出所, 警务区, 警格, at the same four levels). Every point
lies in one grid of each; the management system is the one everything defaults to."""
MANAGEMENT: GridSystem = "management"
POLICE: GridSystem = "police"

Level = Literal["grid", "community", "street"]
LEVELS: tuple[Level, ...] = ("grid", "community", "street")
"""The levels a case or alert is handled at, lowest first: it goes up one at a time when
its deadline passes (小事不出网格、大事不出街道)."""

ACTIVITY_EVENTS = (
    "door_open", "motion", "curtain_open", "curtain_close", "light_on", "light_off", "button",
)  # fmt: skip
"""Sensor events that are signs of life (早看窗帘晚看灯: curtains in the morning, lights at
night)."""
SOS = "sos"
FALL = "fall"
EMERGENCY_EVENTS = (SOS, FALL)
SENSOR_EVENTS = (*ACTIVITY_EVENTS, *EMERGENCY_EVENTS)

# The kinds of alert (告警) the rules raise about a resident who lives alone: no sign of life
# for hours, none in the morning or the evening, a meter gone silent, and an emergency event,
# which opens an alert of its own kind.
NO_ACTIVITY = "no_activity"
MORNING = "morning"
EVENING = "evening"
METER_OFFLINE = "meter_offline"
ACTIVITY_KINDS = (NO_ACTIVITY, MORNING, EVENING)
EMERGENCY_KINDS = EMERGENCY_EVENTS
ALERT_KINDS = (*ACTIVITY_KINDS, METER_OFFLINE, *EMERGENCY_KINDS)

HAZARD_CATEGORIES = (
    "structural",
    "fire",
    "electrical",
    "gas",
    "road",
    "flood",
    "sanitation",
    "food",
    "other",
)
SEVERITIES = ("low", "medium", "high", "critical")
"""Lowest first: the order maps draw and lists sort by."""

DISPUTE_CATEGORIES = (
    "邻里纠纷",
    "婚姻家庭",
    "劳资纠纷",
    "物业纠纷",
    "土地房屋",
    "债务经济",
    "医疗纠纷",
    "涉稳信访",
)
"""The eight kinds of dispute (矛盾纠纷) the starter keyword library covers; a district's own
library may name others."""
WARNING_SOURCES = ("request", "checkin", "hazard")
"""The texts a warning can come from: a request's description, a patrol or visit note, a
hazard's description."""

PLACE_KINDS = ("shop", "restaurant", "workshop", "warehouse", "other")
"""The places a community keeps a register of and inspects on a schedule (安全巡查)."""
PLACE_KIND_LABELS = {
    "shop": "商铺",
    "restaurant": "小餐饮",
    "workshop": "小作坊",
    "warehouse": "小仓库",
    "other": "其他",
}
"""Each kind's Chinese name, as registers write it and pages show it."""
INSPECTION_RESULTS = ("ok", "findings")
"""What an inspection found: nothing to correct, or findings (each a case with a deadline)."""
