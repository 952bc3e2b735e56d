"""The CapabilityStatement is generated from what the server registers, and it does not lie."""

from __future__ import annotations

from conftest import observation, post, unique


def test_metadata_lists_types_interactions_and_search_parameters(http, base):
    statement = http.get(f"{base}/metadata").json()
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.0.1"
    assert "application/fhir+json" in statement["format"]
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    expected = {"DiagnosticReport", "Observation", "ImagingStudy", "Consent", "AuditEvent", "DetectedIssue"}
    assert expected <= set(resources)
    obs = resources["Observation"]
    assert {i["code"] for i in obs["interaction"]} == {"read", "vread", "update", "patch", "delete",
                                                        "history-instance", "history-type", "create", "search-type"}
    assert obs["versioning"] == "versioned-update"
    assert obs["conditionalDelete"] == "single"
    assert obs["conditionalRead"] == "full-support"  # If-None-Match and If-Modified-Since answer 304
    names = {p["name"] for p in obs["searchParam"]}
    assert {"_id", "identifier", "code", "status", "category"} <= names


SAMPLE = {"token": "x", "reference": "Patient/x", "string": "x", "date": "2024", "number": "1", "quantity": "1",
          "uri": "http://example.org/x"}
COMPOSITE_SECOND = {"quantity": "1", "date": "2024", "token": "x", "string": "x"}


def test_every_advertised_search_parameter_is_accepted(http, base):
    statement = http.get(f"{base}/metadata").json()
    for resource in statement["rest"][0]["resource"]:
        for param in resource["searchParam"]:
            kind = param["type"]
            if kind == "composite":
                second = next((v for k, v in COMPOSITE_SECOND.items() if k in param["name"].replace("concept", "token")
                               .replace("value-string", "string")), "x")
                value = f"x${second}"
            else:
                value = SAMPLE[kind]
            response = http.get(f"{base}/{resource['type']}", params={param["name"]: value, "_count": "1"})
            assert response.status_code == 200, (resource["type"], param["name"], response.text)


def test_search_by_token_parameters_finds_the_resource(http, base):
    ident = unique()
    rid = post(http, base, observation(ident)).json()["id"]
    for params in ({"identifier": ident}, {"identifier": f"urn:oid:2.16.156.10011.1.99|{ident}"},
                   {"identifier": ident, "code": "http://loinc.org|718-7", "status": "final"}, {"_id": rid}):
        bundle = http.get(f"{base}/Observation", params=params).json()
        assert [e["resource"]["id"] for e in bundle.get("entry", [])] == [rid], params
        assert bundle["entry"][0]["search"]["mode"] == "match"
    assert "entry" not in http.get(f"{base}/Observation", params={"identifier": ident, "status": "amended"}).json()


def test_health_and_readiness(base):
    import requests

    root = base.rsplit("/fhir", 1)[0]
    assert requests.get(f"{root}/healthz", timeout=10).json() == {"status": "ok"}
    assert requests.get(f"{root}/readyz", timeout=10).json() == {"status": "ready"}


def test_recognition_operations_are_advertised_with_their_definitions(http, base):
    statement = http.get(f"{base}/metadata").json()
    rest = statement["rest"][0]
    assert {"name": "statistics", "definition": "http://hr.example.org/fhir/OperationDefinition/hr-statistics"} in \
        rest["operation"]
    report = next(r for r in rest["resource"] if r["type"] == "DiagnosticReport")
    assert {"name": "recognize", "definition": "http://hr.example.org/fhir/OperationDefinition/hr-recognize"} in \
        report["operation"]
    definition = http.get(f"{base}/OperationDefinition/hr-recognize").json()
    assert definition["code"] == "recognize" and definition["instance"] is True


def test_capability_statement_is_valid_fhir(http, base):
    """The server's own CapabilityStatement passes the validation it applies to clients (no empty arrays...)."""
    from pathlib import Path

    from fhirserver.fhir.validation import ResourceValidator

    statement = http.get(f"{base}/metadata").json()
    ResourceValidator(Path(__file__).resolve().parents[1] / "profiles" / "fhir.schema.v4.json").validate(statement)
    assert statement["rest"][0]["security"]["description"].startswith("Authentication is off")
