"""`fhirserver demo`: a small Sichuan-Chongqing network, loaded into a running server so that every README
example works. Dates are relative to today, so the demo results stay inside their validity windows.

Hospitals (levels, regions, network membership and QC accreditation), two patients with national IDs, and
recognizable and non-recognizable results (ids start with demo-).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from .config import DEFAULT_CANONICAL

CST = timezone(timedelta(hours=8))
C = DEFAULT_CANONICAL
ITEM = f"{C}/CodeSystem/hr-item"
HOSPITALS = [
    ("demo-cq-children", "重庆医科大学附属儿童医院", "3A", "500000"),
    ("demo-cq-yubei", "重庆市渝北区人民医院", "2A", "500112"),
    ("demo-cq-township", "渝北区某镇卫生院", "1", "500112"),
    ("demo-sc-huaxi", "四川大学华西医院", "3A", "510100"),
]
PATIENTS = [("demo-xiaoming", "小明", "male", "2019-05-01", "50011220190501001X"),
            ("demo-wangfang", "王芳", "female", "1980-01-01", "510104198001010022")]


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


def bundles() -> list[dict[str, Any]]:
    """Two transactions: the network first (marks are computed from stored standing), then results."""
    network: list[dict[str, Any]] = [{"resourceType": "Organization", "id": "demo-network", "name": "川渝互认网络"}]
    network += [_organization(*h) for h in HOSPITALS]
    network += [_affiliation(h[0], code) for h in HOSPITALS for code in ("network-member", "qc-accredited")]
    network += [{"resourceType": "Patient", "id": pid, "name": [{"text": name}], "gender": gender, "birthDate": born,
                 "identifier": [{"system": "urn:oid:2.16.156.10011.1.3", "value": nid}]}
                for pid, name, gender, born, nid in PATIENTS]
    results = [
        _report("demo-dr-chest", "demo-xiaoming", "demo-cq-yubei", "DX-CHEST", 5, loinc="36643-5"),
        _report("demo-ct-head-township", "demo-wangfang", "demo-cq-township", "CT-HEAD", 3),
        _report("demo-ct-chest-huaxi", "demo-wangfang", "demo-sc-huaxi", "CT-CHEST", 20),
        _report("demo-dr-knee-old", "demo-wangfang", "demo-cq-yubei", "DX-KNEE", 120),
        _report("demo-us-abdomen-cancelled", "demo-wangfang", "demo-cq-yubei", "US-ABDOMEN", 2, status="cancelled"),
    ]
    return [{"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in batch]}
        for batch in (network, results)]
