"""Patient `$match` (http://hl7.org/fhir/R4/patient-operation-match.html): the stored records that may be the
person described, graded, from the same rules as the person index.

- certain (score 1.0): the record shares a linking identity value with the input (a valid resident ID that
  neither record contradicts, or another configured identity system);
- probable (0.8): same name, birth date and gender, and no two different resident IDs between them;
- possible (0.5): same name and birth date, gender unknown on one side, no two different resident IDs.
A record with another valid resident ID than the input's is never a match, whatever else agrees.
"""

from __future__ import annotations

from typing import Any

from ..fhir.errors import bad_request
from ..fhir.interactions.context import FhirContext
from ..fhir.interactions.search import find
from ..fhir.json_format import loads
from ..fhir.search.values import normalize_text
from ..store.records import StoredVersion
from . import resident_id
from .index import MAX_RECORDS, PersonIndex

GRADE_URL = "http://hl7.org/fhir/StructureDefinition/match-grade"
GRADES = (("certain", 1.0), ("probable", 0.8), ("possible", 0.5))


def match(ctx: FhirContext, persons: PersonIndex, patient: Any, only_certain: bool, count: int | None,
          base_url: str) -> dict[str, Any]:
    if not isinstance(patient, dict) or patient.get("resourceType") != "Patient":
        raise bad_request("$match needs a Patient in the parameter 'resource'.", "resource")
    if count is not None and count < 1:
        raise bad_request("count must be a positive integer.", "count")
    tokens, _ = persons.identities(patient)
    own_resident = {t for t in tokens if t.startswith(resident_id.SYSTEM + "|")}
    graded: dict[str, tuple[str, float, StoredVersion]] = {}
    for token in tokens:
        for version in find(ctx, "Patient", [("identifier", token)], MAX_RECORDS):
            candidate_tokens, _ = persons.identities(loads(version.text or "{}"))
            if token in candidate_tokens:
                graded[version.id] = ("certain", 1.0, version)
    if not only_certain:
        for version in _namesakes(ctx, patient):
            if version.id in graded:
                continue
            candidate = loads(version.text or "{}")
            candidate_tokens, _ = persons.identities(candidate)
            other_resident = {t for t in candidate_tokens if t.startswith(resident_id.SYSTEM + "|")}
            if own_resident and other_resident and own_resident != other_resident:
                continue  # a namesake with another resident ID is another person
            same_gender = patient.get("gender") and patient.get("gender") == candidate.get("gender")
            if patient.get("gender") and candidate.get("gender") and not same_gender:
                continue
            grade, score = GRADES[1] if same_gender else GRADES[2]
            graded[version.id] = (grade, score, version)
    shown = {v.id for v in ctx.access.disclose([v for _, _, v in graded.values()])}
    ranked = sorted((g for g in graded.values() if g[2].id in shown), key=lambda g: (-g[1], g[2].id))
    if count is not None:
        ranked = ranked[:count]
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": len(ranked), "entry": [
        {"fullUrl": f"{base_url}/Patient/{version.id}", "resource": loads(version.text or "{}"),
         "search": {"mode": "match", "score": score,
                    "extension": [{"url": GRADE_URL, "valueCode": grade}]}}
        for grade, score, version in ranked]}
    if not bundle["entry"]:
        del bundle["entry"]
    return bundle


def _full_names(patient: dict[str, Any]) -> set[str]:
    names = set()
    for name in patient.get("name") or []:
        if isinstance(name, dict):
            for text in (name.get("text"), "".join([name.get("family") or "", *(name.get("given") or [])])):
                if isinstance(text, str) and text:
                    names.add(normalize_text(text))
    return names


def _namesakes(ctx: FhirContext, patient: dict[str, Any]) -> list[StoredVersion]:
    """Stored records with the input's full name and birth date (both needed: a name alone proves nothing)."""
    born, names = patient.get("birthDate"), _full_names(patient)
    if not isinstance(born, str) or not names:
        return []
    found: dict[str, StoredVersion] = {}
    for name in sorted(names)[:3]:
        for version in find(ctx, "Patient", [("birthdate", born[:10]), ("name", name)], MAX_RECORDS):
            if _full_names(loads(version.text or "{}")) & names:
                found[version.id] = version
    return list(found.values())
