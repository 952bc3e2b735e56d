"""What the rules need to know about a stored result (DiagnosticReport, Observation, ImagingStudy)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timezone
from typing import Any

from ..fhir.search.values import ValueFormatError, date_range

FINAL_STATUSES = {
    "DiagnosticReport": ("final", "amended", "corrected", "appended"),
    "Observation": ("final", "amended", "corrected"),
    "ImagingStudy": ("available",),
}
RESULT_TYPES = tuple(FINAL_STATUSES)


@dataclass(frozen=True)
class ResultFacts:
    reference: str
    resource_type: str
    status: str
    item: str | None
    date_ms: float | None
    date_text: str | None
    performer: str | None
    patient: str | None

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES.get(self.resource_type, ())


def _first_reference(values: list[Any], prefix: str) -> str | None:
    for value in values:
        ref = value.get("reference", "") if isinstance(value, dict) else ""
        if ref.startswith(prefix):
            return ref
    return None


def result_facts(resource: dict[str, Any], item_system: str, zone: timezone) -> ResultFacts:
    rtype = resource["resourceType"]
    concepts = resource.get("procedureCode", []) if rtype == "ImagingStudy" else [resource.get("code") or {}]
    item = next((c.get("code") for concept in concepts for c in concept.get("coding", [])
                 if c.get("system") == item_system), None)
    if rtype == "ImagingStudy":
        date_text = resource.get("started")
        performers = [p.get("actor") for s in resource.get("series", []) for p in s.get("performer", [])]
    else:  # the report date: issued, else the clinically relevant time
        period = resource.get("effectivePeriod") or {}
        date_text = (resource.get("issued") or resource.get("effectiveDateTime") or period.get("end")
                     or period.get("start"))
        performers = resource.get("performer", [])
    try:
        date_ms = date_range(date_text, zone).lo if date_text else None
    except ValueFormatError:
        date_ms = None
    return ResultFacts(reference=f"{rtype}/{resource['id']}", resource_type=rtype, status=resource.get("status", ""),
                       item=item, date_ms=date_ms, date_text=date_text[:10] if date_text else None,
                       performer=_first_reference(performers, "Organization/"),
                       patient=(resource.get("subject") or {}).get("reference"))
