"""The recognized-item lists as the public reads them (the national rules say the lists are published): each scope
ValueSet (terminology/ValueSet-hr-scope-*.json) as a plain HTML page and as CSV, at /lists, with no token and
cacheable. The same facts as the ValueSet and the catalog: code, name, category, validity window in that scope,
minimum institution level, reference price."""

from __future__ import annotations

import csv
import hashlib
import io
from html import escape
from typing import Any

from flask import Blueprint, Response, request

from ..fhir.errors import FhirError, not_found
from ..recognition.catalog import RecognitionCatalog
from .responses import render_error

COLUMNS = ("项目编码 code", "项目名称 name", "类别 category", "有效期(天) validity days", "最低机构等级 minimum level",
           "参考价格(元) reference price (CNY)")
CATEGORY = {"LAB": "检验 laboratory", "IMG": "影像 imaging", "ECG": "心电 ECG", "PATH": "病理 pathology"}


def blueprint(catalog: RecognitionCatalog) -> Blueprint:
    bp = Blueprint("lists", __name__)
    terminology = catalog.terminology

    def scopes() -> list[dict[str, Any]]:
        return sorted((vs for vs in terminology.value_sets.values() if vs["id"].startswith("hr-scope-")),
                      key=lambda vs: vs["id"])

    def rows(vs: dict[str, Any]) -> list[tuple[str, ...]]:
        out = []
        for member in terminology.members(vs["url"]):
            item = catalog.item(member.code)
            if item is None:
                continue
            out.append((item.code, item.display, CATEGORY.get(item.category, item.category),
                        str(catalog.validity_days(item.code, vs["url"])), str(item.min_level), f"{item.price:g}"))
        return out

    def cached(body: str, content_type: str, tag: str) -> Response:
        etag = hashlib.sha256(tag.encode()).hexdigest()[:16]
        if request.if_none_match.contains(etag):
            return Response(status=304, headers={"ETag": f'"{etag}"'})
        return Response(body, content_type=content_type,
                        headers={"ETag": f'"{etag}"', "Cache-Control": "public, max-age=3600"})

    def scope(name: str) -> dict[str, Any]:
        found = next((vs for vs in scopes() if vs["id"] == name), None)
        if found is None:
            raise not_found(f"No recognized-item list {name[:60]} here; see /lists.")
        return found

    @bp.get("")
    @bp.get("/")
    def index() -> Response:
        items = "".join(
            f"<tr><td>{escape(vs.get('title', vs['id']))}</td><td>{escape(vs.get('version', ''))}</td>"
            f"<td>{len(rows(vs))}</td><td><a href=\"/lists/{vs['id']}.html\">网页 page</a> · "
            f"<a href=\"/lists/{vs['id']}.csv\">CSV</a> · <a href=\"/fhir/ValueSet/{vs['id']}\">FHIR ValueSet</a>"
            f"</td></tr>" for vs in scopes())
        page = _page("检查检验结果互认项目目录 Recognized-item lists",
                     "<table><tr><th>目录 list</th><th>版本 version</th><th>项目数 items</th><th></th></tr>"
                     f"{items}</table>")
        return cached(page, "text/html; charset=utf-8", "index" + ",".join(v.get("version", "") for v in scopes()))

    @bp.get("/<name>.csv")
    def as_csv(name: str) -> Response:
        try:
            vs = scope(name)
        except FhirError as error:
            return render_error(error, request)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(COLUMNS)
        writer.writerows(rows(vs))
        # a byte order mark: spreadsheet programs in use in China read UTF-8 CSV as Chinese only with it
        return cached("\ufeff" + out.getvalue(), "text/csv; charset=utf-8", f"{vs['id']}|{vs.get('version')}|csv")

    @bp.get("/<name>.html")
    def as_html(name: str) -> Response:
        try:
            vs = scope(name)
        except FhirError as error:
            return render_error(error, request)
        head = "".join(f"<th>{escape(c)}</th>" for c in COLUMNS)
        body = "".join("<tr>" + "".join(f"<td>{escape(v)}</td>" for v in row) + "</tr>" for row in rows(vs))
        page = _page(f"{vs.get('title', vs['id'])} (版本 version {vs.get('version', '')})",
                     f"<p>{escape(vs.get('description', ''))}</p><table><tr>{head}</tr>{body}</table>"
                     f"<p><a href=\"/lists/{vs['id']}.csv\">CSV</a> · <a href=\"/lists\">所有目录 all lists</a></p>")
        return cached(page, "text/html; charset=utf-8", f"{vs['id']}|{vs.get('version')}|html")

    return bp


def _page(title: str, content: str) -> str:
    return (f"<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>{escape(title)}</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}</style></head>"
            f"<body><h1>{escape(title)}</h1>{content}</body></html>")
