"""`fhirserver demo`: a small Sichuan-Chongqing network, loaded into a running server so that every README
example works. Dates are relative to today, so the demo results stay inside their validity windows.

Hospitals (levels, regions, network membership and QC accreditation), two patients with national IDs, and
recognizable and non-recognizable results (ids start with demo-). The children's hospital keeps its own record
of 小明 (demo-xiaoming-et, its own MRN), where 小明's guardian consented to the hospital seeing his results from
the other hospitals of the network: with authentication on, that Consent is what shows it the 渝北 chest DR. It
is captured as a real one must be (security/consent_capture.py): the hospital's own record, its order for him,
and its doctor (demo-doctor-children) attesting.

渝北区人民医院 and the township centre form a county medical community (demo-yubei-community): the township's CT
that the children's hospital refuses (level too low) is recognized by 渝北 (the alliance scope).

`owned_bundles()` groups the same resources by owner, so that with authentication on each hospital's data is
written with a token of that hospital (a hospital may write only what it owns), the registry with a platform's.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from .config import DEFAULT_CANONICAL
from .demo_images import ACCESSION, STUDY_UID

CST = timezone(timedelta(hours=8))
C = DEFAULT_CANONICAL
ITEM = f"{C}/CodeSystem/hr-item"
HOSPITALS = [
    ("demo-cq-children", "重庆医科大学附属儿童医院", "3A", "500000"),
    ("demo-cq-yubei", "重庆市渝北区人民医院", "2A", "500112"),
    ("demo-cq-township", "渝北区某镇卫生院", "1", "500112"),
    ("demo-sc-huaxi", "四川大学华西医院", "3A", "510100"),
]
# id, name, gender, birth date, resident ID, managing hospital, its MRN
PATIENTS = [("demo-xiaoming", "小明", "male", "2019-05-01", "50011220190501001X", "demo-cq-yubei", "YB-20190501"),
            ("demo-xiaoming-et", "小明", "male", "2019-05-01", "50011220190501001X", "demo-cq-children", "ET-000731"),
            ("demo-wangfang", "王芳", "female", "1980-01-01", "510104198001010022", "demo-cq-yubei", "YB-19800101")]
# The network's registry (its Organizations and OrganizationAffiliations) is written by the network itself, a
# platform backend: Organizations need a system scope, affiliations belong to the network (their organization).
REGISTRY = "demo-network"
# 渝北's county medical community (县域医共体): the district hospital and the township health centre. Inside it every
# item is recognized whatever the levels (the alliance scope), so 渝北区人民医院 takes the township's CT that the
# children's hospital refuses. Its memberships belong to the alliance (their organization).
ALLIANCE = "demo-yubei-community"


def _when(days_ago: int) -> str:
    return (datetime.now(CST) - timedelta(days=days_ago)).strftime("%Y-%m-%dT10:00:00+08:00")


def _organization(oid: str, name: str, level: str, region: str) -> dict[str, Any]:
    return {"resourceType": "Organization", "id": oid, "name": name,
            "identifier": [{"system": "urn:oid:2.16.156.10011.1.5", "value": oid}],
            "type": [{"coding": [{"system": f"{C}/CodeSystem/hr-institution-level", "code": level}]}],
            "extension": [{"url": f"{C}/StructureDefinition/hr-region",
                           "valueCoding": {"system": f"{C}/CodeSystem/hr-region", "code": region}}]}


def _affiliation(hospital: str, code: str) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "OrganizationAffiliation", "id": f"{hospital}-{code}", "active": True,
        "period": {"start": "2022-07-01"}, "organization": {"reference": "Organization/demo-network"},
        "participatingOrganization": {"reference": f"Organization/{hospital}"},
        "code": [{"coding": [{"system": f"{C}/CodeSystem/hr-affiliation", "code": code}]}]}
    if code == "qc-accredited":
        resource["specialty"] = [{"coding": [{"system": ITEM, "code": c}]} for c in ("LAB", "IMG")]
    return resource


def _report(rid: str, patient: str, hospital: str, item: str, days_ago: int, status: str = "final",
            loinc: str | None = None) -> dict[str, Any]:
    coding = [{"system": "http://loinc.org", "code": loinc}] if loinc else [{"system": ITEM, "code": item}]
    return {"resourceType": "DiagnosticReport", "id": rid, "status": status, "category": [{"text": "影像"}],
            "code": {"coding": coding}, "subject": {"reference": f"Patient/{patient}"},
            "effectiveDateTime": _when(days_ago), "issued": _when(days_ago),
            "performer": [{"reference": f"Organization/{hospital}"}]}


def _patient(pid: str, name: str, gender: str, born: str, nid: str, hospital: str, mrn: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "name": [{"text": name}], "gender": gender, "birthDate": born,
            "identifier": [{"system": f"urn:oid:2.16.156.10011.1.99.{hospital}", "value": mrn},
                           {"system": "urn:oid:2.16.156.10011.1.3", "value": nid}],
            "managingOrganization": {"reference": f"Organization/{hospital}"}}


def _consent() -> dict[str, Any]:
    """小明's guardian, at the children's hospital: it may see his results from the network's hospitals."""
    return {"resourceType": "Consent", "id": "demo-consent-xiaoming", "status": "active",
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                                  "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"reference": "Patient/demo-xiaoming-et"}, "dateTime": _when(1)[:10],
            "organization": [{"reference": "Organization/demo-cq-children"}],
            "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
            "provision": {"type": "permit", "actor": [{
                "role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                     "code": "IRCP"}]},
                "reference": {"reference": "Organization/demo-cq-children"}}]}}


DOCTOR = "Practitioner/demo-doctor-children"  # attests 小明's consent at the children's hospital


def _order() -> dict[str, Any]:
    """The children's hospital's order for 小明 (liver function): the care relationship a consent to look needs
    (stored before the consent, which looks for it)."""
    return {"resourceType": "ServiceRequest", "id": "demo-order-xiaoming", "status": "active", "intent": "order",
             "code": {"coding": [{"system": ITEM, "code": "LAB-CHEM-001"}]},
             "subject": {"reference": "Patient/demo-xiaoming-et"},
             "requester": {"reference": "Organization/demo-cq-children"}, "authoredOn": _when(0)[:10]}


def _ct_order() -> dict[str, Any]:
    """渝北's order of a head CT for 小明, performed at the township centre (乡开县检); the PACS sends the images with
    this accession number and no PatientID, so they belong to the order's patient."""
    return {"resourceType": "ServiceRequest", "id": "demo-order-ct-xiaoming", "status": "completed", "intent": "order",
            "identifier": [{"system": "urn:oid:2.16.156.10011.1.24", "value": ACCESSION}],
            "code": {"coding": [{"system": ITEM, "code": "CT-HEAD"}]},
            "subject": {"reference": "Patient/demo-xiaoming"},
            "requester": {"reference": "Organization/demo-cq-yubei"},
            "performer": [{"reference": "Organization/demo-cq-township"}], "authoredOn": _when(2)[:10]}


def _owned() -> list[tuple[str, list[dict[str, Any]]]]:
    """(owner, resources) in loading order: the network first (marks are computed from stored standing), then
    each hospital's patients, orders and results, then the consent (written by the children's hospital's doctor)."""
    network: list[dict[str, Any]] = [{"resourceType": "Organization", "id": "demo-network", "name": "川渝互认网络"}]
    network += [_organization(*h) for h in HOSPITALS]
    network += [_affiliation(h[0], code) for h in HOSPITALS for code in ("network-member", "qc-accredited")]
    network += [{"resourceType": "Practitioner", "id": DOCTOR.split("/")[1], "name": [{"text": "刘医生"}]}]
    network += [{"resourceType": "Organization", "id": ALLIANCE, "name": "渝北区县域医共体",
                 "type": [{"coding": [{"system": f"{C}/CodeSystem/hr-organization-type",
                                       "code": "county-medical-community"}]}]}]
    alliance = [{**_affiliation(h, "alliance-member"), "organization": {"reference": f"Organization/{ALLIANCE}"}}
                for h in ("demo-cq-yubei", "demo-cq-township")]
    patients = [_patient(*row) for row in PATIENTS]
    results = [
        _report("demo-dr-chest", "demo-xiaoming", "demo-cq-yubei", "DX-CHEST", 5, loinc="36643-5"),
        _report("demo-ct-head-township", "demo-wangfang", "demo-cq-township", "CT-HEAD", 3),
        _report("demo-ct-chest-huaxi", "demo-wangfang", "demo-sc-huaxi", "CT-CHEST", 20),
        _report("demo-dr-knee-old", "demo-wangfang", "demo-cq-yubei", "DX-KNEE", 120),
        _report("demo-us-abdomen-cancelled", "demo-wangfang", "demo-cq-yubei", "US-ABDOMEN", 2, status="cancelled"),
        {**_report("demo-ct-head-xiaoming", "demo-xiaoming", "demo-cq-township", "CT-HEAD", 2),
         "basedOn": [{"reference": "ServiceRequest/demo-order-ct-xiaoming"}],
         "imagingStudy": [{"reference": f"ImagingStudy/{STUDY_UID}"}], "conclusion": "颅内未见明显异常。"},
        {**_report("demo-cbc-xiaoming", "demo-xiaoming", "demo-cq-yubei", "LAB-HEM-001", 3), "category": [
            {"text": "检验"}], "conclusion": "血常规未见明显异常。"},
    ]
    out: list[tuple[str, list[dict[str, Any]]]] = [(REGISTRY, network), (ALLIANCE, alliance)]
    for hospital, *_ in HOSPITALS:
        mine = [p for p in patients if p["managingOrganization"]["reference"] == f"Organization/{hospital}"]
        mine += [_order()] if hospital == "demo-cq-children" else []
        mine += [_ct_order()] if hospital == "demo-cq-yubei" else []
        mine += [r for r in results if r["performer"][0]["reference"] == f"Organization/{hospital}"]
        if mine:
            out.append((hospital, mine))
    out.append((DOCTOR, [_consent()]))  # his guardian's consent, attested by the doctor
    return out


def _transaction(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in resources]}


def owned_bundles() -> list[tuple[str, dict[str, Any]]]:
    """One transaction per owner (an Organization id, or the Practitioner who attests the consent): the network's
    registry first, then each hospital's data, then the consent the children's hospital's doctor attests."""
    return [(owner, _transaction(resources)) for owner, resources in _owned()]


def bundles() -> list[dict[str, Any]]:
    """The network, then the rest, for a loader that may write everything (authentication off)."""
    owned = _owned()
    return [_transaction(owned[0][1]), _transaction([r for _, resources in owned[1:-1] for r in resources]),
            _transaction(owned[-1][1])]
