"""A third-party FHIR client (fhirpy, as an EMR vendor would use it) against the person features: two hospitals'
records of one person, an absolute subject reference, Patient $match and $everything; its conditional create."""

from __future__ import annotations

import uuid

from fhirpy import SyncFHIRClient

from fhirserver.persons.resident_id import check_character

NATIONAL = "urn:oid:2.16.156.10011.1.3"


def test_fhirpy_sees_one_person_across_two_records(base):
    client = SyncFHIRClient(base)
    body = f"11010519491231{uuid.uuid4().int % 1000:03d}"  # a valid birth date; the last three digits vary
    national = body + check_character(body)
    first = client.resource("Patient", identifier=[{"system": NATIONAL, "value": national}])
    first.save()
    second = client.resource("Patient", identifier=[{"system": NATIONAL, "value": national},
                                                    {"system": "urn:oid:2.16.156.10011.1.99.other", "value": "MRN-7"}])
    second.save()
    report = client.resource("DiagnosticReport", status="final", code={"text": "胸部DR"},
                             subject={"reference": f"{base}/Patient/{first.id}"})
    report.save()
    assert [r.id for r in client.resources("DiagnosticReport").search(subject=f"Patient/{first.id}").fetch_all()] \
        == [report.id]
    matched = client.execute("Patient/$match", method="post", data={"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": {"resourceType": "Patient",
                                          "identifier": [{"system": NATIONAL, "value": national}]}}]})
    assert sorted(e["resource"]["id"] for e in matched["entry"]) == sorted([first.id, second.id])
    assert {e["search"]["extension"][0]["valueCode"] for e in matched["entry"]} == {"certain"}
    everything = client.execute(f"Patient/{second.id}/$everything", method="get",
                                params={"_type": "DiagnosticReport"})
    assert [e["resource"]["id"] for e in everything["entry"]] == [report.id]


def test_fhirpy_get_or_create_creates_once(base):
    """fhirpy's conditional create sends the criteria in the POST's query: the second call finds the first record."""
    client = SyncFHIRClient(base)
    mrn = f"MRN-{uuid.uuid4().hex[:8]}"
    patient = client.resource("Patient", identifier=[{"system": "urn:oid:2.16.156.10011.1.99.h1", "value": mrn}])
    search = client.resources("Patient").search(identifier=f"urn:oid:2.16.156.10011.1.99.h1|{mrn}")
    first, created = search.get_or_create(patient)
    again, created_again = search.get_or_create(patient)
    assert created and not created_again and first.id == again.id
    assert len(search.fetch_all()) == 1
