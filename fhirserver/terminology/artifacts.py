"""Loading the shipped FHIR artifacts (terminology/, profiles/) with the configured canonical base.

The files are written with DEFAULT_CANONICAL; a region that publishes them under its own base sets
FHIRSERVER_CANONICAL_BASE and every URL in them (url, system, valueSet, profile...) follows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..config import DEFAULT_CANONICAL


def rebase(node: Any, canonical: str) -> Any:
    if canonical == DEFAULT_CANONICAL:
        return node
    if isinstance(node, str):  # anywhere in the text: FHIRPath expressions quote URLs mid-string
        return node.replace(DEFAULT_CANONICAL, canonical)
    if isinstance(node, list):
        return [rebase(v, canonical) for v in node]
    if isinstance(node, dict):
        return {k: rebase(v, canonical) for k, v in node.items()}
    return node


def load_folder(folder: Path, canonical: str, skip: tuple[str, ...] = ("fhir.schema.v4.json",)) -> list[dict[str, Any]]:
    """Every FHIR resource in the folder's *.json files (Bundles are unpacked), canonical rebased."""
    resources: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.json")):
        if path.name in skip:
            continue
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("resourceType") == "Bundle":
            resources.extend(e["resource"] for e in data.get("entry", []) if "resource" in e)
        elif "resourceType" in data:
            resources.append(data)
    return [rebase(r, canonical) for r in resources]
