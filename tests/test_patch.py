"""PATCH with JSON Patch (RFC 6902)."""

from __future__ import annotations

from conftest import FHIR_JSON, observation, post, stored_counts, unique

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


def _fhirpath_patch(*operations: dict) -> dict:
    parts = []
    for operation in operations:
        part = [{"name": "type", "valueCode": operation["type"]}, {"name": "path", "valueString": operation["path"]}]
        part += [{"name": k, **v} for k, v in operation.items() if k not in ("type", "path")]
        parts.append({"name": "operation", "part": part})
    return {"resourceType": "Parameters", "parameter": parts}


def test_fhirpath_patch_replace_add_insert_delete_move(http, base):
    """A FHIRPath Patch (Parameters, Content-Type application/fhir+json) changes the resource as R4 fhirpatch.html
    says: replace a value, add to a repeating element (a list made when absent) and a single one, insert into and
    move within a list, delete one element chosen with where(); the result is validated like any update."""
    created = post(http, base, {**observation(unique()), "identifier": [
        {"system": "urn:a", "value": "1"}, {"system": "urn:b", "value": "2"}]}).json()
    body = _fhirpath_patch(
        {"type": "replace", "path": "Observation.status", "value": {"valueCode": "amended"}},
        {"type": "replace", "path": "Observation.value.value", "value": {"valueDecimal": 131}},
        {"type": "add", "path": "Observation", "name": {"valueString": "note"},
         "value": {"part": [{"name": "text", "valueString": "复查"}]}},
        {"type": "add", "path": "Observation", "name": {"valueString": "issued"},
         "value": {"valueInstant": "2026-11-30T08:00:00+08:00"}},
        {"type": "insert", "path": "Observation.identifier", "index": {"valueInteger": 0},
         "value": {"valueIdentifier": {"system": "urn:c", "value": "3"}}},
        {"type": "move", "path": "Observation.identifier", "source": {"valueInteger": 2},
         "destination": {"valueInteger": 0}},
        {"type": "delete", "path": "Observation.identifier.where(system='urn:a')"},
    )
    patched = http.patch(f"{base}/Observation/{created['id']}", json=body, headers={"Content-Type": FHIR_JSON})
    assert patched.status_code == 200, patched.text
    result = patched.json()
    assert result["status"] == "amended" and result["valueQuantity"]["value"] == 131
    assert result["note"] == [{"text": "复查"}] and result["issued"] == "2026-11-30T08:00:00+08:00"
    assert [i["system"] for i in result["identifier"]] == ["urn:b", "urn:c"]
    assert result["meta"]["versionId"] == "2"


def test_fhirpath_patch_mistakes_are_422_naming_the_operation_and_change_nothing(http, base):
    created = post(http, base, observation(unique())).json()
    url = f"{base}/Observation/{created['id']}"
    cases = [
        (_fhirpath_patch({"type": "replace", "path": "Observation.note", "value": {"valueString": "x"}}),
         422, "selects 0 elements"),
        (_fhirpath_patch({"type": "replace", "path": "Patient.status", "value": {"valueCode": "final"}}),
         422, "does not start with Observation"),
        (_fhirpath_patch({"type": "replace", "path": "Observation.status", "value": {"valueCode": "bogus"}}),
         422, "status"),
        (_fhirpath_patch({"type": "upsert", "path": "Observation.status"}), 400, "needs a type"),
        ({"resourceType": "Parameters", "parameter": [{"name": "nope"}]}, 400, "named 'operation'"),
    ]
    for body, status, words in cases:
        answer = http.patch(url, json=body, headers={"Content-Type": FHIR_JSON})
        assert answer.status_code == status and words in answer.text, answer.text
        assert answer.json()["resourceType"] == "OperationOutcome"
    assert http.get(url).json()["meta"]["versionId"] == "1"


def test_fhirpath_patch_in_a_transaction_entry(http, base):
    created = post(http, base, observation(unique())).json()
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": _fhirpath_patch({"type": "replace", "path": "Observation.status",
                                      "value": {"valueCode": "corrected"}}),
         "request": {"method": "PATCH", "url": f"Observation/{created['id']}"}}]}
    answer = http.post(base, json=bundle, headers={"Content-Type": FHIR_JSON})
    assert answer.status_code == 200, answer.text
    assert http.get(f"{base}/Observation/{created['id']}").json()["status"] == "corrected"
