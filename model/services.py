"""The kinds of request (诉求) a community takes, as data in one place: the service codes of
Open311, the Chinese names people and 12345 work orders use, and how fast each must be
accepted (接单) and resolved (办结).

The hazard categories are services too (a resident may report a gas smell by phone as well
as a worker through the hazard loop); the others are what residents ask a community for.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Choice:
    key: str
    name: str


@dataclass(frozen=True, slots=True)
class Attribute:
    """A question a service asks beyond the description (Open311 service definition)."""

    code: str
    description: str
    datatype: str  # string, number, datetime, text, singlevaluelist, multivaluelist
    required: bool = False
    values: tuple[Choice, ...] = ()


@dataclass(frozen=True, slots=True)
class Service:
    code: str
    name: str  # Chinese, as shown to people
    name_en: str
    group: str
    description: str
    keywords: tuple[str, ...]  # words a 12345 诉求类型 or a free text names it by
    accept_h: float  # hours to be accepted by the grid's worker (接单)
    resolve_h: float  # hours to be resolved (办结), from receipt
    attributes: tuple[Attribute, ...] = ()


SAFETY, LIVELIHOOD = "安全隐患", "民生诉求"

SERVICES: tuple[Service, ...] = (
    Service(
        "structural", "房屋结构隐患", "structural hazard", SAFETY,
        "墙体开裂、外墙脱落、危房、阳台松动等",
        ("危房", "开裂", "墙体", "外墙", "坍塌"), accept_h=2, resolve_h=48,
    ),
    Service(
        "fire", "消防隐患", "fire hazard", SAFETY,
        "楼道堆物、消防通道堵塞、灭火器缺失等",
        ("消防", "楼道堆物", "通道堵塞", "火灾"), accept_h=0.5, resolve_h=24,
    ),
    Service(
        "electrical", "用电隐患", "electrical hazard", SAFETY,
        "私拉电线、飞线充电、电表箱损坏等",
        ("飞线", "私拉电线", "电动车充电", "漏电", "用电"), accept_h=1, resolve_h=24,
    ),
    Service(
        "gas", "燃气隐患", "gas hazard", SAFETY,
        "燃气泄漏、燃气味、管道老化等",
        ("燃气", "煤气", "天然气", "液化气"), accept_h=0.5, resolve_h=4,
    ),
    Service(
        "road", "道路隐患", "road hazard", SAFETY,
        "路面塌陷、井盖缺失、坑洼等",
        ("路面", "井盖", "塌陷", "道路", "坑洼"), accept_h=4, resolve_h=72,
    ),
    Service(
        "flood", "积水内涝", "flooding", SAFETY,
        "积水、内涝、管道爆裂等",
        ("积水", "内涝", "漏水", "爆管", "水管"), accept_h=1, resolve_h=24,
    ),
    Service(
        "sanitation", "环境卫生", "sanitation", LIVELIHOOD,
        "垃圾清运、卫生死角、污水、病媒等",
        ("垃圾", "卫生", "环境", "污水", "清运", "异味"), accept_h=4, resolve_h=72,
    ),
    Service(
        "food", "食品安全隐患", "food safety hazard", SAFETY,
        "食品储存不当、过期食品、后厨卫生等",
        ("食品", "后厨", "冷藏"), accept_h=2, resolve_h=48,
    ),
    Service(
        "dispute", "矛盾纠纷", "dispute", LIVELIHOOD,
        "邻里、家庭、物业、劳资等矛盾纠纷的调解",
        ("纠纷", "矛盾", "调解", "邻里", "吵架"), accept_h=2, resolve_h=72,
        attributes=(Attribute("parties", "涉及人数", "number"),),
    ),
    Service(
        "noise", "噪声扰民", "noise", LIVELIHOOD,
        "装修、商铺、广场舞、夜间施工等噪声",
        ("噪声", "噪音", "扰民", "广场舞", "施工"), accept_h=2, resolve_h=48,
        attributes=(
            Attribute("period", "发生时段", "singlevaluelist",
                      values=(Choice("day", "白天"), Choice("night", "夜间 22:00-6:00"))),
        ),
    ),
    Service(
        "property", "物业服务", "property management (物业)", LIVELIHOOD,
        "物业维修、电梯故障、停车、收费等",
        ("物业", "电梯", "停车", "维修", "供暖", "暖气"), accept_h=4, resolve_h=120,
    ),
    Service(
        "facilities", "公共设施", "public facilities", LIVELIHOOD,
        "路灯、健身器材、座椅、绿化等公共设施损坏",
        ("路灯", "设施", "健身器材", "座椅", "绿化"), accept_h=4, resolve_h=120,
    ),
    Service(
        "elderly", "助老服务", "help for the elderly", LIVELIHOOD,
        "独居、空巢老人的助餐、助洁、助医、代办: 微心愿",
        ("老人", "助老", "养老", "微心愿", "独居", "空巢"), accept_h=2, resolve_h=48,
        attributes=(
            Attribute("need", "需要的帮助", "singlevaluelist", required=True, values=(
                Choice("meals", "助餐"), Choice("cleaning", "助洁"), Choice("medical", "助医"),
                Choice("errands", "代办代购"), Choice("other", "其他"),
            )),
        ),
    ),
    Service(
        "other", "其他", "other", LIVELIHOOD,
        "以上之外的诉求",
        ("其他",), accept_h=4, resolve_h=120,
    ),
)  # fmt: skip

BY_CODE: dict[str, Service] = {s.code: s for s in SERVICES}
SERVICE_CODES = tuple(BY_CODE)


def service_for(text: str) -> Service | None:
    """The service a 诉求类型 such as "噪声扰民" or "城市管理-垃圾清运" names: its code, its
    Chinese name, or the first service (in table order) one of whose words it holds."""
    text = text.strip()
    if not text:
        return None
    if text in BY_CODE:
        return BY_CODE[text]
    for service in SERVICES:
        if text == service.name:
            return service
    for service in SERVICES:
        if any(word in text for word in service.keywords if word != "其他"):
            return service
    return None
