"""Operation input: the same parameters from a GET query string or a POSTed Parameters resource.

http://hl7.org/fhir/R4/operations.html#request - each operation declares its parameters and their
types here; anything missing, repeated or of the wrong type is a 400 naming the parameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import FhirError, Issue, bad_request

_VALUE_KEYS = ("valueString", "valueCode", "valueUri", "valueCanonical", "valueUrl", "valueBoolean",
               "valueInteger", "valueCoding", "valueCodeableConcept", "valueDateTime", "valueReference", "valueDate")


@dataclass(frozen=True)
class Param:
    name: str
    kind: str = "string"  # string | boolean | integer | Coding | CodeableConcept | resource | parts
    repeats: bool = False


class OperationInput:
    """Typed access to an operation's parameters."""

    def __init__(self, values: dict[str, list[Any]]) -> None:
        self._values = values

    def get(self, name: str, default: Any = None) -> Any:
        values = self._values.get(name)
        return values[0] if values else default

    def all(self, name: str) -> list[Any]:
        return list(self._values.get(name, []))

    def require(self, name: str) -> Any:
        value = self.get(name)
        if value is None:
            raise bad_request(f"The operation needs the parameter '{name}'.", name)
        return value


def parse(declared: list[Param], query: list[tuple[str, str]], body: dict[str, Any] | None) -> OperationInput:
    by_name = {p.name: p for p in declared}
    values: dict[str, list[Any]] = {}
    issues: list[Issue] = []
    for name, raw in query:
        if name in ("_format", "_pretty"):
            continue
        param = by_name.get(name)
        if param is None:
            issues.append(Issue("not-supported", f"Unknown parameter '{name}' for this operation; known: "
                                                 f"{', '.join(sorted(by_name))}.", expression=(name,)))
            continue
        try:
            values.setdefault(name, []).append(_from_text(param, raw))
        except ValueError as exc:
            issues.append(Issue("invalid", f"Parameter '{name}': {exc}.", expression=(name,)))
    if body is not None:
        if body.get("resourceType") != "Parameters":
            raise bad_request("POST a Parameters resource to this operation.", "resourceType")
        for part in body.get("parameter", []):
            name = part.get("name") if isinstance(part, dict) else None
            param = by_name.get(name) if isinstance(name, str) else None
            if param is None:
                issues.append(Issue("not-supported", f"Unknown parameter '{str(name)[:40]}' for this operation.",
                                    expression=(str(name)[:40],)))
                continue
            if param.kind == "resource":
                value = part.get("resource")
            elif param.kind == "parts":
                value = _parts_as_text(part.get("part") or [])
            else:
                value = next((part[k] for k in _VALUE_KEYS if k in part), None)
            if value is None:
                issues.append(Issue("invalid", f"Parameter '{name}' has no value.", expression=(name,)))
                continue
            values.setdefault(name, []).append(value)
    for name, found in values.items():
        if len(found) > 1 and not by_name[name].repeats:
            issues.append(Issue("invalid", f"Parameter '{name}' may appear once.", expression=(name,)))
    if issues:
        raise FhirError(status=400, issues=issues)
    return OperationInput(values)


def _parts_as_text(parts: list[Any]) -> str | None:
    """A dependency-style part (element + concept/value) as the text form "element=code"."""
    element = next((p.get("valueUri") for p in parts if isinstance(p, dict) and p.get("name") == "element"), None)
    concept = next((p for p in parts if isinstance(p, dict) and p.get("name") == "concept"), None)
    if not element or concept is None:
        return None
    if "valueCodeableConcept" in concept:
        codings = concept["valueCodeableConcept"].get("coding") or [{}]
        value = codings[0].get("code") or concept["valueCodeableConcept"].get("text")
    else:
        value = next((concept[k] for k in _VALUE_KEYS if k in concept), None)
    return f"{element}={value}" if value is not None else None


def _from_text(param: Param, raw: str) -> Any:
    if param.kind == "boolean":
        if raw not in ("true", "false"):
            raise ValueError("must be true or false")
        return raw == "true"
    if param.kind == "integer":
        if not raw.isdigit() or len(raw) > 9:
            raise ValueError("must be a whole number")
        return int(raw)
    if param.kind == "Reference":
        return {"reference": raw}
    if param.kind == "Coding":
        system, _, code = raw.rpartition("|")
        return {"system": system, "code": code} if system else {"code": code}
    if param.kind in ("CodeableConcept", "resource"):
        raise ValueError("can only be given in a POSTed Parameters resource")
    return raw


def parameters(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": [p for p in parts if p]}
