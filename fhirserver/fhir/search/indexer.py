"""Index values computed at write time from the search parameter definitions.

Stored in the same document as the resource (one write, so resource and index never disagree):
  sp.<field>            what queries match (see planner.py for the query shape of each type)
  sp.<field>__text      token :text        sp.<field>__exact     string :exact
  sp.<field>__identifier  reference :identifier   sp.identifier__type  identifier :of-type
  sp.<field>__b         date parameters in BUCKETED_DATES: the 30-day buckets of the hull of their values
  so.<field>            one scalar per parameter for _sort (missing values sort first)
Shapes by parameter type:
  token      ["system|code", "code", "|code" (no system)]      reference ["Type/id", "id", absolute URL]
  string     [normalised text]                                  uri       [uri]
  date       [{"lo": ms, "hi": ms}]  half-open ranges           number    [{"v": float}]
  quantity   [{"v": float, "s": system, "c": code, "u": unit}]
  composite  [{"k0": <component 0>, "k1": <component 1>}] with the component's own shape flattened
"""

from __future__ import annotations

import re
from datetime import timezone
from decimal import Decimal
from typing import Any

from ...store.indexes import BUCKET_SUFFIX, field_name
from ..local_base import local_bases
from ..resource_types import SUPPORTED_TYPES
from .parameters import SearchParameter, SearchParameterRegistry
from .values import MAX_MS, MIN_MS, ValueFormatError, date_range, hull_buckets, normalize_text

INDEXABLE_TYPES = frozenset({"token", "reference", "date", "string", "number", "quantity", "uri", "composite"})
# Parameters that also get a MongoDB index (all parameters are stored; each index costs every write).
DATABASE_INDEXED = ("identifier", "patient", "subject", "code", "item", "date", "link")
# Date parameters also stored as 30-day bucket keys (sp.<field>__b), the field their index is on.
BUCKETED_DATES = frozenset({"date"})
_REFERENCE = re.compile(r"^(?:(?P<base>.+)/)?(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})"
                        r"(?:/_history/[A-Za-z0-9\-.]+)?$")
_SORT_EMPTY_NUMBER = float(MIN_MS)


def _add(out: list[Any], value: Any) -> None:
    if value not in out:
        out.append(value)


# -- token ----------------------------------------------------------------------------------------
def token_strings(value: Any) -> list[str]:
    """Coding, CodeableConcept, Identifier, ContactPoint, code, boolean -> the three token forms."""
    if isinstance(value, bool):
        value = "true" if value else "false"
    if isinstance(value, str | int | Decimal) and not isinstance(value, bool):
        text = str(value)
        return [text, f"|{text}"]
    if not isinstance(value, dict):
        return []
    if "coding" in value or ("text" in value and "code" not in value and "value" not in value):
        return [s for coding in value.get("coding", []) for s in token_strings(coding)]
    code = value.get("code", value.get("value"))
    if not isinstance(code, str) or not code:
        return []
    system = value.get("system")
    return [f"{system}|{code}", code] if system else [f"|{code}", code]


def _token_texts(value: Any) -> list[str]:
    if not isinstance(value, dict):
        return []
    texts = [value.get("text"), value.get("display")]
    texts += [c.get("display") for c in value.get("coding", []) if isinstance(c, dict)]
    if isinstance(value.get("type"), dict):
        texts += [value["type"].get("text")]
    return [normalize_text(t) for t in texts if isinstance(t, str) and t.strip()]


def _identifier_types(value: Any) -> list[str]:
    """For :of-type: "typeSystem|typeCode|value" of an Identifier."""
    if not isinstance(value, dict) or not isinstance(value.get("value"), str):
        return []
    codings = (value.get("type") or {}).get("coding", []) if isinstance(value.get("type"), dict) else []
    return [f"{c.get('system', '')}|{c.get('code')}|{value['value']}" for c in codings
            if isinstance(c, dict) and c.get("code")]


# -- reference ------------------------------------------------------------------------------------
def reference_strings(value: Any, base_url: str | tuple[str, ...] | None) -> list[str]:
    """Reference (or canonical/uri) -> "Type/id" and "id" for local references (relative, or absolute with one of
    this server's bases), the URL for others."""
    bases = (base_url,) if isinstance(base_url, str) else tuple(base_url or ())
    ref = value.get("reference") if isinstance(value, dict) else value
    if not isinstance(ref, str) or not ref or ref.startswith("#"):
        return []
    match = _REFERENCE.match(ref)
    if match is None:
        return [ref]
    local = match.group("base") is None or match.group("base").rstrip("/") in bases
    if local:
        return [f"{match.group('type')}/{match.group('id')}", match.group("id")]
    return [ref]


# -- date -----------------------------------------------------------------------------------------
def date_ranges(value: Any, zone: timezone) -> list[dict[str, int]]:
    """date/dateTime/instant, Period, Timing -> [{"lo", "hi"}] (ms, half-open)."""
    try:
        if isinstance(value, str):
            r = date_range(value, zone)
            return [{"lo": int(r.lo), "hi": int(r.hi)}]
        if isinstance(value, dict) and ("start" in value or "end" in value):
            lo = int(date_range(value["start"], zone).lo) if value.get("start") else MIN_MS
            hi = int(date_range(value["end"], zone).hi) if value.get("end") else MAX_MS
            return [{"lo": lo, "hi": max(hi, lo + 1)}]
        if isinstance(value, dict) and "event" in value:
            return [d for event in value["event"] for d in date_ranges(event, zone)]
    except (ValueFormatError, TypeError, KeyError):
        return []
    return []


# -- string ---------------------------------------------------------------------------------------
_NAME_PARTS = ("text", "family", "given", "prefix", "suffix")
_ADDRESS_PARTS = ("text", "line", "city", "district", "state", "postalCode", "country")


def raw_strings(value: Any) -> list[str]:
    """string, HumanName, Address (each part and the whole) -> the strings a person would search."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, dict):
        return []
    parts = _NAME_PARTS if ("family" in value or "given" in value) else _ADDRESS_PARTS
    found: list[str] = []
    for part in parts:
        item = value.get(part)
        for text in (item if isinstance(item, list) else [item]):
            if isinstance(text, str) and text.strip():
                found.append(text)
    if "family" in value or "given" in value:  # whole name, both western and Chinese order
        given = " ".join(g for g in value.get("given", []) if isinstance(g, str))
        family = value.get("family") if isinstance(value.get("family"), str) else ""
        found += [f"{given} {family}".strip(), f"{family}{given}".strip()]
    return [s for s in found if s]


# -- quantity and number -------------------------------------------------------------------------
def quantities(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict) and isinstance(value.get("value"), int | float | Decimal):
        item: dict[str, Any] = {"v": float(value["value"])}
        for key, short in (("system", "s"), ("code", "c"), ("unit", "u"), ("currency", "c")):
            if isinstance(value.get(key), str):
                item[short] = value[key]
        return [item]
    return []


def numbers(value: Any) -> list[dict[str, float]]:
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return [{"v": float(value)}]
    return []


class ResourceIndexer:
    """Builds the `sp` (search) and `so` (sort) sub-documents stored with each current version."""

    def __init__(self, registry: SearchParameterRegistry, zone: timezone, base_url: str | None = None) -> None:
        self._registry = registry
        self._zone = zone
        self._base_url = base_url

    def index(self, resource: dict[str, Any], only_server_assigned: bool = False) -> dict[str, Any]:
        """All index fields of a resource: {"sp": {...}, "so": {...}}. With `only_server_assigned`, just
        the parameters over meta.versionId/meta.lastUpdated (e.g. _lastUpdated), which change with
        every version while the rest of the index is computed once per write."""
        sp: dict[str, list[Any]] = {}
        so: dict[str, Any] = {}
        for code, parameter in self._registry.for_type(resource["resourceType"]).items():
            if code == "_id" or parameter.resolved_by:
                continue
            if only_server_assigned and not _reads_server_meta(parameter):
                continue
            fields = self.parameter_fields(parameter, resource)
            name = field_name(code)
            for suffix, values in fields.items():
                if values:
                    sp[name + suffix] = values
            if code in BUCKETED_DATES and parameter.type == "date" and fields.get(""):
                sp[name + BUCKET_SUFFIX] = hull_buckets(fields[""])
            if parameter.type != "composite":
                values = fields.get("")
                so[name] = self._sort_key(parameter.type, values) if values else sort_default(parameter.type)
        return {"sp": sp, "so": so}

    def parameter_fields(self, parameter: SearchParameter, resource: dict[str, Any]) -> dict[str, list[Any]]:
        try:
            results = parameter.evaluate(resource)
        except Exception:  # noqa: BLE001 - a definition that cannot evaluate on this resource indexes nothing
            return {}
        return self._values(parameter, results)

    def _values(self, parameter: SearchParameter, results: list[Any]) -> dict[str, list[Any]]:
        kind = parameter.type
        main: list[Any] = []
        extra: dict[str, list[Any]] = {}
        for value in results:
            if kind == "token":
                for s in token_strings(value):
                    _add(main, s)
                for t in _token_texts(value):
                    _add(extra.setdefault("__text", []), t)
                for t in _identifier_types(value):
                    _add(extra.setdefault("__type", []), t)
            elif kind == "reference":
                for s in reference_strings(value, local_bases(self._base_url)):
                    _add(main, s)
                if isinstance(value, dict) and isinstance(value.get("identifier"), dict):
                    for s in token_strings(value["identifier"]):
                        _add(extra.setdefault("__identifier", []), s)
            elif kind == "date":
                for d in date_ranges(value, self._zone):
                    _add(main, d)
            elif kind == "string":
                for raw in raw_strings(value):
                    _add(main, normalize_text(raw))
                    _add(extra.setdefault("__exact", []), raw)
            elif kind == "uri":
                if isinstance(value, str):
                    _add(main, value)
            elif kind == "number":
                for n in numbers(value):
                    _add(main, n)
            elif kind == "quantity":
                for q in quantities(value):
                    _add(main, q)
            elif kind == "composite":
                for combo in self._composite(parameter, value):
                    _add(main, combo)
        return {"": main, **extra}

    def _composite(self, parameter: SearchParameter, item: Any) -> list[dict[str, Any]]:
        """Each combination of the components' values found on one item (e.g. one Observation.component)."""
        combos: list[dict[str, Any]] = [{}]
        for position, component in enumerate(parameter.components):
            try:
                results = component.evaluate(item)
            except Exception:  # noqa: BLE001
                return []
            flattened = self._component_values(component, results)
            if not flattened:
                return []
            combos = [{**c, **{f"k{position}{k}": v for k, v in f.items()}} for c in combos for f in flattened]
        return combos

    def _component_values(self, component: SearchParameter, results: list[Any]) -> list[dict[str, Any]]:
        values = self._values(component, results)[""]
        if component.type in ("token", "reference", "string", "uri"):
            return [{"": v} for v in values]
        return [{f"_{k}": v for k, v in item.items()} for item in values]

    @staticmethod
    def _sort_key(kind: str, values: list[Any]) -> Any:
        if kind == "date":
            return min(v["lo"] for v in values)
        if kind in ("number", "quantity"):
            return min(v["v"] for v in values)
        if kind == "composite":
            return ""
        return min(str(v) for v in values)


def _reads_server_meta(parameter: SearchParameter) -> bool:
    return "meta.lastUpdated" in parameter.expression or "meta.versionId" in parameter.expression


def database_indexed_parameters(registry: SearchParameterRegistry) -> dict[str, list[str]]:
    return {t: [c for c in DATABASE_INDEXED if registry.get(t, c)] for t in SUPPORTED_TYPES}


def sort_default(kind: str) -> Any:
    """The sort key of a resource without a value: first in ascending order."""
    return "" if kind in ("token", "reference", "string", "uri", "composite") else _SORT_EMPTY_NUMBER
