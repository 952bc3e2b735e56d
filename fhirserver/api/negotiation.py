"""Content negotiation for FHIR JSON (http://hl7.org/fhir/R4/http.html#mime-type).

Requests: application/fhir+json or application/json bodies (real clients such as fhirpy send the
latter); JSON Patch for PATCH. Responses: JSON only; XML is refused with a clear 406/415.
"""

from __future__ import annotations

from flask import Request

from ..fhir.errors import FhirError

FHIR_JSON = "application/fhir+json"
JSON_TYPES = frozenset({"application/fhir+json", "application/json", "application/json+fhir"})
PATCH_TYPES = frozenset({"application/json-patch+json"})
_FORMAT_ALIASES = {"json": FHIR_JSON, "application/json": "application/json", "application/fhir+json": FHIR_JSON,
                   "application/json+fhir": FHIR_JSON}
_XML_HINTS = ("xml", "turtle", "ttl")


def _media_type(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def _fhir_version(value: str) -> str | None:
    """The fhirVersion parameter of a media type (http://hl7.org/fhir/R4/http.html#version-parameter), if any."""
    for parameter in value.split(";")[1:]:
        name, _, version = parameter.partition("=")
        if name.strip().lower() == "fhirversion":
            return version.strip().strip('"')
    return None


def _check_version(value: str, status: int, header: str) -> None:
    version = _fhir_version(value)
    if version is not None and version not in ("4.0", "4.0.1"):
        raise FhirError.of(status, "not-supported", f"{header} asks for FHIR version {version[:20]}; this server "
                                                    f"speaks FHIR R4 (fhirVersion=4.0) only.")


def response_media_type(request: Request) -> str:
    """The JSON flavour to answer with; 406 when the client accepts only formats we do not produce."""
    requested = request.args.get("_format")
    if requested is not None:
        chosen = _FORMAT_ALIASES.get(_media_type(requested))
        if chosen is None:
            raise FhirError.of(406, "not-supported", f"_format={requested[:40]} is not supported: this server "
                                                     f"speaks FHIR JSON only (_format=json).", "_format")
        return chosen
    accept = request.headers.get("Accept", "")
    if not accept.strip():
        return FHIR_JSON
    versions = [_fhir_version(part) for part in accept.split(",")]
    if all(v is not None for v in versions) and not any(v in ("4.0", "4.0.1") for v in versions):
        _check_version(accept.split(",")[0], 406, "Accept")
    offered = [_media_type(part) for part in accept.split(",")]
    if any(m in ("*/*", "application/*", FHIR_JSON, "application/json+fhir") for m in offered):
        return FHIR_JSON
    if "application/json" in offered:
        return "application/json"
    if any(hint in m for m in offered for hint in _XML_HINTS):
        raise FhirError.of(406, "not-supported", "XML is not supported: request application/fhir+json.")
    return FHIR_JSON  # e.g. text/html from a browser: answer JSON rather than fail


def check_body_type(request: Request, patch: bool = False) -> None:
    """415 for a body this interaction cannot read, with the type to use instead."""
    content_type = _media_type(request.headers.get("Content-Type", ""))
    _check_version(request.headers.get("Content-Type", ""), 415, "Content-Type")
    allowed = PATCH_TYPES | JSON_TYPES if patch else JSON_TYPES  # a FHIRPath Patch is a FHIR JSON Parameters
    if content_type in allowed:
        return
    if patch:
        if content_type == "application/merge-patch+json":
            raise FhirError.of(415, "not-supported", "JSON Merge Patch is not supported: send a JSON Patch (RFC 6902) "
                                                     "with Content-Type: application/json-patch+json.")
        raise FhirError.of(415, "not-supported", "PATCH needs Content-Type: application/json-patch+json.")
    if any(hint in content_type for hint in _XML_HINTS):
        raise FhirError.of(415, "not-supported", "FHIR XML is not supported; send JSON with Content-Type: "
                                                 "application/fhir+json.")
    shown = content_type or "none"
    raise FhirError.of(415, "not-supported", f"Content-Type {shown[:60]} is not supported; send "
                                             f"Content-Type: application/fhir+json.")


def wants_pretty(request: Request) -> bool:
    return request.args.get("_pretty", "").lower() == "true"
