"""create, read, vread, update, update-as-create, delete, and the headers clients rely on."""

from __future__ import annotations

import json
from email.utils import format_datetime, parsedate_to_datetime

from conftest import FHIR_JSON, observation, post, unique


def test_create_returns_201_with_location_etag_and_server_assigned_meta(http, base):
    response = post(http, base, observation(unique()))
    assert response.status_code == 201
    body = response.json()
    assert response.headers["Location"] == f"{base}/Observation/{body['id']}/_history/1"
    assert response.headers["ETag"] == 'W/"1"'
    assert parsedate_to_datetime(response.headers["Last-Modified"])
    assert body["meta"]["versionId"] == "1"
    assert body["meta"]["lastUpdated"].endswith("Z")
    assert response.headers["Content-Type"].startswith(FHIR_JSON)


def test_create_ignores_client_id_and_client_version(http, base):
    resource = observation(unique(), id="client-chosen", meta={"versionId": "99", "lastUpdated": "2001-01-01T00:00:00Z",
                                                                "tag": [{"system": "urn:t", "code": "keep"}]})
    body = post(http, base, resource).json()
    assert body["id"] != "client-chosen"
    assert body["meta"]["versionId"] == "1"
    assert body["meta"]["lastUpdated"] != "2001-01-01T00:00:00Z"
    assert body["meta"]["tag"] == [{"system": "urn:t", "code": "keep"}]


def test_read_returns_exactly_what_was_stored_including_decimal_digits_and_chinese(http, base):
    raw = ('{"resourceType":"Observation","status":"final","code":{"text":"血常规　血红蛋白"},'
           '"valueQuantity":{"value":1.50,"unit":"mmol/L"},"referenceRange":[{"low":{"value":0.0010}}]}')
    created = http.post(f"{base}/Observation", data=raw.encode(), headers={"Content-Type": FHIR_JSON})
    assert created.status_code == 201, created.text
    read = http.get(f"{base}/Observation/{created.json()['id']}")
    assert read.status_code == 200
    assert '"value":1.50' in read.text and '"value":0.0010' in read.text
    assert read.json()["code"]["text"] == "血常规　血红蛋白"
    assert read.headers["ETag"] == 'W/"1"'


def test_update_creates_new_version_and_keeps_the_old_one_readable(http, base):
    created = post(http, base, observation(unique())).json()
    rid = created["id"]
    changed = {**created, "status": "amended"}
    updated = http.put(f"{base}/Observation/{rid}", json=changed, headers={"Content-Type": FHIR_JSON})
    assert updated.status_code == 200
    assert updated.headers["ETag"] == 'W/"2"'
    assert updated.json()["meta"]["versionId"] == "2"
    assert http.get(f"{base}/Observation/{rid}").json()["status"] == "amended"
    v1 = http.get(f"{base}/Observation/{rid}/_history/1")
    assert v1.status_code == 200 and v1.json()["status"] == "final"
    assert v1.headers["ETag"] == 'W/"1"'
    assert http.get(f"{base}/Observation/{rid}/_history/2").json()["status"] == "amended"
    assert http.get(f"{base}/Observation/{rid}/_history/3").status_code == 404


def test_update_as_create_with_client_id_returns_201(http, base):
    rid = unique("client")
    patient = {"resourceType": "Patient", "id": rid, "name": [{"text": "张三"}]}
    response = http.put(f"{base}/Patient/{rid}", json=patient, headers={"Content-Type": FHIR_JSON})
    assert response.status_code == 201
    assert response.headers["Location"] == f"{base}/Patient/{rid}/_history/1"
    assert http.get(f"{base}/Patient/{rid}").json()["name"][0]["text"] == "张三"


def test_last_updated_increases_with_each_version(http, base):
    created = post(http, base, observation(unique())).json()
    stamps = [created["meta"]["lastUpdated"]]
    for _ in range(3):
        body = http.put(f"{base}/Observation/{created['id']}", json=created,
                        headers={"Content-Type": FHIR_JSON}).json()
        stamps.append(body["meta"]["lastUpdated"])
    assert stamps == sorted(stamps) and len(set(stamps)) == 4


def test_delete_is_logical_read_is_410_and_history_keeps_everything(http, base):
    created = post(http, base, observation(unique())).json()
    rid = created["id"]
    deleted = http.delete(f"{base}/Observation/{rid}")
    assert deleted.status_code == 204
    assert deleted.headers["ETag"] == 'W/"2"'
    gone = http.get(f"{base}/Observation/{rid}")
    assert gone.status_code == 410
    assert gone.json()["resourceType"] == "OperationOutcome"
    assert http.get(f"{base}/Observation/{rid}/_history/2").status_code == 410
    assert http.get(f"{base}/Observation/{rid}/_history/1").status_code == 200
    history = http.get(f"{base}/Observation/{rid}/_history").json()
    assert [e["request"]["method"] for e in history["entry"]] == ["DELETE", "POST"]
    assert "resource" not in history["entry"][0]


def test_delete_twice_or_of_missing_resource_succeeds_without_new_version(http, base, store):
    rid = post(http, base, observation(unique())).json()["id"]
    assert http.delete(f"{base}/Observation/{rid}").status_code == 204
    again = http.delete(f"{base}/Observation/{rid}")
    assert again.status_code == 204 and again.headers["ETag"] == 'W/"2"'
    assert len(list(store["Observation_history"].find({"rid": rid}))) == 2
    assert http.delete(f"{base}/Observation/{unique('never')}").status_code == 204


def test_update_after_delete_revives_as_next_version(http, base):
    created = post(http, base, observation(unique())).json()
    rid = created["id"]
    http.delete(f"{base}/Observation/{rid}")
    revived = http.put(f"{base}/Observation/{rid}", json=created, headers={"Content-Type": FHIR_JSON})
    assert revived.status_code == 201
    assert revived.json()["meta"]["versionId"] == "3"
    assert http.get(f"{base}/Observation/{rid}").status_code == 200


def test_if_none_match_with_current_etag_is_304(http, base):
    rid = post(http, base, observation(unique())).json()["id"]
    assert http.get(f"{base}/Observation/{rid}", headers={"If-None-Match": 'W/"1"'}).status_code == 304
    assert http.get(f"{base}/Observation/{rid}", headers={"If-None-Match": 'W/"7"'}).status_code == 200


def test_if_modified_since_is_304_when_unchanged_and_200_when_changed_after(http, base):
    created = post(http, base, observation(unique()))
    rid = created.json()["id"]
    last_modified = created.headers["Last-Modified"]
    assert http.get(f"{base}/Observation/{rid}", headers={"If-Modified-Since": last_modified}).status_code == 304
    earlier = format_datetime(parsedate_to_datetime(last_modified).replace(year=2000), usegmt=True)
    assert http.get(f"{base}/Observation/{rid}", headers={"If-Modified-Since": earlier}).status_code == 200


def test_prefer_return_minimal_representation_and_operation_outcome(http, base):
    minimal = post(http, base, observation(unique()), Prefer="return=minimal")
    assert minimal.status_code == 201 and minimal.content == b"" and minimal.headers["Location"]
    outcome = post(http, base, observation(unique()), Prefer="return=OperationOutcome")
    assert outcome.status_code == 201
    assert outcome.json()["resourceType"] == "OperationOutcome"
    assert outcome.json()["issue"][0]["severity"] == "information"
    full = post(http, base, observation(unique()), Prefer="return=representation")
    assert full.json()["resourceType"] == "Observation"


def test_application_json_bodies_and_format_parameter_are_accepted(http, base):
    response = http.post(f"{base}/Observation?_format=json", data=json.dumps(observation(unique())),
                         headers={"Content-Type": "application/json; charset=utf-8", "Accept": "application/json"})
    assert response.status_code == 201
    assert response.headers["Content-Type"].startswith("application/fhir+json")
    plain = http.get(f"{base}/Observation/{response.json()['id']}", headers={"Accept": "application/json"})
    assert plain.headers["Content-Type"].startswith("application/json")


def test_pretty_output_is_indented_and_equal(http, base):
    rid = post(http, base, observation(unique())).json()["id"]
    compact = http.get(f"{base}/Observation/{rid}")
    pretty = http.get(f"{base}/Observation/{rid}?_pretty=true")
    assert "\n  " in pretty.text and "\n" not in compact.text
    assert pretty.json() == compact.json()


def test_every_supported_type_round_trips(http, base):
    metadata = http.get(f"{base}/metadata").json()
    types = [r["type"] for r in metadata["rest"][0]["resource"]
             if {"code": "create"} in r["interaction"]]  # the stored types; conformance types are read-only
    assert len(types) == 16
    minimal = {
        "DiagnosticReport": {"status": "final", "code": {"text": "血常规"}},
        "Observation": {"status": "final", "code": {"text": "x"}},
        "ImagingStudy": {"status": "available", "subject": {"reference": "Patient/p1"}},
        "Patient": {"name": [{"text": "李四"}]},
        "Organization": {"name": "四川大学华西医院"},
        "Practitioner": {"name": [{"text": "王医生"}]},
        "PractitionerRole": {"active": True},
        "OrganizationAffiliation": {"active": True},
        "ServiceRequest": {"status": "active", "intent": "order", "subject": {"reference": "Patient/p1"}},
        "Specimen": {"status": "available"},
        "Endpoint": {"status": "active", "connectionType": {"code": "hl7-fhir-rest"},
                     "payloadType": [{"text": "FHIR"}], "address": "https://peer.example/fhir"},
        "Consent": {"status": "active", "scope": {"text": "patient-privacy"}, "category": [{"text": "TREAT"}]},
        "Provenance": {"target": [{"reference": "Patient/p1"}], "recorded": "2026-01-01T00:00:00Z",
                       "agent": [{"who": {"display": "x"}}]},
        "AuditEvent": {"type": {"code": "rest"}, "recorded": "2026-01-01T00:00:00Z",
                       "agent": [{"requestor": True}], "source": {"observer": {"display": "x"}}},
        "DetectedIssue": {"status": "final"},
        "Subscription": {"status": "off", "reason": "x", "criteria": "DiagnosticReport?status=final",
                         "channel": {"type": "rest-hook", "endpoint": "http://127.0.0.1:9/hook"}},
    }
    assert set(minimal) == set(types)
    for rtype, content in minimal.items():
        created = post(http, base, {"resourceType": rtype, **content})
        assert created.status_code == 201, (rtype, created.text)
        read = http.get(f"{base}/{rtype}/{created.json()['id']}")
        assert read.status_code == 200 and read.json() == created.json()
