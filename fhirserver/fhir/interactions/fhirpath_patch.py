"""FHIRPath Patch (R4 fhirpatch.html): a Parameters body of `operation`s (add, insert, delete, replace, move), each
turned into JSON Patch operations on the current version, so the write pipeline applies and checks it exactly like
a JSON Patch.

Paths are FHIRPath of the form a navigation needs: `Type.element`, `[n]`, `.first()`, `.last()` and
`.where(<criteria>)` (the criteria evaluated by fhirpathpy on each candidate); a choice element may be named
without its type (`Observation.value`). Each path must select what the operation needs (one element; a list for
insert and move); anything else is a 422 that says which operation and why.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import fhirpathpy
import jsonpatch

from ..errors import FhirError, bad_request

# (FHIR type, element) -> (the element's FHIR type or None, whether it repeats): the core definitions' answer
Elements = Callable[[str, str], tuple[str | None, bool]]

TYPES = ("add", "insert", "delete", "replace", "move")
_SEGMENT = re.compile(r"\s*(?:(?P<where>where\((?P<criteria>.*)\))|(?P<first>first\(\))|(?P<last>last\(\))|"
                      r"(?P<name>[A-Za-z][A-Za-z0-9_]*))(?:\[(?P<index>\d+)\])?\s*$")

Node = tuple[str, Any, str | None]  # (JSON Pointer, value, its FHIR type when known)


def is_fhirpath_patch(body: Any) -> bool:
    return isinstance(body, dict) and body.get("resourceType") == "Parameters"


def to_json_patch(body: dict[str, Any], resource: dict[str, Any], elements: Elements) -> list[dict[str, Any]]:
    """The JSON Patch operations that do what the FHIRPath Patch asks on `resource` (applied in order)."""
    operations = [p for p in body.get("parameter") or [] if isinstance(p, dict)]
    if not operations or any(p.get("name") != "operation" for p in operations):
        raise bad_request("A FHIRPath Patch is a Parameters resource whose parameters are all named 'operation'.",
                          "Parameters.parameter")
    out: list[dict[str, Any]] = []
    working = resource
    for number, operation in enumerate(operations):
        step = _operation(number, {part.get("name"): part for part in operation.get("part") or []
                                   if isinstance(part, dict)}, working, elements)
        try:
            working = jsonpatch.JsonPatch(step).apply(working)
        except (jsonpatch.JsonPatchException, ValueError) as exc:
            raise _unprocessable(number, f"it cannot be applied ({exc.__class__.__name__})") from None
        out += step
    return out


def _operation(number: int, parts: dict[str, dict[str, Any]], resource: dict[str, Any],
               elements: Elements) -> list[dict[str, Any]]:
    kind = (parts.get("type") or {}).get("valueCode")
    if kind not in TYPES:
        raise bad_request(f"FHIRPath Patch operation {number + 1} needs a type: one of {', '.join(TYPES)}.",
                          f"Parameters.parameter[{number}]")
    path = (parts.get("path") or {}).get("valueString")
    if not isinstance(path, str) or not path.strip():
        raise bad_request(f"FHIRPath Patch operation {number + 1} ({kind}) needs a path (valueString).",
                          f"Parameters.parameter[{number}]")
    nodes = _select(number, path, resource, elements)
    if kind == "delete":
        if len(nodes) > 1:
            raise _unprocessable(number, f"the path {path} selects {len(nodes)} elements; delete takes one")
        return [{"op": "remove", "path": nodes[0][0]}] if nodes else []  # deleting nothing is no change
    if kind == "replace":
        pointer = _single(number, path, nodes, "replace")
        return [{"op": "replace", "path": pointer, "value": _value(number, parts)}]
    if kind == "add":
        pointer = _single(number, path, nodes, "add")
        target, target_type = nodes[0][1], nodes[0][2]
        name = (parts.get("name") or {}).get("valueString")
        if not isinstance(name, str) or not name or not isinstance(target, dict):
            raise _unprocessable(number, "add needs a name (valueString) and a path that selects an element")
        value = _value(number, parts)
        repeats = elements(target_type, name)[1] if target_type else isinstance(target.get(name), list)
        if repeats and isinstance(target.get(name), list):
            return [{"op": "add", "path": f"{pointer}/{_escape(name)}/-", "value": value}]
        if repeats:
            return [{"op": "add", "path": f"{pointer}/{_escape(name)}", "value": [value]}]
        if name in target:
            raise _unprocessable(number, f"{path[:80]} already has {name}, which does not repeat: use replace")
        return [{"op": "add", "path": f"{pointer}/{_escape(name)}", "value": value}]
    pointer, items = _list(number, path, resource, elements)
    if kind == "insert":
        index = _index(number, parts, "index", len(items))
        return [{"op": "add", "path": f"{pointer}/{index}", "value": _value(number, parts)}]
    source = _index(number, parts, "source", len(items) - 1)
    destination = _index(number, parts, "destination", len(items) - 1)
    return [{"op": "move", "from": f"{pointer}/{source}", "path": f"{pointer}/{destination}"}]


def _select(number: int, path: str, resource: dict[str, Any], elements: Elements) -> list[Node]:
    """The (pointer, value) pairs the path selects."""
    head, _, rest = path.strip().partition(".")
    if head != resource.get("resourceType"):
        raise _unprocessable(number, f"the path {path[:80]} does not start with {resource.get('resourceType')}")
    nodes: list[Node] = [("", resource, head)]
    for segment in _segments(rest) if rest else []:
        match = _SEGMENT.match(segment)
        if match is None:
            raise _unprocessable(number, f"'{segment[:60]}' in {path[:80]} is not a navigation this server follows "
                                         f"(element names, [n], first(), last(), where(...))")
        if match.group("name"):
            nodes = _children(nodes, match.group("name"), elements)
        elif match.group("first"):
            nodes = nodes[:1]
        elif match.group("last"):
            nodes = nodes[-1:]
        else:
            criteria = match.group("criteria")
            try:
                nodes = [n for n in nodes if fhirpathpy.evaluate(n[1], criteria) == [True]]
            except Exception:  # noqa: BLE001 - fhirpathpy raises many kinds on a bad expression
                raise _unprocessable(number, f"where({criteria[:60]}) is not a FHIRPath expression fhirpathpy "
                                             f"evaluates") from None
        if match.group("index") is not None:
            index = int(match.group("index"))
            nodes = nodes[index:index + 1]
    return nodes


def _children(nodes: list[Node], name: str, elements: Elements) -> list[Node]:
    out: list[Node] = []
    for pointer, value, fhir_type in nodes:
        if not isinstance(value, dict):
            continue
        key = name if name in value else next((k for k in value if k.startswith(name) and k[len(name):][:1].isupper()
                                               and name[:1].islower()), None)  # a choice: value -> valueQuantity
        if key is None:
            continue
        child, child_type = value[key], elements(fhir_type, key)[0] if fhir_type else None
        base = f"{pointer}/{_escape(key)}"
        out += [(f"{base}/{i}", item, child_type) for i, item in enumerate(child)] if isinstance(child, list) \
            else [(base, child, child_type)]
    return out


def _list(number: int, path: str, resource: dict[str, Any], elements: Elements) -> tuple[str, list[Any]]:
    """The pointer of the list the path names (insert and move work on a list itself)."""
    parent_path, _, name = path.strip().rpartition(".")
    parents = _select(number, parent_path, resource, elements) if parent_path else []
    if len(parents) != 1 or not isinstance(parents[0][1], dict) or not isinstance(parents[0][1].get(name), list):
        raise _unprocessable(number, f"the path {path[:80]} does not name one list")
    return f"{parents[0][0]}/{_escape(name)}", parents[0][1][name]


def _segments(rest: str) -> list[str]:
    """Split on the dots outside parentheses and quotes (where(...) may hold dots)."""
    out, depth, quote, current = [], 0, False, ""
    for char in rest:
        if char == "'":
            quote = not quote
        elif not quote and char == "(":
            depth += 1
        elif not quote and char == ")":
            depth -= 1
        if char == "." and depth == 0 and not quote:
            out.append(current)
            current = ""
        else:
            current += char
    return [*out, current]


def _single(number: int, path: str, nodes: list[Node], kind: str) -> str:
    if len(nodes) != 1:
        raise _unprocessable(number, f"the path {path[:80]} selects {len(nodes)} elements; {kind} takes exactly one")
    return nodes[0][0]


def _index(number: int, parts: dict[str, dict[str, Any]], name: str, highest: int) -> int:
    value = (parts.get(name) or {}).get("valueInteger")
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= highest:
        raise _unprocessable(number, f"{name} must be an integer from 0 to {highest}")
    return value


def _value(number: int, parts: dict[str, dict[str, Any]]) -> Any:
    """The value part: value[x], or a complex value given as nested parts."""
    part = parts.get("value")
    if part is None:
        raise _unprocessable(number, "it needs a value")
    typed = [k for k in part if k.startswith("value")]
    if typed:
        return part[typed[0]]
    if part.get("part"):
        return {sub["name"]: _value(number, {"value": sub}) for sub in part["part"] if isinstance(sub, dict)
                and isinstance(sub.get("name"), str)}
    raise _unprocessable(number, "its value has neither value[x] nor parts")


def _escape(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


def _unprocessable(number: int, why: str) -> FhirError:
    return FhirError.of(422, "processing", f"FHIRPath Patch operation {number + 1}: {why}.",
                        f"Parameters.parameter[{number}]")
