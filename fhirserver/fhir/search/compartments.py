"""Patient compartment search, `GET Patient/[id]/[type]`, from the official CompartmentDefinition (data).

http://hl7.org/fhir/R4/compartmentdefinition-patient.html: a resource is in Patient X's compartment
when any of the listed parameters references Patient/X.
"""

from __future__ import annotations

import json
from pathlib import Path


class Compartments:
    def __init__(self, profiles_dir: Path) -> None:
        self._params: dict[tuple[str, str], tuple[str, ...]] = {}
        for path in profiles_dir.glob("CompartmentDefinition-*.json"):
            definition = json.loads(path.read_text(encoding="utf-8"))
            for resource in definition.get("resource", []):
                if resource.get("param"):
                    self._params[(definition["code"], resource["code"])] = tuple(resource["param"])

    def parameters(self, compartment: str, resource_type: str) -> tuple[str, ...]:
        """The reference parameters that place `resource_type` in a `compartment` (empty: not a member)."""
        return self._params.get((compartment, resource_type), ())

    def compartments(self) -> set[str]:
        return {c for c, _ in self._params}
