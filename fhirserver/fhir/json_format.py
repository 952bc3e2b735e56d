"""FHIR JSON in and out, without losing what the sender wrote.

Decimals are parsed as `decimal.Decimal` and written back digit for digit ("1.50" stays "1.50"),
as FHIR requires for decimal precision (http://hl7.org/fhir/R4/json.html#primitive). Duplicate
keys and NaN/Infinity are refused: silently keeping one of two "status" values is a clinical risk.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import orjson

from .errors import bad_request


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _no_constants(name: str) -> Any:
    raise ValueError(name)


class _TooLarge(ValueError):
    pass


INT64 = (-(2**63), 2**63 - 1)  # what the store (BSON) holds as an integer


def _bounded_int(text: str) -> int:
    value = int(text)
    if not INT64[0] <= value <= INT64[1]:
        raise _TooLarge(text)
    return value


MAX_DEPTH = 64  # FHIR resources stay far below; refusing deeper input protects the parsers that follow
_STRINGS = re.compile(r'"[^"]*"')
_LONE_SURROGATE = re.compile(r"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
                             r"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}")
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")


def nesting_depth(text: str) -> int:
    """How deep objects and arrays nest, measured before parsing (strings removed, then brackets counted)."""
    unescaped = text.replace("\\\\", "").replace('\\"', "")  # escapes first: then strings are "[^"]*"
    brackets = _NOT_BRACKETS.sub("", _STRINGS.sub("", unescaped))
    depth = deepest = 0
    for char in brackets:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def loads(body: bytes | str, expected: str = "a FHIR JSON resource") -> Any:
    """Parse a request body; any defect is a 400 FhirError with a sentence a client can act on."""
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise bad_request(f"The body is not valid UTF-8 (byte offset {exc.start}).") from None
    if not body.strip():
        raise bad_request(f"The request body is empty; {expected} was expected.")
    if _LONE_SURROGATE.search(body.replace("\\\\", "")):
        raise bad_request("The JSON has a \\u escape of half a UTF-16 surrogate pair; that is not a character.")
    depth = nesting_depth(body)
    if depth > MAX_DEPTH:
        raise bad_request(f"The JSON nests {depth} levels deep; this server accepts at most {MAX_DEPTH}.")
    try:
        return json.loads(
            body, parse_float=Decimal, parse_int=_bounded_int, object_pairs_hook=_no_duplicates,
            parse_constant=_no_constants
        )
    except _TooLarge as exc:
        raise bad_request(f"The JSON integer {exc.args[0][:40]} is outside the 64-bit range this server stores "
                          f"(write it with a decimal point or an exponent if it is a decimal).") from None
    except _DuplicateKey as exc:
        raise bad_request(f"The JSON object repeats the property '{exc.args[0]}'; each may appear once.") from None
    except json.JSONDecodeError as exc:
        raise bad_request(f"The body is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.") from None
    except (ValueError, RecursionError):
        raise bad_request("The body is not valid JSON (NaN, Infinity or excessive nesting).") from None


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value))
    raise TypeError(type(value).__name__)


def dumps(resource: Any, pretty: bool = False) -> bytes:
    """Serialise to UTF-8 JSON bytes (Chinese text stays readable, not \\u-escaped)."""
    option = orjson.OPT_INDENT_2 if pretty else 0
    return orjson.dumps(resource, default=_default, option=option)
