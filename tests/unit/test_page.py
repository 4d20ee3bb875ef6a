"""The page's HTML (web/page.py) and the PWA files beside it: escaping, empty state, metas, weight."""

from __future__ import annotations

import json
import re
import struct
from html.parser import HTMLParser
from pathlib import Path

import pytest

from web.page import render_page, safe_link

pytestmark = pytest.mark.unit

STATIC = Path(__file__).resolve().parents[2] / "web" / "static"
TIP = {
    "decision_id": "d-1", "tip_id": "todo:42", "kind": "todo", "title": "Call the dentist",
    "body": "Before noon, they close early.", "deep_link": "https://todoist.com/showTask?id=42",
    "decided_at": "2025-01-02T09:00:00+00:00", "expires_at": "2025-01-02T13:00:00+00:00",
    "reason": "todo_due_soon: 'Call the dentist' due in 40 min; random picked todo 'Call the "
              "dentist' from 9 candidates (p=0.11)",
}


class Page(HTMLParser):
    """Elements by id, metas by name, scripts and inline styles, from one HTML text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.by_id: dict[str, dict[str, str | None]] = {}
        self.text: dict[str, str] = {}
        self.metas: dict[str, str | None] = {}
        self.scripts: list[dict[str, str | None]] = []
        self.links: list[dict[str, str | None]] = []
        self.styled: list[str] = []
        self.handlers: list[str] = []
        self._open: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        a["<tag>"] = tag
        if "id" in a:
            self.by_id[str(a["id"])] = a
            self.text.setdefault(str(a["id"]), "")
        if tag == "meta" and "name" in a:
            self.metas[str(a["name"])] = a.get("content")
        if tag == "script":
            self.scripts.append(a)
        if tag == "link":
            self.links.append(a)
        if "style" in a:
            self.styled.append(tag)
        self.handlers += [k for k in a if k.startswith("on")]
        if tag not in ("meta", "link", "br", "img", "input"):
            self._open.append(str(a.get("id", "")))

    def handle_endtag(self, tag: str) -> None:
        if self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for element_id in self._open:
            if element_id:
                self.text[element_id] += data


def page(tip=TIP, csrf="c" * 64, vapid: str | None = "BKey_-123") -> Page:
    return Page(render_page(tip, csrf_token=csrf, vapid_public_key=vapid))


def test_the_tip_is_in_the_first_paint_with_its_kind_and_ids():
    p = page()
    assert p.text["tip-title"] == "Call the dentist"
    assert p.text["tip-body"] == "Before noon, they close early."
    assert p.text["tip-kind"] == "to do" and "kind-todo" in str(p.by_id["tip-kind"]["class"])
    tip = p.by_id["tip"]
    assert "hidden" not in tip and "hidden" in p.by_id["empty"]
    assert tip["data-decision-id"] == "d-1" and tip["data-tip-id"] == "todo:42"
    assert tip["data-kind"] == "todo" and tip["data-expires-at"] == "2025-01-02T13:00:00+00:00"
    assert tip["role"] == "button" and tip["tabindex"] == "0"
    assert p.by_id["open"]["href"] == "https://todoist.com/showTask?id=42"


def test_an_advice_says_so_and_hints_acknowledge():
    p = page({**TIP, "kind": "advice", "deep_link": None})
    assert p.text["tip-kind"] == "advice" and "kind-advice" in str(p.by_id["tip-kind"]["class"])
    assert "acknowledge" in p.text["tip-hint"]
    assert "hidden" in p.by_id["open"] and "href" not in p.by_id["open"]


def test_no_tip_is_the_calm_empty_state():
    p = page(None)
    assert "hidden" in p.by_id["tip"] and "hidden" not in p.by_id["empty"]
    assert p.text["empty"] == "Nothing for now."
    assert p.text["tip-title"] == "" and "data-decision-id" not in p.by_id["tip"]


def test_an_empty_body_is_left_out():
    p = page({**TIP, "body": ""})
    assert "hidden" in p.by_id["tip-body"] and p.text["tip-body"] == ""


@pytest.mark.parametrize("field", ["title", "body", "decision_id", "tip_id", "kind", "expires_at",
                                   "reason"])
def test_every_tip_field_is_escaped(field):
    evil = '"><script>alert(1)</script><img src=x onerror=alert(2)>&amp;'
    html = render_page({**TIP, field: evil}, csrf_token="c", vapid_public_key=None)
    assert "<script>alert" not in html and "<img" not in html
    p = Page(html)
    assert p.handlers == [] and [s.get("src") for s in p.scripts] == ["/static/oo.js"]
    shown = {"title": p.text["tip-title"], "body": p.text["tip-body"],
             "decision_id": p.by_id["tip"].get("data-decision-id"),
             "tip_id": p.by_id["tip"].get("data-tip-id"), "kind": p.by_id["tip"].get("data-kind"),
             "expires_at": p.by_id["tip"].get("data-expires-at"), "reason": p.text["why"]}
    assert shown[field] == evil  # the text survives, as text


def test_why_now_is_in_the_menu_hidden_until_asked():
    p = page()
    assert p.text["why"] == TIP["reason"] and "hidden" in p.by_id["why"]
    assert p.by_id["why-button"]["aria-expanded"] == "false"
    assert p.by_id["why-button"]["aria-controls"] == "why"


def test_a_tip_without_a_recorded_reason_says_so():
    assert page({**TIP, "reason": None}).text["why"] == "No reason was recorded for this tip."
    assert page(None).text.get("why", "") == ""


def test_the_secrets_go_into_escaped_metas():
    p = page(csrf='a"b<c>', vapid="BPk-_x")
    assert p.metas["csrf-token"] == 'a"b<c>' and p.metas["vapid-public-key"] == "BPk-_x"


def test_no_vapid_key_no_meta():
    assert "vapid-public-key" not in page(vapid=None).metas


@pytest.mark.parametrize("link", ["javascript:alert(1)", " JAVASCRIPT:alert(1)", "data:text/html,x",
                                  "todoist://task?id=1", "//evil.example/x", "/relative", "https://",
                                  "http://[::1", ""])
def test_only_http_links_are_offered(link):
    assert safe_link(link) is None
    assert "href" not in page({**TIP, "deep_link": link}).by_id["open"]


def test_the_page_is_a_pwa_with_nothing_inline():
    html = render_page(TIP, csrf_token="c", vapid_public_key="k")
    p = Page(html)
    assert re.match(r"<!doctype html>\s*<html lang=\"en\"", html)
    assert p.metas["theme-color"] == "#000" and p.metas["viewport"].startswith("width=device-width")
    rels = {str(link["rel"]): link["href"] for link in p.links}
    assert rels["manifest"] == "/manifest.webmanifest"
    assert rels["apple-touch-icon"] == "/static/icons/apple-touch-icon.png"
    assert rels["stylesheet"] == "/static/oo.css"
    assert all(s.get("src") for s in p.scripts)  # CSP: script-src 'self', nothing inline
    assert p.styled == [] and p.handlers == [] and "<style" not in html
    assert p.by_id["say"]["aria-live"] == "polite" and p.by_id["announce"]["aria-live"] == "polite"
    assert p.by_id["menu"]["<tag>"] == "dialog" and p.by_id["notify"]["<tag>"] == "button"


def test_page_script_and_style_weigh_under_30_kb():
    worst = {**TIP, "title": "x" * 500, "body": "y" * 2000, "reason": "z" * 500}
    html = render_page(worst, csrf_token="c" * 64, vapid_public_key="k" * 87).encode()
    total = len(html) + (STATIC / "oo.js").stat().st_size + (STATIC / "oo.css").stat().st_size
    assert total < 30 * 1024, total


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_the_manifest_makes_an_installable_black_app_with_real_icons():
    manifest = json.loads((STATIC / "manifest.webmanifest").read_text())
    assert manifest["name"] == "oO" and manifest["short_name"] == "oO"
    assert manifest["start_url"] == "/" and manifest["scope"] == "/"
    assert manifest["display"] == "standalone"
    assert manifest["background_color"] == manifest["theme_color"] == "#000000"
    seen = set()
    for icon in manifest["icons"]:
        path = STATIC / icon["src"].removeprefix("/static/")
        width, height = png_size(path)
        assert icon["sizes"] == f"{width}x{height}" and icon["type"] == "image/png"
        seen.add((width, icon["purpose"]))
    assert {(192, "any"), (512, "any"), (192, "maskable"), (512, "maskable")} <= seen
    assert png_size(STATIC / "icons" / "apple-touch-icon.png") == (180, 180)


def test_the_service_worker_caches_only_files_that_exist():
    sw = (STATIC / "sw.js").read_text()
    shell = re.search(r"const SHELL = \[(.*?)\];", sw, re.S)
    assert shell is not None
    for url in re.findall(r"'([^']+)'", shell.group(1)):
        name = url.removeprefix("/static/") if url.startswith("/static/") else url.lstrip("/")
        assert (STATIC / name).is_file(), url
