"""The API docs (/docs) in Chinese by default: every operation has its Chinese summary in
maps/api_texts.py (a new route without one fails here), the tags, title and description are
Chinese in /openapi.json?lang=zh, Swagger UI's own labels are put into Chinese by a local
script, and English stays at /docs?lang=en. The language comes from ?lang= (kept in a
cookie), the browser's Accept-Language, else GRIDWATCH_LANG."""

from __future__ import annotations

import re

import httpx
import pytest

from gridwatch.api.app import create_app
from gridwatch.maps.api_texts import (
    SUMMARIES,
    TAGS,
    openapi_in_chinese,
    operations,
    parameter_descriptions,
)
from gridwatch.maps.texts import LANG_COOKIE, choose_lang
from gridwatch.settings import Settings
from tests.support.browser import local_page, needs_chromium

CHINESE = re.compile(r"[\u4e00-\u9fff]")
DESK = {"width": 1366, "height": 800}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def english() -> dict:
    """The document the server serves (the app is built, not started: no database needed)."""
    app = create_app(Settings(), database_url="postgresql://unused@127.0.0.1/unused")
    return app.openapi()


def test_every_operation_has_a_chinese_summary(english):
    asked = operations(english)
    missing = sorted(set(asked) - set(SUMMARIES))
    assert not missing, f"add a Chinese summary to maps/api_texts.py SUMMARIES for {missing}"
    gone = sorted(set(SUMMARIES) - set(asked))
    assert not gone, f"SUMMARIES names routes the API no longer has: {gone}"
    tags = {tag for operation in asked.values() for tag in operation.get("tags", [])}
    assert tags <= set(TAGS), f"add these tags to maps/api_texts.py TAGS: {tags - set(TAGS)}"
    chinese = openapi_in_chinese(english)
    for key, operation in operations(chinese).items():
        assert CHINESE.search(operation["summary"]), key
        assert all(CHINESE.search(tag) for tag in operation["tags"]), key
        for code, answer in operation["responses"].items():
            assert CHINESE.search(answer["description"]), (key, code, answer["description"])
    assert CHINESE.search(chinese["info"]["title"])
    assert CHINESE.search(chinese["info"]["description"])
    assert chinese["paths"].keys() == english["paths"].keys()
    assert chinese["components"]["schemas"] == english["components"]["schemas"], "the same"


def test_every_parameter_is_described_in_chinese(english):
    chinese = openapi_in_chinese(english)
    parameters = [
        (key, parameter)
        for key, operation in operations(chinese).items()
        for parameter in operation.get("parameters", [])
    ] + [("components", parameter) for parameter in chinese["components"]["parameters"].values()]
    described = [
        (key, parameter.get("name"), part["description"])
        for key, parameter in parameters
        for part in parameter_descriptions(parameter)
    ]
    assert len(described) > 60
    english_left = [entry for entry in described if not CHINESE.search(entry[2])]
    assert not english_left, f"add these to maps/api_texts.py PARAMETERS: {english_left}"
    ledger = operations(chinese)["GET /ledger"]["parameters"]
    assert any(p["name"] == "overdue" and "超期" in p.get("description", "") for p in ledger)
    assert operations(english)["GET /ledger"]["summary"] == "The problem ledger (问题台账)"


def test_the_language_of_a_page():
    assert choose_lang(None, None, None, "zh") == "zh"
    assert choose_lang(None, None, None, "en") == "en"
    assert choose_lang("en", "zh", "zh-CN", "zh") == "en", "asked beats kept"
    assert choose_lang(None, "en", "zh-CN", "zh") == "en", "kept beats the browser's"
    assert choose_lang(None, "fr", "en-US,en;q=0.9", "zh") == "en"
    assert choose_lang(None, None, "fr-FR, en;q=0.5, zh-CN;q=0.8", "en") == "zh"
    assert choose_lang(None, None, "de, fr", "zh") == "zh"
    assert choose_lang(None, None, "en;q=0, zh;q=nan, *", "zh") == "zh"
    assert choose_lang(None, None, "en;q=x, " * 10_000, "zh") == "zh"


def test_the_documents_in_both_languages(http, english):
    anonymous = http["anonymous"]
    assert anonymous.get("/openapi.json").json() == english
    chinese = anonymous.get("/openapi.json", params={"lang": "zh"}).json()
    assert chinese == openapi_in_chinese(english)
    assert chinese["paths"]["/ledger.xlsx"]["get"]["summary"] == "问题台账导出 Excel 工作簿（XLSX）"  # noqa: RUF001
    assert anonymous.get("/openapi.json", params={"lang": "fr"}).status_code == 422

    default = anonymous.get("/docs")
    assert default.status_code == 200
    assert '<html lang="zh-CN">' in default.text
    assert "/openapi.json?lang=zh" in default.text
    assert '<script src="/static/gridwatch/swagger-zh.js"></script>' in default.text
    assert anonymous.get("/static/gridwatch/swagger-zh.js").status_code == 200
    assert "set-cookie" not in default.headers

    english_page = anonymous.get("/docs", params={"lang": "en"})
    assert "swagger-zh.js" not in english_page.text and "'/openapi.json'" in english_page.text
    assert "<title>gridwatch API</title>" in english_page.text
    assert f"{LANG_COOKIE}=en" in english_page.headers["set-cookie"]
    assert anonymous.get("/docs", params={"lang": "xx"}).status_code == 422


def test_the_docs_follow_the_browser_and_the_kept_choice(module_server):
    with httpx.Client(base_url=module_server.url) as browser:
        assert "swagger-zh.js" in browser.get("/docs").text
        english = browser.get("/docs", headers={"Accept-Language": "en-GB,en;q=0.9"})
        assert "swagger-zh.js" not in english.text
        mixed = browser.get("/docs", headers={"Accept-Language": "en;q=0.5, zh-CN"})
        assert "swagger-zh.js" in mixed.text
        browser.get("/docs", params={"lang": "en"})  # kept in the cookie
        assert "swagger-zh.js" not in browser.get("/docs").text
        browser.get("/docs", params={"lang": "zh"})
        kept = browser.get("/docs", headers={"Accept-Language": "en"})
        assert "swagger-zh.js" in kept.text, "a choice made beats the browser's"


SWAGGER_READY = "document.querySelectorAll('.opblock-tag').length > 5"


def _operation(page, path: str):
    """The block of the operation at `path` (exactly), opened."""
    block = page.locator(".opblock", has=page.locator(f".opblock-summary-path[data-path='{path}']"))
    block.locator(".opblock-summary-control").click()
    block.locator(".try-out__btn").wait_for()
    return block


@needs_chromium
def test_the_docs_read_in_chinese_in_a_browser(zh_browser, module_server, module_tokens, shots):
    """Headless Chromium, logged in: the tags, summaries and Swagger UI's own labels in
    Chinese, a request tried from the page, nothing fetched from outside."""
    context, page, left, errors = local_page(zh_browser, viewport=DESK, locale="zh-CN")
    page.goto(f"{module_server.url}/login?next=/docs")
    page.fill("input[name=token]", module_tokens.duty_street)
    page.click("button[type=submit]")
    page.wait_for_url("**/docs")
    page.wait_for_function(SWAGGER_READY)
    tags = page.locator(".opblock-tag").all_inner_texts()
    assert any("隐患闭环与问题台账" in tag for tag in tags), tags
    assert "网格通 gridwatch 接口" in page.inner_text(".info")
    summary = page.inner_text(".opblock-summary:has([data-path='/ledger.xlsx'])")
    assert "问题台账导出 Excel 工作簿" in summary

    ledger = _operation(page, "/ledger.xlsx")
    assert ledger.locator(".try-out__btn").inner_text().strip() == "试用"
    text = ledger.inner_text()
    for label in ("参数", "名称", "说明", "响应", "状态码", "查询参数"):
        assert label in text, label
    assert "Parameters" not in text and "Responses" not in text
    ledger.locator(".opblock-summary-control").click()  # closed again

    me = _operation(page, "/me")
    me.locator(".try-out__btn").click()
    assert me.locator(".execute").inner_text().strip() == "执行"
    assert me.locator(".try-out__btn").inner_text().strip() == "取消"
    me.locator(".execute").click()
    me.locator(".live-responses-table").wait_for()
    answered = me.inner_text()
    for label in ("服务器响应", "响应体", "响应头", "请求地址", "清除", "duty-street"):
        assert label in answered, label
    assert "Server response" not in answered and "Execute" not in answered
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(shots / "api-docs-1366.png"), full_page=True,
                    clip={"x": 0, "y": 0, "width": DESK["width"], "height": 1700})  # fmt: skip
    page.set_viewport_size(PHONE)
    page.wait_for_timeout(300)
    page.screenshot(path=str(shots / "api-docs-390.png"), full_page=True,
                    clip={"x": 0, "y": 0, "width": PHONE["width"], "height": 2400})  # fmt: skip
    assert "数据结构" in page.inner_text("section.models")
    context.close()
    assert left == [] and errors == []
