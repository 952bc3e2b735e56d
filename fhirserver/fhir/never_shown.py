"""What is stored but never shown to anyone, in any response (reads, searches, history, write answers, Bundle
entries): `Endpoint.header`, the credentials this node sends to a peer (e.g. its bearer token)."""

from __future__ import annotations

from dataclasses import replace

from ..store.records import StoredVersion
from .json_format import dumps, loads


def shown(version: StoredVersion) -> StoredVersion:
    """The version as it may be shown: the same, or its text without the never-shown elements."""
    if version.resource_type != "Endpoint" or not version.text or '"header"' not in version.text:
        return version
    resource = loads(version.text)
    resource.pop("header", None)
    return replace(version, text=dumps(resource).decode("utf-8"))
