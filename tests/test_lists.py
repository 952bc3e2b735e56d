"""The published recognized-item lists (/lists): public, cacheable, human-readable, the same facts as the
scope ValueSets and the catalog."""

from __future__ import annotations

import csv
import io

import requests
from conftest import FHIR_JSON


def test_each_list_is_a_public_page_and_a_csv_with_the_catalogs_facts(base, http):
    root = base.rsplit("/fhir", 1)[0]
    index = requests.get(f"{root}/lists", timeout=30)
    assert index.status_code == 200 and index.headers["Content-Type"].startswith("text/html")
    assert "hr-scope-chuanyu.csv" in index.text and index.headers["Cache-Control"].startswith("public")
    answer = requests.get(f"{root}/lists/hr-scope-500000.csv", timeout=30)
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/csv")
    assert answer.content.startswith("\ufeff".encode())
    table = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert table[0][0] == "项目编码 code"
    expansion = http.get(f"{base}/ValueSet/hr-scope-500000/$expand", headers={"Accept": FHIR_JSON}).json()
    items = {c["code"] for c in expansion["expansion"]["contains"]}
    assert {row[0] for row in table[1:]} <= items and len(table) > 50
    chest = next(row for row in table[1:] if row[0] == "DX-CHEST")
    assert chest[3] == "90"  # Chongqing gives DR 90 days (its scope's hr-validity-days), not the national default
    page = requests.get(f"{root}/lists/hr-scope-500000.html", timeout=30)
    assert page.status_code == 200 and "DX-CHEST" in page.text and "<script" not in page.text
    again = requests.get(f"{root}/lists/hr-scope-500000.csv", headers={"If-None-Match": answer.headers["ETag"]},
                         timeout=30)
    assert again.status_code == 304
    missing = requests.get(f"{root}/lists/nope.csv", timeout=30)
    assert missing.status_code == 404 and missing.json()["resourceType"] == "OperationOutcome"


def test_a_lists_versions_are_published_side_by_side_with_their_periods(base):
    root = base.rsplit("/fhir", 1)[0]
    index = requests.get(f"{root}/lists", timeout=30).text
    assert "hr-scope-500000-2025.1.csv" in index and "– 2025-12-31" in index and "2026-01-01 –" in index
    old = list(csv.reader(io.StringIO(requests.get(f"{root}/lists/hr-scope-500000-2025.1.csv",
                                                   timeout=30).content.decode("utf-8-sig"))))
    new = list(csv.reader(io.StringIO(requests.get(f"{root}/lists/hr-scope-500000.csv",
                                                   timeout=30).content.decode("utf-8-sig"))))
    assert {r[0] for r in old[1:]} < {r[0] for r in new[1:]}  # the 2026 list added items to the 2025 one
    page = requests.get(f"{root}/lists/hr-scope-500000-2025.1.html", timeout=30).text
    assert "2025.1" in page and "2025-12-31" in page
