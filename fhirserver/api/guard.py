"""Around every request: who is calling (bearer JWT), rate limit, correlation id, security headers, CORS,
and the audit record of every request that touches stored data, whatever its outcome.

The policy itself (scopes, ownership, consent) is security/access.py; this module only establishes the
principal for it and writes down what happened.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from flask import Flask, Response, g, request

from ..config import Settings
from ..fhir.errors import FhirError
from ..fhir.resource_types import SUPPORTED_TYPES
from ..security.principal import CUSTODIAN, Principal, reset, set_current
from ..security.scopes import parse_scopes
from ..security.tokens import InvalidToken, TokenVerifier
from .origin import root_url
from .responses import render_error

log = logging.getLogger(__name__)

PUBLIC = ("/", "/fhir/metadata", "/.well-known/smart-configuration", "/fhir/.well-known/smart-configuration",
          "/healthz", "/readyz", "/metrics")
# the published recognized-item lists (api/lists.py), the console's files (its data comes through the API, with a
# token), and the development login (api/dev_login.py)
PUBLIC_PREFIXES = ("/lists", "/console", "/auth/dev/")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_REF = {"organization": re.compile(r"Organization/[A-Za-z0-9.-]{1,64}"),
        "fhirUser": re.compile(r"(?:Practitioner|PractitionerRole)/[A-Za-z0-9.-]{1,64}"),
        "patient": re.compile(r"(?:Patient/)?[A-Za-z0-9.-]{1,64}")}
_CLAIM_FORMS = {"organization": "reference Organization/<id>",
                "fhirUser": "reference Practitioner/<id> or PractitionerRole/<id>", "patient": "patient id"}
MAX_ENTITIES = 500
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
                    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
                    "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
AUDIT_TYPE = {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest",
              "display": "RESTful Operation"}
INTERACTION = "http://hl7.org/fhir/restful-interaction"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
SECURITY_RESOURCE = {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "13",
                     "display": "Security Resource"}  # the Consent a disclosure was made under


class RateLimiter:
    """Fixed one-minute windows per client, per worker process (N workers allow N x the limit)."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._windows: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> int:
        """0 when the request may go ahead, else seconds until the client's window resets."""
        if self.per_minute <= 0:
            return 0
        now = time.time()
        window = int(now // 60)
        with self._lock:
            if len(self._windows) > 100_000:
                self._windows.clear()
            start, count = self._windows.get(client, (window, 0))
            if start != window:
                start, count = window, 0
            if count >= self.per_minute:
                return max(1, int((window + 1) * 60 - now))
            self._windows[client] = (start, count + 1)
        return 0


def classify(method: str, path: str) -> tuple[str, str] | None:
    """(restful-interaction code, action) of an audited request; None for requests that touch no stored data
    (metadata, terminology and conformance resources, health checks)."""
    if path.startswith("/dicomweb/"):
        return ("operation" if method == "POST" else "read"), ("C" if method == "POST" else "R")
    if path.startswith("/cds-services/") and method == "POST":
        return "operation", "E"
    if not (path == "/fhir" or path.startswith("/fhir/")):
        return None
    parts = [p for p in path[len("/fhir"):].split("/") if p]
    if not parts:
        return ("transaction", "E") if method == "POST" else None
    if parts[0].startswith("$"):
        return "operation", "E"
    if parts[0] not in SUPPORTED_TYPES:
        return None
    if parts[-1].startswith("$"):
        return "operation", "E"
    if len(parts) == 1 or parts[1] == "_search":
        return {"POST": ("create", "C") if len(parts) == 1 else ("search-type", "E"), "PUT": ("update", "U"),
                "DELETE": ("delete", "D")}.get(method, ("search-type", "E"))
    if parts[1] == "_history":
        return "history-type", "R"
    if len(parts) == 2:
        return {"PUT": ("update", "U"), "PATCH": ("patch", "U"), "DELETE": ("delete", "D")}.get(method, ("read", "R"))
    if parts[2] == "_history":
        return ("vread", "R") if len(parts) == 4 else ("history-instance", "R")
    return "search-type", "E"


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    """The caller a verified token names. Fails closed (InvalidToken, 401): a claim that is present but malformed
    is refused rather than dropped (a dropped `patient` claim would widen a patient token to its organization),
    and a `patient/` scope needs a valid `patient` claim."""
    def ref(name: str) -> str | None:
        value = claims.get(name)
        if value is None:
            return None
        if not isinstance(value, str) or not _REF[name].fullmatch(value):
            raise InvalidToken(f"The bearer token's '{name}' claim is not a {_CLAIM_FORMS[name]}.")
        return value

    patient = ref("patient")
    scopes = parse_scopes(claims.get("scope"))
    if patient is None and any(s.context == "patient" for s in scopes):
        raise InvalidToken("The bearer token has patient/ scopes but no 'patient' claim naming the patient.")
    return Principal(subject=str(claims.get("sub"))[:128], client_id=str(claims.get("client_id") or claims.get("azp")
                                                                          or claims.get("sub"))[:128],
                     organization=ref("organization"), practitioner=ref("fhirUser"),
                     patient=(patient if patient is None or patient.startswith("Patient/") else f"Patient/{patient}"),
                     scopes=scopes)


def install(app: Flask, settings: Settings, record: Callable[[dict[str, Any]], Any]) -> None:
    verifier = TokenVerifier(settings) if settings.auth == "on" else None
    limiter = RateLimiter(settings.rate_limit)
    realm = settings.base_url or "fhirserver"

    @app.before_request
    def authenticate() -> Response | None:
        incoming = request.headers.get("X-Request-Id", "")
        g.correlation_id = incoming if _REQUEST_ID.fullmatch(incoming) else str(uuid.uuid4())
        g.started = time.perf_counter()
        if verifier is None:
            principal = Principal(subject="anonymous", unrestricted=True)
        else:
            principal = Principal(subject="anonymous")
        principal.correlation_id = g.correlation_id
        g.principal_token = set_current(principal)
        g.principal = principal
        if request.method == "OPTIONS" or request.path in PUBLIC or request.path.startswith(PUBLIC_PREFIXES):
            return None
        if verifier is not None:
            header = request.headers.get("Authorization", "")
            if not header.startswith("Bearer ") or not header[7:].strip():
                return _unauthorized(realm, "This server needs a bearer token (Authorization: Bearer <JWT>).", None)
            try:
                verified = principal_from_claims(verifier.verify(header[7:].strip()).claims)
            except InvalidToken as exc:
                return _unauthorized(realm, str(exc), "invalid_token")
            verified.correlation_id = g.correlation_id
            reason = unquote(request.headers.get("X-Break-Glass", "")).strip()  # percent-encoded UTF-8
            if reason:
                if not verified.practitioner or verified.patient or len(reason) > 500:
                    return render_error(FhirError.of(403, "forbidden", "Break-the-glass needs a practitioner's "
                                                                       "token (fhirUser, no patient context) and a "
                                                                       "reason of at most 500 characters in "
                                                                       "X-Break-Glass."), request)
                verified.break_glass = reason
            reset(g.principal_token)
            g.principal_token = set_current(verified)
            g.principal = verified
        client = g.principal.client_id or request.remote_addr or "unknown"
        wait = limiter.retry_after(client)
        if wait:
            return render_error(FhirError.of(429, "throttled", f"Too many requests from this client; retry in "
                                                               f"{wait} s.", headers={"Retry-After": str(wait)}),
                                request)
        return None

    @app.after_request
    def finish(response: Response) -> Response:
        response.headers["X-Request-Id"] = getattr(g, "correlation_id", "")
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if settings.base_url and settings.base_url.startswith("https://"):
            response.headers["Strict-Transport-Security"] = "max-age=31536000"
        origin = request.headers.get("Origin", "").rstrip("/")
        if origin and ("*" in settings.cors_origins or origin in settings.cors_origins):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
            response.headers["Access-Control-Expose-Headers"] = "Location, ETag, Last-Modified, X-Request-Id"
            if request.method == "OPTIONS":
                response.headers["Access-Control-Allow-Methods"] = "GET, POST, PUT, PATCH, DELETE"
                response.headers["Access-Control-Allow-Headers"] = ("Authorization, Content-Type, Accept, If-Match, "
                                                                    "If-None-Exist, If-None-Match, Prefer, "
                                                                    "X-Request-Id, X-Break-Glass")
                response.headers["Access-Control-Max-Age"] = "600"
        kind = classify(request.method, request.path)
        principal = getattr(g, "principal", None)
        if kind is not None and principal is not None and request.method != "OPTIONS":
            try:
                record(audit_event(settings, principal, kind, response.status_code))
            except Exception:
                log.exception("could not write the audit event of request %s", principal.correlation_id)
        return response

    @app.teardown_request
    def forget(_error: BaseException | None) -> None:
        token = g.pop("principal_token", None)
        if token is not None:
            reset(token)

    @app.get("/.well-known/smart-configuration")
    @app.get("/fhir/.well-known/smart-configuration")
    def smart_configuration() -> Response:
        if settings.auth != "on":  # the standard signal for "no SMART here": clients then call without a token
            off = ("Authentication is off on this server (FHIRSERVER_AUTH=off): there is no SMART authorization; "
                   "call the API without a token.")
            return render_error(FhirError.of(404, "not-found", off), request)
        return app.response_class(response=_smart(settings, root_url()), content_type="application/json")


def _smart(settings: Settings, root: str) -> bytes:
    """SMART App Launch 2.0 discovery: only what is true of this deployment. The token and authorization
    endpoints are the identity provider's (FHIRSERVER_AUTH_TOKEN_ENDPOINT, ..._AUTHORIZATION_ENDPOINT); one not
    configured is not advertised, nor the grants and capabilities that need it."""
    import json

    body: dict[str, Any] = {
        "issuer": settings.auth_issuer,
        "scopes_supported": ["system/*.rs", "system/*.cruds", "user/*.rs", "user/*.cruds", "patient/*.rs"],
        "capabilities": ["permission-v2", "permission-v1", "permission-patient", "permission-user"]}
    grants = []
    if settings.auth_dev_login:  # this server's own development authorization server (api/dev_login.py)
        body.update({"authorization_endpoint": f"{root}/auth/dev/authorize", "token_endpoint": f"{root}/auth/dev/token",
                     "token_endpoint_auth_methods_supported": ["none"], "response_types_supported": ["code"],
                     "code_challenge_methods_supported": ["S256"]})
        body["capabilities"] += ["launch-ehr", "launch-standalone", "client-public", "context-ehr-patient",
                                 "context-standalone-patient"]
        grants.append("authorization_code")
    if settings.auth_token_endpoint:
        body["token_endpoint"] = settings.auth_token_endpoint
        body["token_endpoint_auth_methods_supported"] = ["private_key_jwt"]
        body["capabilities"].append("client-confidential-asymmetric")
        grants.append("client_credentials")
    if settings.auth_authorization_endpoint and settings.auth_token_endpoint:
        body["authorization_endpoint"] = settings.auth_authorization_endpoint
        body["response_types_supported"] = ["code"]
        body["code_challenge_methods_supported"] = ["S256"]
        body["capabilities"] += ["launch-standalone", "context-standalone-patient"]
        grants.append("authorization_code")
    if grants:
        body["grant_types_supported"] = grants
    if settings.auth_jwks and settings.auth_jwks.startswith("https://"):
        body["jwks_uri"] = settings.auth_jwks
    return json.dumps(body).encode()


def _unauthorized(realm: str, text: str, error: str | None) -> Response:
    challenge = f'Bearer realm="{realm}"' + (f', error="{error}"' if error else "")
    return render_error(FhirError.of(401, "login", text, headers={"WWW-Authenticate": challenge}), request)


def audit_event(settings: Settings, p: Principal, kind: tuple[str, str], status: int) -> dict[str, Any]:
    interaction, action = kind
    canonical = settings.canonical_base
    agent: dict[str, Any] = {"type": {"coding": [{"system": "http://dicom.nema.org/resources/ontology/DCM",
                                                  "code": "110153", "display": "Source Role ID"}]},
                             "requestor": True, "altId": p.subject,
                             "network": {"address": (request.remote_addr or "unknown")[:64], "type": "2"}}
    agent["who"] = {"reference": p.practitioner} if p.practitioner else {"display": p.client_id or p.subject}
    if p.break_glass:
        agent["purposeOfUse"] = [{"coding": [{"system": ACT_REASON, "code": "BTG", "display": "break the glass"}],
                                  "text": p.break_glass}]
    if p.grounds or p.orders:  # the consents, and the caller's orders, the disclosures were made under
        agent["policy"] = [f"{settings.base_url or ''}/{ground}".lstrip("/") for ground in
                           [*(f"Consent/{cid}" for cid in sorted(p.grounds)), *sorted(p.orders)]]
    agents = [agent]
    if p.organization:
        agents.append({"who": {"reference": p.organization}, "requestor": False})
    for custodian in sorted(p.custodians - {p.organization})[:MAX_ENTITIES]:
        agents.append({"type": CUSTODIAN, "who": {"reference": custodian}, "requestor": False})
    entities: list[dict[str, Any]] = []
    if request.query_string and interaction in ("search-type", "operation", "history-type"):
        entities.append({"type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2"},
                         "query": base64.b64encode(request.query_string[:4096]).decode("ascii")})
    for patient in sorted(p.patients)[:MAX_ENTITIES]:
        entities.append({"what": {"reference": patient},
                         "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1"},
                         "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1"}})
    for reference in list(dict.fromkeys(p.touched))[:MAX_ENTITIES]:
        if reference not in p.patients:
            entities.append({"what": {"reference": reference}})
    for cid in sorted(p.grounds)[:MAX_ENTITIES]:
        entities.append({"what": {"reference": f"Consent/{cid}"}, "role": SECURITY_RESOURCE})
    for order in sorted(p.orders)[:MAX_ENTITIES]:
        entities.append({"what": {"reference": order}, "role": SECURITY_RESOURCE})
    event: dict[str, Any] = {
        "resourceType": "AuditEvent", "id": str(uuid.uuid4()),
        "extension": [{"url": f"{canonical}/StructureDefinition/hr-correlation-id", "valueString": p.correlation_id}],
        "type": AUDIT_TYPE, "subtype": [{"system": INTERACTION, "code": interaction}], "action": action,
        "recorded": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "outcome": "0" if status < 400 else ("4" if status < 500 else "8"),
        "outcomeDesc": f"HTTP {status} {request.method} {request.path[:200]}",
        "agent": agents,
        "source": {"site": f"{settings.node_id}" + (f" ({settings.region})" if settings.region else ""),
                   "observer": {"display": f"fhirserver {settings.node_id}"},
                   "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4"}]}}
    if p.break_glass:
        event["purposeOfEvent"] = agent["purposeOfUse"]
    if entities:
        event["entity"] = entities
    return event
