"""The terminology operations as FHIR answers (Parameters / ValueSet), over TerminologyService.

Declared parameters follow the R4 OperationDefinitions (CodeSystem-lookup, CodeSystem-validate-code,
CodeSystem-subsumes, ValueSet-expand, ValueSet-validate-code, ConceptMap-translate).
"""

from __future__ import annotations

from typing import Any

from ..fhir.errors import bad_request
from ..fhir.operation_params import OperationInput, Param, parameters
from .service import TerminologyService, versioned

LOOKUP = [Param("system"), Param("code"), Param("version"), Param("coding", "Coding"), Param("displayLanguage"),
          Param("property", repeats=True), Param("date")]
CS_VALIDATE = [Param("url"), Param("system"), Param("code"), Param("display"), Param("version"),
               Param("coding", "Coding"), Param("codeableConcept", "CodeableConcept")]
SUBSUMES = [Param("system"), Param("codeA"), Param("codeB"), Param("version"), Param("codingA", "Coding"),
            Param("codingB", "Coding")]
EXPAND = [Param("url"), Param("filter"), Param("count", "integer"), Param("offset", "integer"),
          Param("includeDesignations", "boolean"), Param("displayLanguage"), Param("activeOnly", "boolean"),
          Param("valueSetVersion")]
VS_VALIDATE = [Param("url"), Param("system"), Param("code"), Param("display"), Param("coding", "Coding"),
               Param("codeableConcept", "CodeableConcept"), Param("valueSetVersion"), Param("systemVersion")]
TRANSLATE = [Param("url"), Param("system"), Param("code"), Param("coding", "Coding"), Param("source"),
             Param("target"), Param("targetsystem"), Param("reverse", "boolean"), Param("conceptMapVersion"),
             Param("dependency", "parts", repeats=True)]
MAX_EXPANSION = 1000


def _coding(inputs: OperationInput, system_name: str = "system", code_name: str = "code",
            coding_name: str = "coding") -> tuple[str | None, str | None]:
    coding = inputs.get(coding_name)
    if coding:
        return coding.get("system"), coding.get("code")
    return inputs.get(system_name), inputs.get(code_name)


def lookup(service: TerminologyService, inputs: OperationInput, instance: dict[str, Any] | None) -> dict[str, Any]:
    system, code = _coding(inputs)
    system = instance["url"] if instance else system
    if not system or not code:
        raise bad_request("$lookup needs system and code (or a coding).", "code")
    concept = service.lookup(system, code)
    index = service.code_system(system)
    wanted = set(inputs.all("property"))
    parts: list[dict[str, Any]] = [
        {"name": "name", "valueString": index.resource.get("name", "")},
        {"name": "version", "valueString": index.resource.get("version", "")},
        {"name": "display", "valueString": service._display_in(concept, inputs.get("displayLanguage"),
                                                               concept.display)}]
    if concept.definition:
        parts.append({"name": "definition", "valueString": concept.definition})
    for designation in concept.designations:
        part = [{"name": "language", "valueCode": designation.get("language", "")}]
        if designation.get("use"):
            part.append({"name": "use", "valueCoding": designation["use"]})
        parts.append({"name": "designation", "part": [*part, {"name": "value", "valueString": designation["value"]}]})
    for name, values in concept.properties.items():
        if wanted and name not in wanted:
            continue
        for value in values:
            parts.append({"name": "property", "part": [{"name": "code", "valueCode": name}, _typed("value", value)]})
    if concept.parent and (not wanted or "parent" in wanted):
        parts.append({"name": "property", "part": [{"name": "code", "valueCode": "parent"},
                                                   {"name": "value", "valueCode": concept.parent}]})
    for child in concept.children if not wanted or "child" in wanted else []:
        parts.append({"name": "property", "part": [{"name": "code", "valueCode": "child"},
                                                   {"name": "value", "valueCode": child}]})
    return parameters(*parts)


def _typed(name: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"name": name, "valueBoolean": value}
    if isinstance(value, int):
        return {"name": name, "valueInteger": value}
    if isinstance(value, dict):
        return {"name": name, "valueCoding": value}
    if isinstance(value, float) or type(value).__name__ == "Decimal":
        return {"name": name, "valueDecimal": value}
    return {"name": name, "valueString": str(value)} if " " in str(value) else {"name": name, "valueCode": str(value)}


def _result(ok: bool, message: str, display: str | None) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"name": "result", "valueBoolean": ok}]
    if message:
        parts.append({"name": "message", "valueString": message})
    if display:
        parts.append({"name": "display", "valueString": display})
    return parameters(*parts)


def _codings(inputs: OperationInput) -> list[tuple[str | None, str | None, str | None]]:
    concept = inputs.get("codeableConcept")
    if concept:
        return [(c.get("system"), c.get("code"), c.get("display")) for c in concept.get("coding", [])]
    system, code = _coding(inputs)
    coding = inputs.get("coding")
    display = coding.get("display") if coding else inputs.get("display")
    return [(system, code, display)]


def cs_validate_code(service: TerminologyService, inputs: OperationInput,
                     instance: dict[str, Any] | None) -> dict[str, Any]:
    url = instance["url"] if instance else (inputs.get("url") or inputs.get("system"))
    candidates = _codings(inputs)
    if not url or not any(code for _, code, _ in candidates):
        raise bad_request("CodeSystem $validate-code needs url (or system) and code.", "code")
    service.code_system(url)
    messages = []
    for _, code, display in candidates:
        if code:
            ok, message, shown = service.validate_in_code_system(url, code, display)
            if ok:
                return _result(True, "", shown)
            messages.append(message)
    return _result(False, " ".join(messages), None)


def vs_validate_code(service: TerminologyService, inputs: OperationInput,
                     instance: dict[str, Any] | None) -> dict[str, Any]:
    url = _value_set_canonical(inputs, instance)
    candidates = _codings(inputs)
    if not url or not any(code for _, code, _ in candidates):
        raise bad_request("ValueSet $validate-code needs url and code (or coding/codeableConcept).", "code")
    messages = []
    for system, code, display in candidates:
        if code:
            ok, message, shown = service.validate_in_value_set(url, system, code, display)
            if ok:
                return _result(True, "", shown)
            messages.append(message)
    return _result(False, " ".join(messages), None)


def _value_set_canonical(inputs: OperationInput, instance: dict[str, Any] | None) -> str | None:
    """The ValueSet asked for: the instance's own version, or url with valueSetVersion (or url|version)."""
    if instance:
        return versioned(instance)
    url, version = inputs.get("url"), inputs.get("valueSetVersion")
    return f"{url.split('|', 1)[0]}|{version}" if url and version else url


def expand(service: TerminologyService, inputs: OperationInput, instance: dict[str, Any] | None) -> dict[str, Any]:
    url = _value_set_canonical(inputs, instance)
    if not url:
        raise bad_request("$expand needs the url of a ValueSet (or call it on ValueSet/[id]).", "url")
    count = inputs.get("count")
    if count is not None and count > MAX_EXPANSION:
        raise bad_request(f"count may be at most {MAX_EXPANSION}.", "count")
    return service.expand(url, inputs.get("filter"), inputs.get("offset", 0), count,
                          bool(inputs.get("includeDesignations", False)), inputs.get("displayLanguage"))


def subsumes(service: TerminologyService, inputs: OperationInput, instance: dict[str, Any] | None) -> dict[str, Any]:
    system_a, code_a = _coding(inputs, "system", "codeA", "codingA")
    system_b, code_b = _coding(inputs, "system", "codeB", "codingB")
    system = instance["url"] if instance else (system_a or system_b)
    if not system or not code_a or not code_b:
        raise bad_request("$subsumes needs system, codeA and codeB (or codingA and codingB).", "codeA")
    return parameters({"name": "outcome", "valueCode": service.subsumes(system, code_a, code_b)})


def translate(service: TerminologyService, inputs: OperationInput, instance: dict[str, Any] | None) -> dict[str, Any]:
    system, code = _coding(inputs)
    if not system or not code:
        raise bad_request("$translate needs system and code (or a coding).", "code")
    dependencies: dict[str, str] = {}
    for raw in inputs.all("dependency"):
        element, _, value = str(raw).partition("=")
        if not value:
            raise bad_request("dependency is written element=value, e.g. "
                              "http://hr.example.org/fhir/dicom#BodyPartExamined=HEAD.", "dependency")
        dependencies[element] = value
    map_url = instance["url"] if instance else inputs.get("url")
    matches = service.translate(map_url, system, code, bool(inputs.get("reverse", False)), dependencies)
    parts: list[dict[str, Any]] = [{"name": "result", "valueBoolean": bool(matches)}]
    if not matches:
        parts.append({"name": "message", "valueString": f"No mapping for {system}|{code}."})
    for match in matches:
        parts.append({"name": "match", "part": [
            {"name": "equivalence", "valueCode": match["equivalence"]},
            {"name": "concept", "valueCoding": match["concept"]},
            {"name": "source", "valueUri": match["source"]}]})
    return parameters(*parts)
