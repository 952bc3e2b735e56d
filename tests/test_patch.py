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


def test_conditional_patch_patches_the_one_match(http, base):
    """PATCH [type]?criteria: one match is patched, none is 404, several 412; a merge body is told what to send."""
    value = unique("cpatch")
    one = post(http, base, observation(value)).json()
    ops = [{"op": "replace", "path": "/status", "value": "amended"}]
    system = "urn:oid:2.16.156.10011.1.99"
    patched = http.patch(f"{base}/Observation?identifier={system}|{value}", json=ops,
                         headers={"Content-Type": PATCH})
    assert patched.status_code == 200 and patched.json()["id"] == one["id"] and patched.json()["status"] == "amended"
    none = http.patch(f"{base}/Observation?identifier={system}|{value}-none", json=ops,
                      headers={"Content-Type": PATCH})
    assert none.status_code == 404
    post(http, base, observation(value))
    several = http.patch(f"{base}/Observation?identifier={system}|{value}", json=ops,
                         headers={"Content-Type": PATCH})
    assert several.status_code == 412
    merge = http.patch(f"{base}/Observation/{one['id']}", json={"status": "final"},
                       headers={"Content-Type": "application/merge-patch+json"})
    assert merge.status_code == 415 and "Merge Patch" in merge.json()["issue"][0]["diagnostics"]


def test_a_patch_gets_the_same_advice_as_an_update(http, base):
    """The write rules' advice comes back with a PATCH as with a PUT: a resident ID that cannot link is warned."""
    patient = post(http, base, {"resourceType": "Patient", "name": [{"text": "补丁"}]}).json()
    ops = [{"op": "add", "path": "/identifier", "value": [
        {"system": "urn:oid:2.16.156.10011.1.3", "value": "110105194912310021"}]}]  # wrong check character
    answer = http.patch(f"{base}/Patient/{patient['id']}", json=ops,
                        headers={"Content-Type": PATCH, "Prefer": "return=OperationOutcome"})
    assert answer.status_code == 200 and answer.json()["resourceType"] == "OperationOutcome"
    assert any(i["severity"] == "warning" and "not valid" in i["diagnostics"] for i in answer.json()["issue"])
