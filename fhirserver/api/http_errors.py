"""Errors gunicorn answers itself, before Flask sees the request (malformed request line, raw UTF-8 in the
URL, oversized headers), as FHIR OperationOutcomes instead of gunicorn's HTML page.

gunicorn keeps its status mapping in Worker.handle_error and writes the body with gunicorn.util.write_error;
replacing that one function keeps gunicorn's statuses and changes only the body. The client's text is
not echoed back.
"""

from __future__ import annotations

import json
from typing import Any

from gunicorn import util

HINTS = {
    400: "The HTTP request could not be parsed. Non-ASCII characters in a URL (for example Chinese search "
         "values) must be percent-encoded as UTF-8, e.g. filter=%E5%A4%B4%E9%A2%85CT.",
    414: "The URL is too long; send the search as POST [type]/_search with a form body.",
    431: "The request headers are too large.",
    501: "The transfer coding is not supported.",
}


def write_operation_outcome(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    diagnostics = HINTS.get(status_int, f"The request could not be processed (HTTP {status_int} {reason}).")
    body = json.dumps({"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "invalid" if status_int < 500 else "exception",
         "diagnostics": diagnostics}]}).encode("utf-8")
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/fhir+json; charset=utf-8\r\nContent-Length: {len(body)}\r\n\r\n")
    util.write_nonblock(sock, head.encode("latin1") + body)


def install() -> None:
    util.write_error = write_operation_outcome
