"""A deterministic synthetic region: hospitals of mixed levels, patients with national IDs, and results
(lab Observations coded with LOINC, imaging DiagnosticReports coded by item) spread over two years."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import Any

C = "http://hr.example.org/fhir"
ITEM = f"{C}/CodeSystem/hr-item"
CST = timezone(timedelta(hours=8))
LABS = [("718-7", "g/L", 110, 170), ("777-3", "10*9/L", 100, 400), ("2823-3", "mmol/L", 3.0, 5.8),
        ("4548-4", "%", 4.0, 9.0), ("2345-7", "mmol/L", 3.5, 9.0)]
IMAGING = ["DX-CHEST", "CT-HEAD", "CT-CHEST", "US-ABDOMEN", "MR-BRAIN", "DX-KNEE"]
# (hospitals, patients, results). "tiny" is the CI smoke run; "medium" is the 100,000 stored results.
SCALES = {"tiny": (5, 50, 300), "small": (20, 500, 5_000), "medium": (100, 10_000, 100_000),
          "large": (300, 50_000, 1_000_000)}


def hospitals(rng: random.Random, n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        level = rng.choice(["1", "2A", "2B", "3A", "3B"])
        region = rng.choice(["500112", "500103", "510100", "510700"])
        out.append({"resourceType": "Organization", "id": f"bench-h{i}", "name": f"示范医院{i}",
                    "type": [{"coding": [{"system": f"{C}/CodeSystem/hr-institution-level", "code": level}]}],
                    "extension": [{"url": f"{C}/StructureDefinition/hr-region",
                                   "valueCoding": {"system": f"{C}/CodeSystem/hr-region", "code": region}}]})
    return out


def national_id(rng: random.Random) -> str:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    body = f"5001121{rng.randint(1950, 2020)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}{rng.randint(0, 99):02d}"[:17]
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11]


def patients(rng: random.Random, n: int) -> list[dict[str, Any]]:
    return [{"resourceType": "Patient", "id": f"bench-p{i}", "name": [{"text": f"患者{i}"}],
             "identifier": [{"system": "urn:oid:2.16.156.10011.1.3", "value": national_id(rng)}]} for i in range(n)]


def results(rng: random.Random, n: int, n_patients: int, n_hospitals: int) -> list[dict[str, Any]]:
    now = datetime(2026, 11, 1, tzinfo=CST)
    out = []
    for i in range(n):
        when = (now - timedelta(days=rng.randint(0, 730), hours=rng.randint(0, 23))).strftime("%Y-%m-%dT%H:00:00+08:00")
        patient = f"Patient/bench-p{rng.randrange(n_patients)}"
        hospital = f"Organization/bench-h{rng.randrange(n_hospitals)}"
        if rng.random() < 0.7:
            code, unit, low, high = rng.choice(LABS)
            out.append({"resourceType": "Observation", "id": f"bench-o{i}", "status": "final",
                        "code": {"coding": [{"system": "http://loinc.org", "code": code}]}, "subject": {"reference": patient},
                        "effectiveDateTime": when, "issued": when, "performer": [{"reference": hospital}],
                        "valueQuantity": {"value": round(rng.uniform(low, high), 1), "unit": unit}})
        else:
            out.append({"resourceType": "DiagnosticReport", "id": f"bench-r{i}", "status": "final",
                        "code": {"coding": [{"system": ITEM, "code": rng.choice(IMAGING)}]},
                        "subject": {"reference": patient}, "effectiveDateTime": when, "issued": when,
                        "performer": [{"reference": hospital}]})
    return out
