"""PATCH with JSON Patch (RFC 6902)."""

from __future__ import annotations

from conftest import observation, post, stored_counts, unique

PATCH = "application/json-patch+json"


def test_json_patch_creates_a_new_version(http, base):
    rid = post(http, base, observation(unique())).json()["id"]
    response = http.patch(f"{base}/Observation/{rid}", json=[{"op": "replace", "path": "/status", "value": "amended"}],
                          headers={"Content-Type": PATCH, "If-Match": 'W/"1"'})
    assert response.status_code == 200
    assert response.json()["status"] == "amended"
    assert response.json()["meta"]["versionId"] == "2"
    assert response.headers["ETag"] == 'W/"2"'


def test_patch_with_stale_if_match_is_412_and_changes_nothing(http, base, store):
    rid = post(http, base, observation(unique())).json()["id"]
    before = stored_counts(store, "Observation")
    response = http.patch(f"{base}/Observation/{rid}", json=[{"op": "replace", "path": "/status", "value": "amended"}],
                          headers={"Content-Type": PATCH, "If-Match": 'W/"5"'})
    assert response.status_code == 412
    assert stored_counts(store, "Observation") == before
    assert http.get(f"{base}/Observation/{rid}").json()["status"] == "final"


def test_patch_making_the_resource_invalid_is_422_with_location(http, base):
    rid = post(http, base, observation(unique())).json()["id"]
    response = http.patch(f"{base}/Observation/{rid}", json=[{"op": "replace", "path": "/status", "value": "bogus"}],
                          headers={"Content-Type": PATCH})
    assert response.status_code == 422
    assert response.json()["issue"][0]["expression"] == ["Observation.status"]
    assert http.get(f"{base}/Observation/{rid}").json()["meta"]["versionId"] == "1"


def test_patch_that_cannot_apply_or_changes_id_is_422(http, base):
    rid = post(http, base, observation(unique())).json()["id"]
    for ops in ([{"op": "remove", "path": "/nothing/here"}],
                [{"op": "test", "path": "/status", "value": "preliminary"}],
                [{"op": "replace", "path": "/id", "value": "other"}],
                [{"op": "replace", "path": "/resourceType", "value": "Patient"}]):
        response = http.patch(f"{base}/Observation/{rid}", json=ops, headers={"Content-Type": PATCH})
        assert response.status_code == 422, ops
    assert http.get(f"{base}/Observation/{rid}").json()["meta"]["versionId"] == "1"


def test_malformed_patch_document_is_400(http, base):
    rid = post(http, base, observation(unique())).json()["id"]
    for body in ({"op": "replace"}, [], [{"op": "explode", "path": "/a"}], [{"op": "add", "path": "/a"}]):
        response = http.patch(f"{base}/Observation/{rid}", json=body, headers={"Content-Type": PATCH})
        assert response.status_code == 400, body


def test_patch_needs_json_patch_media_type(http, base):
    rid = post(http, base, observation(unique())).json()["id"]
    response = http.patch(f"{base}/Observation/{rid}", json=[{"op": "remove", "path": "/status"}],
                          headers={"Content-Type": "application/fhir+json"})
    assert response.status_code == 415
    assert "JSON Patch" in response.json()["issue"][0]["diagnostics"]


def test_patch_of_missing_or_deleted_resource(http, base):
    ops = [{"op": "replace", "path": "/status", "value": "amended"}]
    assert http.patch(f"{base}/Observation/{unique()}", json=ops, headers={"Content-Type": PATCH}).status_code == 404
    rid = post(http, base, observation(unique())).json()["id"]
    http.delete(f"{base}/Observation/{rid}")
    assert http.patch(f"{base}/Observation/{rid}", json=ops, headers={"Content-Type": PATCH}).status_code == 410
