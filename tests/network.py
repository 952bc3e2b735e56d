"""The small regional networks the recognition tests stand on: organizations with levels and regions, their
network, QC and alliance affiliations, and reports, written through the API (helpers; fixtures in conftest)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

FHIR_JSON = "application/fhir+json"

ROOT = Path(__file__).resolve().parents[1]
ORG_TYPE = "http://hr.example.org/fhir/CodeSystem/hr-organization-type"
C = "http://hr.example.org/fhir"
ITEM = f"{C}/CodeSystem/hr-item"
NOW = datetime(2026, 11, 23, 12, 0)
WHEN = "2026-11-23T12:00:00+08:00"


def day(days_ago: int) -> str:
    return (NOW - timedelta(days=days_ago)).strftime("%Y-%m-%dT10:00:00+08:00")


def scope_codes(scope: str) -> list[str]:
    vs = json.loads((ROOT / "terminology" / f"ValueSet-hr-scope-{scope}.json").read_text(encoding="utf-8"))
    return [c["code"] for c in vs["compose"]["include"][0]["concept"]]


def organization(oid: str, name: str, level: str, region: str) -> dict:
    return {
        "resourceType": "Organization",
        "id": oid,
        "name": name,
        "type": [{"coding": [{"system": f"{C}/CodeSystem/hr-institution-level", "code": level}]}],
        "extension": [
            {
                "url": f"{C}/StructureDefinition/hr-region",
                "valueCoding": {"system": f"{C}/CodeSystem/hr-region", "code": region},
            }
        ],
    }


def affiliation(aid: str, network: str, hospital: str, code: str, start: str, end: str | None = None) -> dict:
    period = {"start": start, **({"end": end} if end else {})}
    resource = {
        "resourceType": "OrganizationAffiliation",
        "id": aid,
        "active": True,
        "period": period,
        "organization": {"reference": f"Organization/{network}"},
        "participatingOrganization": {"reference": f"Organization/{hospital}"},
        "code": [{"coding": [{"system": f"{C}/CodeSystem/hr-affiliation", "code": code}]}],
    }
    if code == "qc-accredited":
        resource["specialty"] = [
            {"coding": [{"system": ITEM, "code": "IMG"}]},
            {"coding": [{"system": ITEM, "code": "LAB"}]},
        ]
    return resource


def report(rid: str, patient: str, performer: str, item: str, date: str, status: str = "final") -> dict:
    return {
        "resourceType": "DiagnosticReport",
        "id": rid,
        "status": status,
        "category": [{"text": "影像"}],
        "code": {"coding": [{"system": ITEM, "code": item}]},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": date,
        "issued": date,
        "performer": [{"reference": f"Organization/{performer}"}],
        "meta": {"tag": [{"system": f"{C}/CodeSystem/hr-mark", "code": "hr-scope-national", "display": "HR"}]},
    }


def alliance(aid: str, name: str, kind: str = "county-medical-community") -> dict:
    return {"resourceType": "Organization", "id": aid, "name": name,
            "type": [{"coding": [{"system": ORG_TYPE, "code": kind}]}]}


def put_all(http, base, resources: list[dict]) -> None:
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in resources]}
    response = http.post(base, data=json.dumps(bundle, ensure_ascii=False).encode(),
                         headers={"Content-Type": FHIR_JSON})
    assert response.status_code == 200, response.text


def decision(parameters: dict) -> dict:
    """A $recognize answer by parameter name; `reason` is the list of reason codes."""
    out: dict = {"reason": []}
    for p in parameters["parameter"]:
        value = next(v for k, v in p.items() if k.startswith("value"))
        if p["name"] == "reason":
            out["reason"].append(value["coding"][0]["code"])
        else:
            out[p["name"]] = value
    return out
