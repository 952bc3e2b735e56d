"""history (instance and type), _since, _count and paging."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlparse

from conftest import FHIR_JSON, observation, post, unique


def _versions(http, base, rid, n):
    created = post(http, base, observation(unique())) if rid is None else None
    body = created.json() if created is not None else http.get(f"{base}/Observation/{rid}").json()
    for _ in range(n - 1):
        body = http.put(f"{base}/Observation/{body['id']}", json=body, headers={"Content-Type": FHIR_JSON}).json()
    return body["id"]


def test_instance_history_lists_versions_newest_first_with_request_and_response(http, base):
    rid = _versions(http, base, None, 3)
    bundle = http.get(f"{base}/Observation/{rid}/_history").json()
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "history"
    assert [e["resource"]["meta"]["versionId"] for e in bundle["entry"]] == ["3", "2", "1"]
    assert [e["request"]["method"] for e in bundle["entry"]] == ["PUT", "PUT", "POST"]
    assert bundle["entry"][0]["response"]["etag"] == 'W/"3"'
    assert bundle["entry"][0]["fullUrl"] == f"{base}/Observation/{rid}"


def test_instance_history_pages_with_count_and_next_link(http, base):
    rid = _versions(http, base, None, 5)
    seen = []
    url = f"{base}/Observation/{rid}/_history?_count=2"
    while url:
        bundle = http.get(url).json()
        seen += [e["resource"]["meta"]["versionId"] for e in bundle["entry"]]
        url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)
    assert seen == ["5", "4", "3", "2", "1"]


def test_history_paging_stays_correct_when_versions_are_added_meanwhile(http, base):
    rid = _versions(http, base, None, 4)
    first = http.get(f"{base}/Observation/{rid}/_history?_count=2").json()
    next_url = next(link["url"] for link in first["link"] if link["relation"] == "next")
    _versions(http, base, rid, 3)  # two more versions arrive between the pages
    second = http.get(next_url).json()
    assert [e["resource"]["meta"]["versionId"] for e in second["entry"]] == ["2", "1"]


def test_history_since_returns_only_later_versions(http, base):
    rid = _versions(http, base, None, 2)
    since = http.get(f"{base}/Observation/{rid}").json()["meta"]["lastUpdated"]
    time.sleep(0.01)
    _versions(http, base, rid, 2)
    bundle = http.get(f"{base}/Observation/{rid}/_history", params={"_since": since}).json()
    assert [e["resource"]["meta"]["versionId"] for e in bundle["entry"]] == ["3", "2"]


def test_type_history_includes_new_versions_of_the_type(http, base):
    before = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
    rid = post(http, base, {"resourceType": "Specimen", "status": "available"}).json()["id"]
    http.delete(f"{base}/Specimen/{rid}")
    bundle = http.get(f"{base}/Specimen/_history", params={"_since": before, "_count": 500}).json()
    mine = [e for e in bundle["entry"] if e["fullUrl"].endswith(f"/Specimen/{rid}")]
    assert [e["request"]["method"] for e in mine] == ["DELETE", "POST"]


def test_type_history_pages_cover_every_version_once(http, base):
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
    ids = {post(http, base, {"resourceType": "Endpoint", "status": "active", "connectionType": {"code": "x"},
                             "payloadType": [{"text": "x"}], "address": "https://a.example"}).json()["id"]
           for _ in range(7)}
    url, seen = f"{base}/Endpoint/_history?_since={start}&_count=3", []
    while url:
        bundle = http.get(url).json()
        seen += [e["resource"]["id"] for e in bundle.get("entry", [])]
        url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)
        if url:
            assert parse_qs(urlparse(url).query)["_count"] == ["3"]
    assert sorted(s for s in seen if s in ids) == sorted(ids) and len(seen) == len(set(seen))


def test_history_rejects_unknown_parameters_and_bad_values(http, base):
    rid = _versions(http, base, None, 1)
    assert http.get(f"{base}/Observation/{rid}/_history?_at=2020").status_code == 400
    assert http.get(f"{base}/Observation/{rid}/_history?_since=yesterday").status_code == 400
    assert http.get(f"{base}/Observation/{rid}/_history?_count=-1").status_code == 400
    assert http.get(f"{base}/Observation/{rid}/_history?_page=%7B%22%24gt%22%3A1%7D").status_code == 400
    assert http.get(f"{base}/Observation/{unique()}/_history").status_code == 404


def test_instance_history_carries_its_total(http, base):
    """fhirpy and others read Bundle.total of a resource's history: it counts the resource's versions."""
    from conftest import observation, post, unique

    created = post(http, base, observation(unique())).json()
    http.put(f"{base}/Observation/{created['id']}", json={**created, "status": "amended"},
             headers={"Content-Type": "application/fhir+json"})
    whole = http.get(f"{base}/Observation/{created['id']}/_history").json()
    paged = http.get(f"{base}/Observation/{created['id']}/_history", params={"_count": 1}).json()
    assert whole["total"] == paged["total"] == 2 and len(paged["entry"]) == 1
