"""Building response Bundles (history, searchset) from stored versions without re-encoding them.

Each stored version is exact JSON text; it is spliced into the Bundle as a raw fragment, which is
both faster and byte-faithful (decimals keep their digits).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import orjson

from ..store.records import StoredVersion
from ..store.timestamps import format_instant
from .errors import bad_request
from .versioning import etag


def raw_resource(version: StoredVersion) -> orjson.Fragment:
    assert version.text is not None
    return orjson.Fragment(version.text.encode("utf-8"))


def new_bundle(bundle_type: str, self_url: str) -> dict[str, Any]:
    return {"resourceType": "Bundle", "id": str(uuid.uuid4()),
            "meta": {"lastUpdated": format_instant(datetime.now(UTC))},
            "type": bundle_type, "link": [{"relation": "self", "url": self_url}]}


def page_url(base: str, path: str, params: list[tuple[str, str]]) -> str:
    return f"{base}/{path}" + (f"?{urlencode(params)}" if params else "")


def encode_cursor(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(token: str, shape: dict[str, Callable[[Any], bool]]) -> dict[str, Any]:
    """A paging token from one of our own `next`/`previous` links, each key checked by its predicate;
    anything else is a 400, never an operator."""
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict) or set(data) != set(shape) or not all(ok(data[k]) for k, ok in shape.items()):
        raise bad_request("_page is not a paging token issued by this server; follow the Bundle's 'next' link.",
                          "_page")
    return data


def version_entry(base: str, version: StoredVersion) -> dict[str, Any]:
    """A history entry: the version's resource (absent for a deletion), request and response."""
    url = f"{version.resource_type}/{version.id}"
    entry: dict[str, Any] = {"fullUrl": f"{base}/{url}"}
    if not version.deleted:
        entry["resource"] = raw_resource(version)
    method = "DELETE" if version.deleted else ("POST" if version.method == "POST" else "PUT")
    entry["request"] = {"method": method, "url": url if method != "POST" else version.resource_type}
    status = "204" if version.deleted else ("201" if version.vid == 1 else "200")
    entry["response"] = {"status": status, "etag": etag(version.vid), "lastModified": version.last_updated}
    return entry
