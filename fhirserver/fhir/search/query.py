"""Parsing a FHIR search query into typed criteria and result parameters (pure; no database).

http://hl7.org/fhir/R4/search.html. Every parameter is either understood or reported. An unknown parameter is
ignored with a warning returned with the results (R4: servers SHOULD ignore them; `search.mode = outcome`), or a
400 naming it with `Prefer: handling=strict` (and always for the criteria of conditional writes, where ignoring
one would widen what is changed). An unsupported modifier or a malformed value is always a 400 (R4: a server
SHALL reject an unsupported modifier). Nothing is silently ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import FhirError, Issue
from ..resource_types import SUPPORTED_TYPES
from ..validation import is_valid_id
from .parameters import SearchParameter, SearchParameterRegistry

MAX_VALUE_LENGTH = 512
MAX_VALUES = 100
MAX_CHAIN_DEPTH = 2
RESULT_PARAMETERS = frozenset({"_count", "_sort", "_total", "_summary", "_elements", "_include", "_revinclude",
                               "_include:iterate", "_revinclude:iterate", "_page", "_format", "_pretty"})
MODIFIERS = {
    "token": {"missing", "not", "text", "of-type", "in", "not-in", "below", "above"},  # the last four: code_sets.py
    "reference": {"missing", "identifier"},  # plus :[Type]
    "string": {"missing", "exact", "contains"},
    "uri": {"missing", "below"},
    "date": {"missing"},
    "number": {"missing"},
    "quantity": {"missing"},
    "composite": {"missing"},
}
# How values of each parameter type are written; documentation for the CapabilityStatement and the README.
VALUE_FORMS = {
    "token": "`system|code`, `code`, `|code`, `system|`",
    "reference": "`Type/id`, `id`, absolute URL; chains `.param`; `:Type`",
    "string": "starts with; case, accent and full-width insensitive",
    "date": "prefixes `eq ne gt lt ge le sa eb ap`, precision of the value",
    "number": "prefixes, implicit precision (`100` = [99.5, 100.5))",
    "quantity": "`[prefix]number|system|code` or `[prefix]number||unit`",
    "uri": "exact",
    "composite": "`first$second`, e.g. `http://loinc.org|718-7$gt150`",
}
SUMMARY_VALUES = ("true", "false", "count", "text", "data")


@dataclass(frozen=True)
class Criterion:
    """One parameter occurrence: values are OR-ed; several criteria are AND-ed.

    `chain` is set for chained parameters (subject:Patient.identifier=x): the inner criteria run on
    `target_types` and this criterion then matches references to what they found.
    `has` is set for reverse chaining (_has:Observation:patient:code=x).
    """

    code: str
    type: str
    modifier: str | None
    values: tuple[str, ...]
    name: str  # as written by the client, for messages
    chain: tuple[Criterion, ...] = ()
    target_types: tuple[str, ...] = ()
    has: tuple[str, str] | None = None  # (resource type, reference parameter)
    component_types: tuple[str, ...] = ()  # for composite parameters, from their definitions


@dataclass(frozen=True)
class Include:
    source: str
    parameter: str
    target: str | None
    iterate: bool
    reverse: bool


@dataclass
class SearchQuery:
    resource_type: str
    criteria: list[Criterion] = field(default_factory=list)
    sort: list[tuple[str, str, int]] = field(default_factory=list)  # (code, type, direction)
    count: int | None = None
    total: str = "none"
    summary: str | None = None
    elements: tuple[str, ...] = ()
    includes: list[Include] = field(default_factory=list)
    page: str | None = None
    warnings: list[Issue] = field(default_factory=list)


def _split_values(raw: str) -> list[str]:
    """Split on unescaped commas (FHIR escapes `,`, `|`, `$` and `\\` with a backslash)."""
    values, current, escaped = [], [], False
    for ch in raw:
        if escaped:
            current.append(ch if ch in ",$\\" else "\\" + ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            values.append("".join(current))
            current = []
        else:
            current.append(ch)
    values.append("".join(current))
    return values


class QueryParser:
    """Turns (name, value) pairs into a SearchQuery for one resource type."""

    def __init__(self, registry: SearchParameterRegistry) -> None:
        self.registry = registry

    def parse(self, resource_type: str, pairs: list[tuple[str, str]], lenient: bool = False,
              criteria_only: bool = False) -> SearchQuery:
        query = SearchQuery(resource_type=resource_type)
        errors: list[Issue] = []
        unknown: list[Issue] = []
        for name, raw in pairs:
            try:
                if name in RESULT_PARAMETERS:
                    if criteria_only:
                        continue
                    self._result_parameter(query, name, raw)
                else:
                    query.criteria.append(self.criterion(resource_type, name, raw, depth=0))
            except UnknownParameter as error:
                unknown.extend(error.issues)
            except FhirError as error:
                errors.extend(error.issues)
        if errors or (unknown and not lenient):
            raise FhirError(status=400, issues=[*errors, *unknown])
        query.warnings = [Issue(i.code, i.diagnostics + " It was ignored (send Prefer: handling=strict to have such "
                                                        "a search refused instead).", severity="warning",
                                expression=i.expression) for i in unknown]
        return query

    # -- criteria ---------------------------------------------------------------------------------
    def criterion(self, resource_type: str, name: str, raw: str, depth: int) -> Criterion:
        if name.startswith("_has:"):
            return self._has(resource_type, name, raw, depth)
        head, dot, rest = name.partition(".")
        code, _, modifier = head.partition(":")
        if code == "_id":
            return self._id_criterion(name, modifier, raw)
        parameter = self.registry.get(resource_type, code)
        if parameter is None:
            raise self._unknown(resource_type, name, code)
        if dot:
            return self._chain(resource_type, parameter, name, modifier, rest, raw, depth)
        if parameter.resolved_by and modifier:
            raise FhirError.of(400, "not-supported", f"'{code}' takes no modifier ('{name}').", name)
        modifier_value = self._check_modifier(parameter, name, modifier)
        values = self._values(name, raw, allow_empty=False)
        if modifier_value == "missing" and values not in (["true"], ["false"]):
            raise _bad(name, f"'{name}' takes true or false.")
        if parameter.type == "token" and modifier_value in ("below", "above") and not all(
                v.partition("|")[0] and v.partition("|")[2] for v in values):
            raise _bad(name, f"'{name}' takes system|code (e.g. http://hr.example.org/fhir/CodeSystem/hr-item|IMG).")
        return Criterion(code=code, type=parameter.type, modifier=modifier_value, values=tuple(values), name=name,
                         component_types=tuple(c.type for c in parameter.components))

    def _id_criterion(self, name: str, modifier: str, raw: str) -> Criterion:
        if modifier not in ("", "not", "missing"):
            raise FhirError.of(400, "not-supported", f"Modifier ':{modifier}' is not supported on _id.", name)
        values = self._values(name, raw, allow_empty=False)
        if modifier != "missing" and not all(is_valid_id(v) for v in values):
            raise _bad(name, "'_id' values must be FHIR ids (1-64 characters from A-Z, a-z, 0-9, '-' and '.').")
        return Criterion(code="_id", type="token", modifier=modifier or None, values=tuple(values), name=name)

    def _check_modifier(self, parameter: SearchParameter, name: str, modifier: str) -> str | None:
        if not modifier:
            return None
        if parameter.type == "reference" and modifier in SUPPORTED_TYPES:
            return modifier
        if modifier in MODIFIERS.get(parameter.type, set()):
            if modifier == "of-type" and parameter.code != "identifier":
                raise FhirError.of(400, "not-supported", "':of-type' applies to identifier only.", name)
            return modifier
        allowed = ", ".join(sorted(":" + m for m in MODIFIERS.get(parameter.type, set())))
        raise FhirError.of(400, "not-supported", f"Modifier ':{modifier}' is not supported on '{parameter.code}' "
                                                 f"({parameter.type}); supported: {allowed}.", name)

    def _values(self, name: str, raw: str, allow_empty: bool) -> list[str]:
        values = [v for v in _split_values(raw) if v != ""]
        if not values and not allow_empty:
            raise _bad(name, f"Search parameter '{name}' has no value.")
        if len(values) > MAX_VALUES or any(len(v) > MAX_VALUE_LENGTH for v in values):
            raise FhirError.of(400, "too-long", f"Search parameter '{name}' has too many or too long values (at "
                                                f"most {MAX_VALUES} values of {MAX_VALUE_LENGTH} characters).", name)
        return values

    def _chain(self, resource_type: str, parameter: SearchParameter, name: str, modifier: str, rest: str,
               raw: str, depth: int) -> Criterion:
        if parameter.type != "reference":
            raise _bad(name, f"'{parameter.code}' is not a reference parameter, so it cannot be chained.")
        if depth >= MAX_CHAIN_DEPTH:
            raise FhirError.of(400, "not-supported", f"Chains deeper than {MAX_CHAIN_DEPTH} levels are not "
                                                     f"supported ('{name}').", name)
        if modifier and modifier not in SUPPORTED_TYPES:
            raise _bad(name, f"In a chain, ':{modifier}' must name a resource type we serve.")
        targets = [modifier] if modifier else [t for t in parameter.targets if t in SUPPORTED_TYPES]
        inner_code = rest.split(".", 1)[0].split(":", 1)[0]
        usable = [t for t in targets if inner_code == "_id" or self.registry.get(t, inner_code) is not None]
        if not usable:
            raise FhirError.of(400, "not-supported", f"No target type of '{parameter.code}' has a search parameter "
                                                     f"'{inner_code}' ('{name}').", name)
        inner = [self.criterion(t, rest, raw, depth + 1) for t in usable]
        return Criterion(code=parameter.code, type="reference", modifier=None, values=(), name=name,
                         chain=tuple(inner), target_types=tuple(usable))

    def _has(self, resource_type: str, name: str, raw: str, depth: int) -> Criterion:
        parts = name.split(":", 3)
        if len(parts) != 4 or not parts[3]:
            raise _bad(name, "_has is written _has:Type:reference-parameter:parameter=value.")
        _, source, ref_code, inner_name = parts
        if source not in SUPPORTED_TYPES:
            raise FhirError.of(400, "not-supported", f"_has names {source[:40]}, which this server does not serve.",
                               name)
        ref = self.registry.get(source, ref_code)
        if ref is None or ref.type != "reference":
            raise _bad(name, f"'{ref_code}' is not a reference parameter of {source}.")
        if depth >= MAX_CHAIN_DEPTH:
            raise FhirError.of(400, "not-supported", "_has nested this deep is not supported.", name)
        inner = self.criterion(source, inner_name, raw, depth + 1)
        return Criterion(code="_has", type="special", modifier=None, values=(), name=name, chain=(inner,),
                         has=(source, ref_code))

    def _unknown(self, resource_type: str, name: str, code: str) -> FhirError:
        if code in ("_text", "_content", "_list", "_query", "_filter", "_type", "_contained", "_containedType"):
            return UnknownParameter.of(400, "not-supported", f"'{code}' is not supported by this server.", name)
        return UnknownParameter.of(400, "not-supported", f"Search parameter '{name}' is not supported for "
                                                         f"{resource_type}; see /fhir/metadata for the list.", name)

    # -- result parameters --------------------------------------------------------------------------
    def _result_parameter(self, query: SearchQuery, name: str, raw: str) -> None:
        if name == "_count":
            if not raw.isdigit() or len(raw) > 9:
                raise _bad(name, f"_count must be a whole number, got {raw[:20]!r}.")
            query.count = int(raw)
        elif name == "_sort":
            query.sort = [self._sort_key(query.resource_type, key) for key in raw.split(",") if key]
            if not query.sort:
                raise _bad(name, "_sort needs at least one parameter name.")
        elif name == "_total":
            if raw not in ("none", "estimate", "accurate"):
                raise _bad(name, "_total is none, estimate or accurate.")
            query.total = raw
        elif name == "_summary":
            if raw not in SUMMARY_VALUES:
                raise _bad(name, f"_summary is one of {', '.join(SUMMARY_VALUES)}.")
            query.summary = raw
        elif name == "_elements":
            elements = tuple(e.strip() for e in raw.split(",") if e.strip())
            if not elements or not all(e.isidentifier() for e in elements):
                raise _bad(name, "_elements lists top-level element names, e.g. _elements=status,code.")
            query.elements = elements
        elif name in ("_include", "_revinclude", "_include:iterate", "_revinclude:iterate"):
            query.includes.extend(self._includes(query.resource_type, name, raw))
        elif name == "_page":
            query.page = raw

    def _sort_key(self, resource_type: str, key: str) -> tuple[str, str, int]:
        direction = -1 if key.startswith("-") else 1
        code = key.lstrip("-")
        if code == "_id":
            return code, "token", direction
        parameter = self.registry.get(resource_type, code)
        if parameter is None or parameter.type == "composite" or parameter.resolved_by:
            raise FhirError.of(400, "not-supported", f"Cannot sort {resource_type} by '{code}'.", "_sort")
        return code, parameter.type, direction

    def _includes(self, resource_type: str, name: str, raw: str) -> list[Include]:
        """`_include=Type:*` (or `*`, the searched type) stands for every reference parameter of the type."""
        source, _, rest = (f"{resource_type}:*" if raw == "*" else raw).partition(":")
        if rest != "*":
            return [self._include(name, raw)]
        if name.startswith("_revinclude") or source not in SUPPORTED_TYPES:
            raise _bad(name, f"A wildcard is written _include=Type:* (or _include=*), got {name}={raw[:60]}.")
        return [self._include(name, f"{source}:{code}") for code, parameter in
                sorted(self.registry.for_type(source).items())
                if parameter.type == "reference" and not parameter.resolved_by]

    def _include(self, name: str, raw: str) -> Include:
        reverse = name.startswith("_revinclude")
        parts = raw.split(":")
        if len(parts) not in (2, 3) or parts[0] not in SUPPORTED_TYPES:
            raise _bad(name, f"{name} is written Type:parameter or Type:parameter:TargetType, got {raw[:60]!r}.")
        parameter = self.registry.get(parts[0], parts[1])
        if parameter is None or parameter.type != "reference":
            raise _bad(name, f"'{parts[1]}' is not a reference parameter of {parts[0]}.")
        target = parts[2] if len(parts) == 3 else None
        if target is not None and target not in SUPPORTED_TYPES:
            raise _bad(name, f"{target[:40]} is not a resource type this server serves.")
        return Include(source=parts[0], parameter=parts[1], target=target, iterate=name.endswith(":iterate"),
                       reverse=reverse)


class UnknownParameter(FhirError):
    """A parameter this server does not know for the type (ignored in lenient handling, the default for search)."""


def _bad(name: str, diagnostics: str) -> FhirError:
    return FhirError.of(400, "invalid", diagnostics, name)


def criteria_key(resource_type: str, pairs: list[tuple[str, str]]) -> str:
    """A canonical spelling of criteria, used to serialise conditional writes on the same query."""
    parts = sorted(f"{k}={','.join(sorted(_split_values(v)))}" for k, v in pairs if k not in RESULT_PARAMETERS)
    return f"{resource_type}?{'&'.join(parts)}"
