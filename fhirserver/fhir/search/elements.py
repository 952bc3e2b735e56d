"""_summary and _elements: returning part of each resource (http://hl7.org/fhir/R4/search.html#summary).

The summary and mandatory element lists are data (profiles/summary-elements.json, derived from the core
StructureDefinitions' isSummary flags and minimum cardinalities). `_elements` keeps the mandatory elements too,
as the spec asks, so the answer stays a valid resource; an element may be named by its choice base (`value`) or
its typed name (`valueQuantity`). Partial resources carry the SUBSETTED tag, as the spec asks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED",
             "display": "subsetted"}
_ALWAYS = ("resourceType", "id", "meta")


class ElementFilter:
    def __init__(self, profiles_dir: Path) -> None:
        data = json.loads((profiles_dir / "summary-elements.json").read_text(encoding="utf-8"))
        self._summary: dict[str, tuple[str, ...]] = {t: tuple(v) for t, v in data["elements"].items()}
        self._mandatory: dict[str, tuple[str, ...]] = {t: tuple(v) for t, v in data.get("mandatory", {}).items()}

    def apply(self, resource: dict[str, Any], summary: str | None, elements: tuple[str, ...]) -> dict[str, Any]:
        if elements:
            keep = set(elements) | set(self._mandatory.get(resource["resourceType"], ()))
            out = {k: v for k, v in resource.items() if k in _ALWAYS or k.lstrip("_") in keep or _base(k) in keep}
        elif summary == "true":
            keep = set(self._summary.get(resource["resourceType"], ()))
            out = {k: v for k, v in resource.items() if k in _ALWAYS or _base(k) in keep}
        elif summary == "text":
            out = {k: v for k, v in resource.items() if k in (*_ALWAYS, "text")}
        elif summary == "data":
            out = {k: v for k, v in resource.items() if k != "text"}
        else:
            return resource
        meta = dict(out.get("meta") or {})
        meta["tag"] = [*meta.get("tag", []), SUBSETTED]
        out["meta"] = meta
        return out


def _base(element: str) -> str:
    """valueQuantity -> value (choice elements are listed by their base name); _status -> status."""
    name = element.lstrip("_")
    for index, ch in enumerate(name):
        if ch.isupper():
            return name[:index]
    return name
