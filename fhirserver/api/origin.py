"""The root URL a request reached this server by, for the absolute URLs the server writes (Location, fullUrl,
BulkDataURI, links) when FHIRSERVER_BASE_URL is not set.

It is the Host header's, with one repair: some clients (dicomweb-client, seen here) send `Host: 127.0.0.1`
without the port they connected to. When the Host names no port but the server listens on a non-default one,
the listening port is added, so the URLs the client is given lead back here.
"""

from __future__ import annotations

from flask import request

from ..config import Settings


def root_url() -> str:
    root = request.host_url.rstrip("/")
    host = request.host or ""
    port = str(request.environ.get("SERVER_PORT") or "")
    default = "443" if request.scheme == "https" else "80"
    if ":" not in host.rsplit("]", 1)[-1] and port.isdigit() and port != default \
            and not request.headers.get("X-Forwarded-Host"):
        root = f"{request.scheme}://{host}:{port}"
    return root


def fhir_base(settings: Settings) -> str:
    """The FHIR base to write into answers: FHIRSERVER_BASE_URL, else the one this request came by."""
    return settings.base_url or root_url() + "/fhir"
