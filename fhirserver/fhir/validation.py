"""Structural validation of every write: the official FHIR 4.0.1 JSON schema, then fhir.resources (R4B).

The schema (profiles/fhir.schema.v4.json) catches what the models skip: required code bindings
(a bogus Observation.status), id syntax, unknown elements, primitive formats. One validator per
resource type is compiled on first use; whole-Bundle validation is avoided (it is very slow).
Errors become OperationOutcome issues with a FHIRPath location (http://hl7.org/fhir/R4/validation.html).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
from pydantic import ValidationError as ModelValidationError

from .errors import FhirError, Issue
from .resource_types import model_class

MAX_ISSUES = 25
ID_PATTERN = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_JSON_TYPES = {"string": "a string", "number": "a number", "integer": "an integer", "boolean": "true or false",
               "object": "a JSON object", "array": "a JSON array"}


def is_valid_id(value: str) -> bool:
    return bool(ID_PATTERN.match(value))


def _fhirpath(root: str, path: Iterable[Any]) -> str:
    out = root
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def json_rule_issues(root: str, value: Any, path: tuple[Any, ...] = ()) -> list[Issue]:
    """FHIR JSON rules the schema and models let through (http://hl7.org/fhir/R4/json.html):
    arrays and objects are never empty, and null appears only inside an array of primitives
    (to line up with its `_element` extensions)."""
    issues: list[Issue] = []
    if isinstance(value, dict):
        if not value:
            where = _fhirpath(root, path)
            issues.append(Issue("structure", f"{where} is an empty object; omit the element instead "
                                             f"(FHIR JSON forbids empty objects).", expression=(where,)))
        for key, item in value.items():
            if item is None:
                where = _fhirpath(root, (*path, key))
                issues.append(Issue("structure", f"{where} is null; omit the element instead.", expression=(where,)))
            else:
                issues.extend(json_rule_issues(root, item, (*path, key)))
    elif isinstance(value, list):
        if not value:
            where = _fhirpath(root, path)
            issues.append(Issue("structure", f"{where} is an empty array; omit the element instead "
                                             f"(FHIR JSON forbids empty arrays).", expression=(where,)))
        for index, item in enumerate(value):
            if item is not None:
                issues.extend(json_rule_issues(root, item, (*path, index)))
    return issues


@lru_cache(maxsize=512)
def _ascii_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.ASCII)


def _ascii_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    """FHIR's regexes are written with Java's ASCII \\s and \\S: an ideographic space (U+3000) in
    Chinese text, or a no-break space, is ordinary content, not whitespace. Python's default
    Unicode classes would reject such strings, so patterns are evaluated in ASCII mode."""
    if validator.is_type(instance, "string") and not _ascii_regex(pattern).search(instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


_R4Validator = jsonschema.validators.extend(jsonschema.Draft6Validator, {"pattern": _ascii_pattern})


class ResourceValidator:
    """Validates resources of the supported types against the R4 schema and the R4B models."""

    def __init__(self, schema_path: Path) -> None:
        with schema_path.open(encoding="utf-8") as fh:
            self._definitions: dict[str, Any] = json.load(fh)["definitions"]
        # Reverse map from a primitive's regex to its FHIR type name, for readable messages.
        self._pattern_names = {
            d["pattern"]: name for name, d in self._definitions.items() if isinstance(d, dict) and "pattern" in d
        }
        self._validators: dict[str, jsonschema.protocols.Validator] = {}
        self._lock = threading.Lock()

    def element(self, type_name: str, name: str) -> tuple[str | None, bool]:
        """What the core definitions say of an element of a type: (its type, whether it repeats); (None, False)
        for an element the type does not have. FHIRPath Patch asks it to add to a list or set a single value."""
        prop = ((self._definitions.get(type_name) or {}).get("properties") or {}).get(name)
        if not isinstance(prop, dict):
            return None, False
        ref = (prop.get("items") or prop).get("$ref", "")
        return (ref.rsplit("/", 1)[-1] or None), prop.get("type") == "array"

    def _validator(self, resource_type: str) -> jsonschema.protocols.Validator:
        validator = self._validators.get(resource_type)
        if validator is None:
            with self._lock:
                validator = self._validators.get(resource_type)
                if validator is None:
                    schema = {"$ref": f"#/definitions/{resource_type}", "definitions": self._definitions}
                    validator = _R4Validator(schema)
                    self._validators[resource_type] = validator
        return validator

    def validate(self, resource: dict[str, Any]) -> None:
        """Raise FhirError(400) listing every structural problem; return silently when valid."""
        rtype = resource["resourceType"]
        issues = json_rule_issues(rtype, resource) or self._schema_issues(rtype, resource)
        if not issues:
            issues = self._model_issues(rtype, resource)
        if issues:
            issues.sort(key=lambda i: i.expression)
            raise FhirError(status=400, issues=issues[:MAX_ISSUES])

    def _schema_issues(self, rtype: str, resource: dict[str, Any]) -> list[Issue]:
        issues: list[Issue] = []
        for error in self._validator(rtype).iter_errors(resource):
            issues.extend(self._describe(rtype, error))
            if len(issues) >= MAX_ISSUES:
                break
        return issues

    def _describe(self, rtype: str, error: jsonschema.ValidationError) -> list[Issue]:
        where = _fhirpath(rtype, error.absolute_path)
        kind = error.validator
        if kind == "additionalProperties":
            known = error.schema.get("properties", {})
            extras = [k for k in error.instance if k not in known] if isinstance(error.instance, dict) else []
            return [
                Issue("structure", f"Unknown element '{name}' at {where}: it is not part of the FHIR R4 "
                                   f"definition of this element.", expression=(f"{where}.{name}",))
                for name in extras
            ]
        if kind == "required":
            missing = error.message.split("'")[1] if "'" in error.message else "?"
            return [Issue("required", f"Required element '{missing}' is missing at {where}.",
                          expression=(f"{where}.{missing}",))]
        if kind == "enum":
            allowed = ", ".join(str(v) for v in error.validator_value)
            return [Issue("code-invalid", f"{_short(error.instance)} is not a valid code for {where}; "
                                          f"allowed codes are: {allowed}.", expression=(where,))]
        if kind == "const":
            return [Issue("invalid", f"{where} must be {_short(error.validator_value)}.", expression=(where,))]
        if kind == "type":
            expected = error.validator_value
            names = expected if isinstance(expected, list) else [expected]
            wanted = " or ".join(_JSON_TYPES.get(t, t) for t in names)
            return [Issue("structure", f"{where} must be {wanted}, not {_short(error.instance)}.",
                          expression=(where,))]
        if kind == "pattern":
            fhir_type = self._pattern_names.get(error.validator_value, "value")
            return [Issue("value", f"{_short(error.instance)} is not a valid FHIR {fhir_type} at {where}.",
                          expression=(where,))]
        if kind == "minItems":
            return [Issue("structure", f"{where} is an empty array; omit the element instead "
                                       f"(FHIR JSON forbids empty arrays).", expression=(where,))]
        if kind in ("oneOf", "anyOf") and error.context:
            best = jsonschema.exceptions.best_match(error.context)
            return self._describe(rtype, best) if best is not None else []
        return [Issue("invalid", f"{where} is not valid here ({kind}).", expression=(where,))]

    def _model_issues(self, rtype: str, resource: dict[str, Any]) -> list[Issue]:
        try:
            model_class(rtype).model_validate(resource)
        except ModelValidationError as exc:
            issues = []
            for err in exc.errors(include_url=False, include_input=False)[:MAX_ISSUES]:
                where = _fhirpath(rtype, (p for p in err["loc"] if not str(p).startswith("function-")))
                message = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
                issues.append(Issue("invalid", f"{where}: {message}", expression=(where,)))
            return issues
        return []
