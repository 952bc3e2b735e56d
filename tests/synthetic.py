"""A small, deterministic synthetic region: patients with national ids, lab Observations and imaging
studies from several hospitals, with the shapes search must handle (Periods, partial dates, decimals,
components, Chinese text, missing elements)."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

ID_SYSTEM = "urn:oid:2.16.156.10011.1.3"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
FAMILY = ["张", "王", "李", "赵", "陈", "刘", "Zhang", "Müller"]
GIVEN = ["三", "伟", "芳", "娜", "秀英", "San", "Wei"]
CITIES = ["成都", "重庆", "贵阳", "Chengdu"]
LABS = [("718-7", "血红蛋白", "g/L", 110, 170), ("777-3", "血小板", "10*9/L", 100, 400),
        ("2823-3", "钾", "mmol/L", 3.0, 5.8), ("4548-4", "糖化血红蛋白", "%", 4.0, 9.0)]
STATUSES = ["final", "amended", "preliminary", "cancelled"]


def patients(rng: random.Random, n: int, tag: str) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        family, given = rng.choice(FAMILY), rng.choice(GIVEN)
        patient: dict[str, Any] = {
            "resourceType": "Patient", "id": f"{tag}-p{i}",
            "identifier": [{"system": ID_SYSTEM, "value": f"5101{rng.randint(10**13, 10**14 - 1)}"}],
            "name": [{"family": family, "given": [given], "text": f"{family}{given}"}],
            "gender": rng.choice(["male", "female", "unknown"]),
            "meta": {"tag": [{"system": "urn:test", "code": tag}], "lastUpdated": "2026-01-01T00:00:00Z"},
        }
        if rng.random() < 0.8:
            year, month, day = rng.randint(1940, 2020), rng.randint(1, 9), rng.randint(10, 19)
            patient["birthDate"] = rng.choice([f"{year}", f"{year}-0{month}", f"{year}-0{month}-{day}"])
        if rng.random() < 0.7:
            patient["address"] = [{"city": rng.choice(CITIES), "text": f"{rng.choice(CITIES)}市"}]
        out.append(patient)
    return out


def _effective(rng: random.Random) -> dict[str, Any]:
    year, month, day = rng.randint(2023, 2025), rng.randint(1, 12), rng.randint(1, 28)
    kind = rng.random()
    if kind < 0.5:
        hour, minute = rng.randint(0, 23), rng.randint(0, 59)
        return {"effectiveDateTime": f"{year}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:00+08:00"}
    if kind < 0.7:
        return {"effectiveDateTime": f"{year}-{month:02d}-{day:02d}"}
    if kind < 0.9:
        end = f"{year}-{month:02d}-{min(day + rng.randint(0, 3), 28):02d}"
        return {"effectivePeriod": {"start": f"{year}-{month:02d}-{day:02d}", "end": end}}
    return {}


def observations(rng: random.Random, n: int, subjects: list[dict[str, Any]], tag: str) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        code, text, unit, low, high = rng.choice(LABS)
        value = Decimal(str(round(rng.uniform(low, high), 1 if high > 20 else 2)))
        subject = rng.choice(subjects)
        obs: dict[str, Any] = {
            "resourceType": "Observation", "id": f"{tag}-o{i}", "status": rng.choice(STATUSES),
            "identifier": [{"system": "urn:oid:2.16.156.10011.1.99", "value": f"LIS-{i}"}],
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "laboratory"}]}],
            "code": {"coding": [{"system": LOINC, "code": code, "display": text}], "text": text},
            "subject": {"reference": f"Patient/{subject['id']}"},
            "meta": {"tag": [{"system": "urn:test", "code": tag}], "lastUpdated": "2026-01-01T00:00:00Z"},
            **_effective(rng),
        }
        if rng.random() < 0.9:
            obs["valueQuantity"] = {"value": value, "unit": unit, "system": UCUM, "code": unit}
        if rng.random() < 0.15:
            obs["component"] = [{"code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
                                 "valueQuantity": {"value": rng.randint(90, 180), "unit": "mm[Hg]", "system": UCUM,
                                                   "code": "mm[Hg]"}}]
        out.append(obs)
    return out
