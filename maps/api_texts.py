"""The API documentation in Chinese (/docs, /openapi.json?lang=zh): the title and description,
each tag, each operation's summary (keyed "METHOD /path"), the parameters' and the answers'
descriptions.

Every operation needs its summary here, and every parameter's description its Chinese:
tests/test_api_docs.py fails for a route or a description without one, and for an entry whose
route is gone. The schemas stay as they are (their field names are the API's)."""

from __future__ import annotations

import copy
import re

TITLE = "网格通 gridwatch 接口"

DESCRIPTION = """
辖区的图层以 **OGC API - Features** 提供（GeoJSON，WGS-84）；巡查打卡和隐患上报（与 MQTT
报文相同）；隐患闭环（发现-上报-处置-反馈）及问题台账；群众诉求及其办理流程；Open311
GeoReport v2（`/open311/v2/`）；告警及实时推送；外出报备；巡查覆盖；地图页面。

除 `/healthz`、`/readyz`、首页和本文档外，所有接口都需要 `Authorization: Bearer <令牌>`
（`gridwatch users add 名称 --role ...` 生成令牌）；在浏览器中登录（`/login`）后，本页的
“试用”也带上登录状态。出错时返回 JSON：`{"error": "...", "reason": "..."}`。

English: [/docs?lang=en](/docs?lang=en)
"""

TAGS = {
    "service": "服务",
    "layers (OGC API - Features)": "图层（OGC API - Features）",
    "reports (same schema as MQTT)": "上报（与 MQTT 报文相同）",
    "contacts": "楼栋联系人（单元长、楼栋长）",
    "hazard loop": "隐患闭环与问题台账",
    "request loop (诉求)": "诉求办理",
    "Open311 GeoReport v2": "Open311 GeoReport v2（诉求受理）",
    "alerts": "告警",
    "absences (外出报备)": "外出报备",
    "patrol coverage": "巡查覆盖",
    "maps": "地图",
    "console": "值班台与手机页面",
    "personal data": "个人信息",
    "photos": "照片",
}

SUMMARIES = {
    "GET /": "首页（OGC API 入口）",
    "GET /conformance": "OGC API 符合性声明",
    "GET /healthz": "进程存活检查",
    "GET /readyz": "就绪检查：数据库和消息服务器可以连接",
    "GET /me": "当前令牌属于谁",
    "GET /collections": "图层列表",
    "GET /collections/{collection_id}": "单个图层",
    "GET /collections/{collection_id}/queryables": (
        "图层可用于筛选的属性（OGC API - Features 第 3 部分）"
    ),
    "GET /collections/grids/items": "网格（含实时统计）",
    "GET /collections/grids/items/{code}": "单个网格",
    "GET /collections/hazards/items": "隐患",
    "GET /collections/hazards/items/{hazard_id}": "单个隐患及其处置记录",
    "GET /collections/checkins/items": "巡查打卡",
    "GET /collections/checkins/items/{checkin_id}": "单条打卡（编号为 来源:网格员@时间）",
    "GET /collections/places/items": "巡查场所（商铺、小餐饮、小作坊、小仓库）及其巡查周期",
    "GET /collections/places/items/{place_id}": "单个场所：上次巡查、下次应查、未整改问题",
    "GET /residents/{resident_id}/first-to-call": "居民的首先联系人：所在单元的单元长、楼栋长",
    "GET /cases/{case_id}/first-to-call": (
        "案件的首先联系人：所在楼栋（或场所所在楼栋）的单元长、楼栋长"
    ),
    "GET /collections/alerts/items": "告警",
    "GET /collections/alerts/items/{alert_id}": "单条告警及其处理记录",
    "GET /collections/warnings/items": "矛盾纠纷预警",
    "GET /collections/warnings/items/{warning_id}": "单条矛盾纠纷预警",
    "GET /collections/requests/items": "群众诉求（最新的在前）",
    "GET /collections/requests/items/{request_id}": "单条诉求及其办理记录",
    "GET /collections/residents/items": "居民（个人信息默认脱敏，pii=true 时显示）",
    "GET /collections/residents/items/{resident_id}": "单个居民（有权限者看到明文）",
    "POST /checkins": "提交巡查打卡（报文同 gw/patrol/{worker_id}）",
    "POST /hazards": "上报隐患（报文同 gw/hazard/{reporter_id}），同一编号只保存一次",
    "POST /hazards/{hazard_id}/assign": "派单：指定隐患责任人（已上报、已派单、处置中或已重开时）",
    "POST /hazards/{hazard_id}/start": "开始处置隐患",
    "POST /hazards/{hazard_id}/resolve": (
        "隐患处置完毕：处置情况及照片（JSON，或带文件的 multipart/form-data）"
    ),
    "POST /hazards/{hazard_id}/close": "反馈后办结已处置的隐患",
    "POST /hazards/{hazard_id}/reopen": "重开已处置或已办结的隐患（反馈未办好）",
    "GET /ledger": "问题台账",
    "GET /ledger.csv": "问题台账导出 CSV（UTF-8 带 BOM，Excel 直接打开）",
    "GET /ledger.xlsx": "问题台账导出 Excel 工作簿（XLSX）",
    "POST /requests/{request_id}/dispatch": "派单：把诉求派到网格（值班员和管理员）",
    "POST /requests/{request_id}/accept": "接单：网格员接收诉求",
    "POST /requests/{request_id}/start": "开始处置诉求",
    "POST /requests/{request_id}/resolve": (
        "诉求办结：处置情况及照片（JSON，或带文件的 multipart/form-data）"
    ),
    "POST /requests/{request_id}/feedback": "记录回访结果：不满意则重新办理",
    "POST /requests/{request_id}/close": "回访后关闭诉求",
    "POST /requests/{request_id}/reopen": "重新办理已办结或已关闭的诉求",
    "GET /open311/v2/services.json": "服务类别（诉求的种类，含中文名称）",
    "GET /open311/v2/services/{service_code}.json": "服务类别的定义：需要回答的问题",
    "POST /open311/v2/requests.json": (
        "提交诉求（application/x-www-form-urlencoded，同 GeoReport v2）"
    ),
    "GET /open311/v2/requests.json": "诉求列表，最新的在前（筛选条件同 GeoReport v2）",
    "GET /open311/v2/requests/{service_request_id}.json": "单条诉求的状态",
    "POST /alerts/{alert_id}/ack": "确认告警：有人接手，停止升级",
    "POST /alerts/{alert_id}/resolve": "解除告警，并写明核实情况",
    "GET /alerts/stream": "实时告警推送（Server-Sent Events），用 Last-Event-ID 续传",
    "GET /cases/stream": "隐患和诉求的实时办理动态（Server-Sent Events），用 Last-Event-ID 续传",
    "GET /absences": "外出报备列表",
    "POST /absences": "登记外出报备；不带时区的时间按本地时间",
    "DELETE /absences/{absence_id}": "取消外出报备（本人已返回）",
    "GET /coverage": "每个网格每天的巡查覆盖",
    "GET /coverage/tracks": "某天的巡查轨迹（调用者可见的点连成线）",
    "GET /maps/overview": "辖区总览地图",
    "GET /maps/grids/{code}": "单个网格的地图",
    "GET /maps/coverage": "巡查覆盖地图",
    "GET /maps/live": "值班实时告警地图",
    "GET /console/summary.json": "值班台的统计数据",
    "GET /console": "值班台",
    "GET /console/alerts/{alert_id}": "告警详情页",
    "GET /console/alerts/{alert_id}/week.json": "告警前后老人最近 7 天的用电和动静",
    "GET /console/ledger": "问题台账页面",
    "GET /console/cases/{case_id}": "案件详情页（隐患或诉求）",
    "GET /console/places": "场所巡查页面（场所台账：到期、超期、未整改问题）",
    "GET /m": "网格员手机页面（我的任务）",
    "GET /m/tasks": "手机页面的任务列表（HTML 片段）",
    "GET /audit": "谁查看了哪些居民的个人信息、谁删除了个人信息（管理员）",
    "GET /media/{media_id}": "照片（已转正，已去除 EXIF）",
    "GET /media/{media_id}/thumb": "照片缩略图（JPEG，长边 320 像素）",
}

RESPONSES = {
    "Successful Response": "成功",
    "Validation Error": "参数有误",
    "the client's copy (If-None-Match) is current": "客户端的副本（If-None-Match）仍是最新",
    "the caller may see the request but not take this step": "调用者能看到该诉求，但无权执行这一步",
    "the request's status does not allow it": "诉求当前的状态不允许这一步",
    "the hazard's status does not allow it": "隐患当前的状态不允许这一步",
    "no such photo, or one of a case or check-in the caller cannot see": (
        "没有这张照片，或照片属于调用者无权查看的案件或打卡"
    ),
    "something it needs is down": "所依赖的服务不可用",
    "the same check-in was stored before (photos sent again are not kept twice)": (
        "同一打卡此前已保存（再次发送的照片不会重复保存）"
    ),
    "this report (same id) was stored before: the stored one": (
        "同一编号的上报此前已保存：返回已保存的那条"
    ),
    "the id is taken by a hazard of a grid the caller cannot see": (
        "该编号已被调用者无权查看的网格中的隐患使用"
    ),
    "the id is taken by a different report": "该编号已被另一条上报使用",
    "only a resolved hazard can be closed": "只有已处置的隐患才能办结",
    "only a resolved or closed hazard can be reopened": "只有已处置或已办结的隐患才能重开",
    "only a resolved request gets feedback": "只有已办结的诉求才能回访",
    "only after feedback": "须先回访",
    "only a resolved, fed back or closed request can be reopened": (
        "只有已办结、已回访或已关闭的诉求才能重新办理"
    ),
    "the alert is not open": "告警不是未处理状态",
    "the alert is already resolved": "告警已解除",
}
# The parameters' descriptions (the same words mean the same on every route).
PARAMETERS = {
    "only those in force now": "只看当前生效的",
    "like Last-Event-ID (`H.R`), for clients that cannot": (
        "同 Last-Event-ID（`H.R`），供无法设置该请求头的客户端使用"
    ),
    "like Last-Event-ID, for clients that cannot set it": (
        "同 Last-Event-ID，供无法设置该请求头的客户端使用"
    ),
    "with `warnings`: the warning id to resume after": "与 `warnings` 同用：从该预警编号之后继续",
    "minLon,minLat,maxLon,maxLat (WGS-84)": "最小经度,最小纬度,最大经度,最大纬度（WGS-84）",
    "comma list of hazard categories or request service codes": (
        "隐患类别或诉求服务代码，逗号分隔"
    ),
    "comma list of request sources (open311, hotline, visit, app, warning); requests only, a "
    "hazard has none": (
        "诉求来源，逗号分隔（open311、hotline 热线、visit 走访、app、warning 预警）；只选诉求，"
        "隐患没有来源"
    ),
    "positions for GCJ-02 map tiles": "坐标按 GCJ-02 底图偏移（高德、腾讯等国内底图）",
    "from a 'next' link": "取自上一页的 next 链接",
    "local day YYYY-MM-DD (today)": "本地日期 YYYY-MM-DD（默认今天）",
    "RFC 3339 instant or interval start/end with '..' for an open end; a date alone is that "
    "local day": "RFC 3339 时刻，或“起/止”区间（'..' 表示不限）；只写日期即该本地日",
    "with open findings (or not)": "有（或没有）未整改的问题",
    "found on or after (YYYY-MM-DD)": "发现日期不早于（YYYY-MM-DD）",
    "a grid code: that grid and all below it": "网格编码：该网格及其下所有网格",
    "grid code: it and all below": "网格编码：该网格及其下所有网格",
    "the hazard's UUID": "隐患编号（UUID）",
    "comma list": "逗号分隔的列表",
    "only hazards or only citizens' requests (诉求)": "只看隐患，或只看群众诉求",
    "the level a case is handled at now (it rises when overdue)": (
        "案件当前的办理层级（超期后逐级上升）"
    ),
    "page size (capped at the server maximum)": "每页条数（不超过服务器上限）",
    "features per page; more than the maximum gives the maximum": (
        "每页要素数；超过上限时按上限返回"
    ),
    "the photo's id (a UUID)": "照片编号（UUID）",
    "next inspection past (or not)": "下次巡查已过期（或未过期）",
    "only overdue (true) or on time (false)": "只看超期的（true）或未超期的（false）",
    "contacts and phones in clear (for those allowed)": "负责人和电话明文显示（限有权限者）",
    "names, phones and addresses in clear (for those allowed)": (
        "姓名、电话和地址明文显示（限有权限者）"
    ),
    "the request's id (a UUID)": "诉求编号（UUID）",
    "a resident id": "居民编号",
    "comma list of statuses": "状态，逗号分隔",
    "RFC 3339 date-time, or a local date": "RFC 3339 日期时间，或本地日期",
    "order by one of found, due, grid, kind, category, severity, status, level; '-' first for "
    "descending (default: most urgent first)": (
        "排序字段：found、due、grid、kind、category、severity、status、level 之一；"
        "前加 '-' 为降序（默认最紧急的在前）"
    ),
    "the grid system `grid` names a grid of: management (网格, the default) or police (警格); "
    "every point lies in a grid of each": (
        "`grid` 所属的网格体系：management（网格，默认）或 police（警格）；每个点在两套体系中"
        "各属一个网格"
    ),
    "found on or before (YYYY-MM-DD)": "发现日期不晚于（YYYY-MM-DD）",
    "closed (办结) on or after (YYYY-MM-DD)": "办结日期不早于（YYYY-MM-DD）",
    "closed (办结) on or before (YYYY-MM-DD)": "办结日期不晚于（YYYY-MM-DD）",
    "a user name": "用户名",
    "false: the figures alone, without the newest open alerts (and their residents)": (
        "false：只要数字，不含最新的未处理告警（及其居民）"
    ),
    "also level-2 dispute warnings (`event: warning`); ids become A.W": (
        "同时推送二级矛盾纠纷预警（`event: warning`）；编号变为 A.W"
    ),
}

# Descriptions with a number in them: the pattern, and the Chinese with the number.
RESPONSE_PATTERNS = {
    re.compile(r"a bad filter, or more than (\d+) rows match"): "筛选条件有误，或匹配超过 {0} 行",
}

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def operations(doc: dict) -> dict[str, dict]:
    """Every operation of an OpenAPI document by "METHOD /path"."""
    return {
        f"{method.upper()} {path}": operation
        for path, item in doc.get("paths", {}).items()
        for method, operation in item.items()
        if method in METHODS
    }


def openapi_in_chinese(doc: dict) -> dict:
    """A copy of the OpenAPI document `doc` with its title, description, tags, summaries and
    answers' descriptions in Chinese (what has no entry is left as it is)."""
    zh = copy.deepcopy(doc)
    zh["info"] = {**zh.get("info", {}), "title": TITLE, "description": DESCRIPTION}
    for key, operation in operations(zh).items():
        operation["summary"] = SUMMARIES.get(key, operation.get("summary", ""))
        operation["tags"] = [TAGS.get(tag, tag) for tag in operation.get("tags", [])]
        for parameter in operation.get("parameters", []):
            _describe(parameter)
        for answer in operation.get("responses", {}).values():
            if "description" in answer:
                answer["description"] = _response(answer["description"])
    for tag in zh.get("tags", []):
        tag["name"] = TAGS.get(tag["name"], tag["name"])
    for parameter in zh.get("components", {}).get("parameters", {}).values():
        _describe(parameter)
    return zh


def parameter_descriptions(parameter: dict) -> list[dict]:
    """The places a parameter's description may stand: on it, and on its schema."""
    return [part for part in (parameter, parameter.get("schema", {})) if "description" in part]


def _describe(parameter: dict) -> None:
    for part in parameter_descriptions(parameter):
        part["description"] = PARAMETERS.get(part["description"], part["description"])


def _response(english: str) -> str:
    if english in RESPONSES:
        return RESPONSES[english]
    for pattern, chinese in RESPONSE_PATTERNS.items():
        if matched := pattern.fullmatch(english):
            return chinese.format(*matched.groups())
    return english
