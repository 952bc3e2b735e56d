"""Instants as stored: FHIR text in the resource, integer epoch milliseconds in query fields.

Query fields are never ISO-8601 strings: the embedded engine compares such strings as dates at
whole-second precision (three versions in one second all "equal" each other), which silently broke
`_since` and history paging. Integers compare exactly on every engine.
"""

from __future__ import annotations

from datetime import UTC, datetime

_FORMAT = "%Y-%m-%dT%H:%M:%S.%f"


def format_instant(moment: datetime) -> str:
    """UTC, millisecond precision, fixed width: '2026-11-23T09:00:00.123Z'."""
    return moment.astimezone(UTC).strftime(_FORMAT)[:-3] + "Z"


def parse_instant(text: str) -> datetime:
    return datetime.strptime(text, _FORMAT + "Z").replace(tzinfo=UTC)


def instant_to_ms(text: str) -> int:
    return int(parse_instant(text).timestamp() * 1000 + 0.5)


def ms_to_instant(ms: int) -> str:
    return format_instant(datetime.fromtimestamp(ms / 1000, UTC))
