"""The recognized-item lists as the public reads them (the national rules say the lists are published): each scope
ValueSet (terminology/ValueSet-hr-scope-*.json) as a plain HTML page and as CSV, at /lists, with no token and
cacheable. The same facts as the ValueSet and the catalog: code, name, category, validity window in that scope,
minimum institution level, reference price."""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable
from html import escape
from typing import Any

from flask import Blueprint, Response, request

from ..fhir.errors import not_found
from ..recognition.catalog import RecognitionCatalog
from ..terminology.service import effective_period, versioned
from .responses import render_error

COLUMNS = ("项目编码 code", "项目名称 name", "类别 category", "有效期(天) validity days", "最低机构等级 minimum level",
           "参考价格(元) reference price (CNY)")


def blueprint(catalog: RecognitionCatalog) -> Blueprint:
    bp = Blueprint("lists", __name__)
    terminology = catalog.terminology
    items = terminology.code_system(catalog.item_system).concepts

    def category(code: str) -> str:
        """The category's name as the hr-item CodeSystem gives it, Chinese and English (检验 Laboratory)."""
        concept = items.get(code)
        if concept is None:
            return code
        english = next((d.get("value") for d in concept.designations if str(d.get("language", "")).startswith("en")),
                       None)
        return f"{concept.display} {english}" if english else concept.display

    def scopes() -> list[dict[str, Any]]:
        """Every version of every scope, side by side (a list's older versions stay published)."""
        return sorted((vs for versions in terminology.value_set_versions.values() for vs in versions
                       if vs["id"].startswith("hr-scope-")), key=lambda vs: vs["id"])

    def period(vs: dict[str, Any]) -> str:
        p = effective_period(vs)
        return f"{p.get('start', '…')} – {p.get('end', '')}" if p else ""

    def rows(vs: dict[str, Any]) -> list[tuple[str, ...]]:
        out = []
        for member in terminology.members(versioned(vs)):
            item = catalog.item(member.code)
            if item is None:
                continue
            out.append((item.code, item.display, category(item.category),
                        str(catalog.validity_days(item.code, versioned(vs))), str(item.min_level), f"{item.price:g}"))
        return out

    def cached(tag: str, content_type: str, make: Callable[[], str]) -> Response:
        """The answer, made only when the client's copy (If-None-Match) is not current: lists change by version."""
        etag = hashlib.sha256(tag.encode()).hexdigest()[:16]
        if request.if_none_match.contains(etag):
            return Response(status=304, headers={"ETag": f'"{etag}"'})
        return Response(make(), content_type=content_type,
                        headers={"ETag": f'"{etag}"', "Cache-Control": "public, max-age=3600"})

    def published(name: str, kind: str, make: Callable[[dict[str, Any]], str], content_type: str) -> Response:
        vs = next((v for v in scopes() if v["id"] == name), None)
        if vs is None:
            return render_error(not_found(f"No recognized-item list {name[:60]} here; see /lists."), request)
        return cached(f"{vs['id']}|{vs.get('version')}|{kind}", content_type, lambda: make(vs))

    def index_page() -> str:
        items = "".join(
            f"<tr><td>{escape(vs.get('title', vs['id']))}</td><td>{escape(vs.get('version', ''))}</td>"
            f"<td>{escape(period(vs))}</td>"
            f"<td>{len(rows(vs))}</td><td><a href=\"/lists/{vs['id']}.html\">网页 page</a> · "
            f"<a href=\"/lists/{vs['id']}.csv\">CSV</a> · <a href=\"/fhir/ValueSet/{vs['id']}\">FHIR ValueSet</a>"
            f"</td></tr>" for vs in scopes())
        return _page("检查检验结果互认项目目录 Recognized-item lists",
                     "<table><tr><th>目录 list</th><th>版本 version</th><th>有效期间 in force</th>"
                     "<th>项目数 items</th><th></th></tr>"
                     f"{items}</table>")

    def csv_text(vs: dict[str, Any]) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(COLUMNS)
        writer.writerows(rows(vs))
        # a byte order mark: spreadsheet programs in use in China read UTF-8 CSV as Chinese only with it
        return "\ufeff" + out.getvalue()

    def html_page(vs: dict[str, Any]) -> str:
        head = "".join(f"<th>{escape(c)}</th>" for c in COLUMNS)
        body = "".join("<tr>" + "".join(f"<td>{escape(v)}</td>" for v in row) + "</tr>" for row in rows(vs))
        return _page(f"{vs.get('title', vs['id'])} (版本 version {vs.get('version', '')})",
                     f"<p>有效期间 in force: {escape(period(vs) or '长期 open')}</p>"
                     f"<p>{escape(vs.get('description', ''))}</p><table><tr>{head}</tr>{body}</table>"
                     f"<p><a href=\"/lists/{vs['id']}.csv\">CSV</a> · <a href=\"/lists\">所有目录 all lists</a></p>")

    @bp.get("")
    @bp.get("/")
    def index() -> Response:
        return cached("index" + ",".join(f"{v['id']}|{v.get('version', '')}" for v in scopes()),
                      "text/html; charset=utf-8", index_page)

    @bp.get("/<name>.csv")
    def as_csv(name: str) -> Response:
        return published(name, "csv", csv_text, "text/csv; charset=utf-8")

    @bp.get("/<name>.html")
    def as_html(name: str) -> Response:
        return published(name, "html", html_page, "text/html; charset=utf-8")

    return bp


def _page(title: str, content: str) -> str:
    return (f"<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>{escape(title)}</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}</style></head>"
            f"<body><h1>{escape(title)}</h1>{content}</body></html>")
