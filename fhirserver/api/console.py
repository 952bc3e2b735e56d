"""The web console (/console): static files only (fhirserver/console/), a SMART on FHIR app that reads and writes
through the public FHIR, CDS Hooks and DICOMweb APIs like any other client, with the token it obtained (never in a
URL, never in a cookie: so no CSRF). Its pages allow scripts, styles and images from this server only."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Flask, Response, abort, redirect, send_from_directory

FILES = Path(__file__).resolve().parents[1] / "console"
SERVED = {"console.css", "app.js", "api.js", "smart.js", "doctor.js", "viewer.js", "admin.js", "patient.js",
          "charts.js"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")


def install_home(app: Flask) -> None:
    """GET / opens the console: the one page a person reaches with only the server's address."""
    app.add_url_rule("/", "home", lambda: redirect("/console/", code=302), methods=["GET"])


def blueprint() -> Blueprint:
    bp = Blueprint("console", __name__)

    def send(name: str) -> Response:
        response = send_from_directory(FILES, name, max_age=0)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["Cache-Control"] = "no-cache"  # revalidate (ETag): a new release shows at once
        return response

    @bp.get("")
    @bp.get("/")
    @bp.get("/launch")
    def page() -> Response:
        """The one page; /launch is where an EHR (or a CDS card's smart link) launches it with iss and launch."""
        return send("index.html")

    @bp.get("/<name>")
    def asset(name: str) -> Response:
        if name not in SERVED:
            abort(404)
        return send(name)

    return bp
