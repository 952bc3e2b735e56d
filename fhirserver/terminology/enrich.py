"""At ingestion, give each result its recognized-item coding (互认编码), so every stored result is
findable by item: a hospital's local code or a LOINC code is translated through the ConceptMaps; an
ImagingStudy without a mapped procedure code is mapped from its DICOM modality and body part.
The sender's own codings are kept; the item coding is added beside them, never replaced.
"""

from __future__ import annotations

import copy
from typing import Any

from .service import TerminologyService

CODED_ELEMENT = {"DiagnosticReport": "code", "Observation": "code", "ServiceRequest": "code",
                 "ImagingStudy": "procedureCode"}


class ItemCoder:
    def __init__(self, service: TerminologyService, canonical: str) -> None:
        self._service = service
        self.item_system = f"{canonical}/CodeSystem/hr-item"
        self._dicom_map = f"{canonical}/ConceptMap/hr-dicom-to-item"
        self._dicom = f"{canonical}/dicom#"
        self._sources = {g["source"] for cm in service.concept_maps.values() for g in cm.get("group", [])
                         if g.get("target") == self.item_system}

    def __call__(self, resource: dict[str, Any]) -> dict[str, Any]:
        element = CODED_ELEMENT.get(resource.get("resourceType", ""))
        if element is None:
            return resource
        concepts = resource.get(element)
        concepts = concepts if isinstance(concepts, list) else ([concepts] if isinstance(concepts, dict) else [])
        if any(c.get("system") == self.item_system for concept in concepts for c in concept.get("coding", [])):
            return resource
        added = self._from_codings(concepts)
        if not added and resource["resourceType"] == "ImagingStudy":
            added = self._from_dicom(resource)
        if not added:
            return resource
        enriched = copy.deepcopy(resource)
        coding = {"system": self.item_system, "code": added["code"], "display": added.get("display", "")}
        if element == "procedureCode":
            target = enriched.get("procedureCode") or [{}]
            target[0].setdefault("coding", []).append(coding)
            enriched["procedureCode"] = target
        else:
            enriched[element].setdefault("coding", []).append(coding)
        return enriched

    def _from_codings(self, concepts: list[dict[str, Any]]) -> dict[str, Any] | None:
        for concept in concepts:
            for coding in concept.get("coding", []):
                if coding.get("system") in self._sources and coding.get("code"):
                    for match in self._service.translate(None, coding["system"], coding["code"], False, {}):
                        if match["concept"]["system"] == self.item_system and match["equivalence"] == "equivalent":
                            return match["concept"]
        return None

    def _from_dicom(self, study: dict[str, Any]) -> dict[str, Any] | None:
        for series in study.get("series", []):
            modality = (series.get("modality") or {}).get("code")
            part = (series.get("bodySite") or {}).get("code")
            if not modality or not part:
                continue
            dependencies = {self._dicom + "BodyPartExamined": str(part), self._dicom + "contrast": "false"}
            for match in self._service.translate(self._dicom_map, "http://dicom.nema.org/resources/ontology/DCM",
                                                 modality, False, dependencies):
                return match["concept"]
        return None
