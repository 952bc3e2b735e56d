"""A development authorization server for SMART App Launch (FHIRSERVER_AUTH_DEV_LOGIN=on), so that the console and
the browser tests log in the way a SMART app does (authorization code + PKCE, EHR or standalone launch) without an
outside identity provider. It signs HS256 tokens with FHIRSERVER_AUTH_HS256_SECRET and asks nobody's password:
the person at the browser says who they are. Never for production; there, FHIRSERVER_AUTH_AUTHORIZATION_ENDPOINT
and _TOKEN_ENDPOINT name the real identity provider (README: security).

- GET /auth/dev/authorize: the login page (who: a hospital's doctor, an administrator, a patient).
- POST /auth/dev/authorize: issues a one-time code (two minutes) and redirects to the app's redirect_uri.
- POST /auth/dev/token: the code and its PKCE verifier for a token, with the launch context (patient, appContext).
Only redirect URIs on this server's /console/ are accepted: the console is the one client.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from html import escape
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, Response, redirect, request

from ..config import Settings
from ..fhir.interactions.context import FhirContext
from ..fhir.interactions.search import find
from ..fhir.json_format import loads
from ..security.tokens import issue_development_token
from .origin import root_url

CODES = "dev_login_codes"
TICKETS = "dev_login_tickets"
CODE_TTL_S = 120
TOKEN_TTL_S = 3600
# What each kind of user is granted (SMART v2 scopes): a hospital's doctor and its administrator act for their
# organization, the platform administrator for the platform (system scope), a patient for their own person.
ROLES = {
    "doctor": ("医生 Doctor", "user/*.cruds"),
    "admin": ("医院管理员 Hospital administrator", "user/*.rs"),
    "platform": ("平台管理员 Platform administrator", "system/*.cruds"),
    "patient": ("患者 Patient", "patient/*.rs patient/Consent.u"),
}
PAGE_CSP = "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"


def blueprint(ctx: FhirContext, settings: Settings) -> Blueprint:
    bp = Blueprint("dev_login", __name__)

    def fail(status: int, text: str) -> Response:
        return Response(_page("登录失败 Login refused", f"<p>{escape(text)}</p>"), status=status,
                        content_type="text/html; charset=utf-8", headers={"Content-Security-Policy": PAGE_CSP})

    def redirect_allowed(uri: str) -> bool:
        parts, here = urlsplit(uri), urlsplit(root_url())
        return (parts.scheme, parts.netloc) == (here.scheme, here.netloc) and parts.path.startswith("/console")

    @bp.get("/authorize")
    def authorize_page() -> Response:
        asked = {k: request.args.get(k, "") for k in ("response_type", "client_id", "redirect_uri", "scope", "state",
                                                       "code_challenge", "code_challenge_method", "launch", "aud")}
        if asked["response_type"] != "code" or not asked["state"]:
            return fail(400, "response_type=code and a state are required.")
        if not redirect_allowed(asked["redirect_uri"]):
            return fail(400, "redirect_uri must be this server's /console/ (the one client of the development login).")
        if asked["code_challenge_method"] != "S256" or len(asked["code_challenge"]) < 43:
            return fail(400, "PKCE is required: code_challenge with code_challenge_method=S256.")
        ticket = secrets.token_urlsafe(24)
        ctx.store.notes.save(TICKETS, {"_id": ticket, "asked": asked, "expires": time.time() + 600})
        organizations = sorted((loads(v.text or "{}") for v in find(ctx, "Organization", [], 200)),
                               key=lambda o: str(o.get("id")))
        options = "".join(f"<option value=\"Organization/{escape(str(o['id']))}\">{escape(o.get('name', o['id']))} "
                          f"({escape(str(o['id']))})</option>" for o in organizations)
        roles = "".join(f"<label><input type=\"radio\" name=\"role\" value=\"{k}\" id=\"role-{k}\""
                        f"{' checked' if k == 'doctor' else ''}> {escape(label)}</label>"
                        for k, (label, _) in ROLES.items())
        launch = _launch(asked["launch"])
        context = (f"<p>启动上下文 launch context: 患者 patient {escape(str(launch.get('patient', '')))}</p>"
                   if launch else "")
        form = (f"<form method=\"post\" action=\"/auth/dev/authorize\"><input type=\"hidden\" name=\"ticket\" "
                f"value=\"{ticket}\"><fieldset><legend>身份 Who are you</legend>{roles}</fieldset>"
                f"<label>机构 Organization <select name=\"organization\" id=\"organization\">{options}</select></label>"
                f"<label>医生 Practitioner (Practitioner/&lt;id&gt;) <input name=\"practitioner\" id=\"practitioner\">"
                f"</label><label>患者 Patient (Patient/&lt;id&gt;) <input name=\"patient\" id=\"patient\"></label>"
                f"{context}<button type=\"submit\" id=\"login\">登录 Log in</button></form>"
                "<p class=\"note\">开发用登录，不校验密码。Development login: no password is checked; never enable "
                "it in production (FHIRSERVER_AUTH_DEV_LOGIN).</p>")
        return Response(_page("互认平台开发登录 Development login", form), content_type="text/html; charset=utf-8",
                        headers={"Content-Security-Policy": PAGE_CSP})

    @bp.post("/authorize")
    def authorize() -> Response:
        ticket = ctx.store.notes.take(TICKETS, request.form.get("ticket", ""))
        if ticket is None or ticket["expires"] < time.time():
            return fail(400, "This login page has expired; start the login again from the app.")
        role = request.form.get("role", "")
        if role not in ROLES:
            return fail(400, "Choose who you are.")
        identity = {"role": role, "organization": request.form.get("organization") or None,
                    "practitioner": request.form.get("practitioner") or None,
                    "patient": request.form.get("patient") or None}
        if role == "patient" and not (identity["patient"] or "").startswith("Patient/"):
            return fail(400, "A patient logs in as Patient/<id>.")
        if role != "patient" and not (identity["organization"] or "").startswith("Organization/"):
            return fail(400, "Choose the organization you act for.")
        if identity["practitioner"] and not identity["practitioner"].startswith(("Practitioner/", "PractitionerRole/")):
            return fail(400, "A practitioner is Practitioner/<id> or PractitionerRole/<id>.")
        code = secrets.token_urlsafe(32)
        asked = ticket["asked"]
        ctx.store.notes.save(CODES, {"_id": code, "asked": asked, "identity": identity,
                                     "expires": time.time() + CODE_TTL_S})
        return redirect(f"{asked['redirect_uri']}?{urlencode({'code': code, 'state': asked['state']})}", code=302)

    @bp.post("/token")
    def token() -> Response:
        form = request.form
        if form.get("grant_type") != "authorization_code":
            return _oauth_error("unsupported_grant_type", "Only authorization_code is issued here.")
        note = ctx.store.notes.take(CODES, form.get("code", ""))
        if note is None or note["expires"] < time.time():
            return _oauth_error("invalid_grant", "The code is unknown, used or expired.")
        asked, identity = note["asked"], note["identity"]
        if form.get("redirect_uri") != asked["redirect_uri"]:
            return _oauth_error("invalid_grant", "redirect_uri differs from the authorization request's.")
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if not verifier or challenge != asked["code_challenge"]:
            return _oauth_error("invalid_grant", "The PKCE code_verifier does not match the code_challenge.")
        scope = ROLES[identity["role"]][1]
        access = issue_development_token(settings, f"dev-{identity['role']}-{secrets.token_hex(4)}", scope,
                                         identity["organization"], identity["practitioner"], identity["patient"],
                                         TOKEN_TTL_S)
        answer: dict[str, Any] = {"access_token": access, "token_type": "Bearer", "expires_in": TOKEN_TTL_S,
                                  "scope": scope, "role": identity["role"]}
        for name in ("organization", "practitioner"):
            if identity[name]:
                answer["fhirUser" if name == "practitioner" else name] = identity[name]
        launch = _launch(asked.get("launch", ""))
        patient = identity["patient"] or launch.get("patient")
        if patient:
            answer["patient"] = str(patient).removeprefix("Patient/")
        if launch.get("appContext"):
            answer["appContext"] = launch["appContext"]
        return Response(json.dumps(answer), content_type="application/json",
                        headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    return bp


def _launch(value: str) -> dict[str, Any]:
    """The EHR launch context this development server understands: base64url JSON {patient, appContext}."""
    if not value:
        return {}
    try:
        data = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
    except (ValueError, TypeError):
        return {}
    return data if isinstance(data, dict) else {}


def _oauth_error(code: str, text: str) -> Response:
    return Response(json.dumps({"error": code, "error_description": text}), status=400,
                    content_type="application/json", headers={"Cache-Control": "no-store"})


def _page(title: str, content: str) -> str:
    return (f"<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>{escape(title)}</title>"
            "<link rel=\"stylesheet\" href=\"/console/console.css\"></head>"
            f"<body class=\"login\"><main><h1>{escape(title)}</h1>{content}</main></body></html>")
