"""Version identity on the wire: meta.versionId, meta.lastUpdated, ETag and Last-Modified.

Stored timestamps are UTC instants with millisecond precision in one fixed format, so they sort
as strings ("2026-11-23T09:00:00.123Z"). See http://hl7.org/fhir/R4/http.html#versioning.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime

from ..store.timestamps import format_instant
from ..store.timestamps import parse_instant as parse_stored_instant
from .errors import bad_request

_ETAG = re.compile(r'^\s*(?:W/)?"?([0-9]{1,12})"?\s*$')
_INSTANT = re.compile(
    r"^(\d{4})(-(\d{2})(-(\d{2})(T(\d{2}):(\d{2})(:(\d{2})(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$")


def next_timestamp(previous: str | None) -> str:
    """Now, but never earlier than (or equal to) the previous version's time: versions stay ordered."""
    now = datetime.now(UTC)
    if previous is not None:
        floor = parse_stored_instant(previous) + timedelta(milliseconds=1)
        now = max(now, floor)
    return format_instant(now)


def etag(vid: int) -> str:
    return f'W/"{vid}"'


def parse_etag(header: str, name: str = "If-Match") -> int:
    """Accept W/"3", "3" (and bare 3, which some clients send)."""
    match = _ETAG.match(header)
    if not match:
        raise bad_request(f'{name} must be a version ETag such as W/"3", got {header[:40]!r}.', name)
    return int(match.group(1))


def http_date(stored: str) -> str:
    return format_datetime(parse_stored_instant(stored), usegmt=True)


def parse_http_date(header: str) -> datetime | None:
    try:
        moment = parsedate_to_datetime(header)
    except (TypeError, ValueError, IndexError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_search_instant(value: str, name: str) -> str:
    """A FHIR dateTime/instant from a query (e.g. _since) as a stored-format lower bound in UTC."""
    match = _INSTANT.match(value.strip().replace(" ", "+"))
    if not match:
        raise bad_request(f"{name} must be a FHIR instant such as 2026-01-31T08:00:00Z, got {value[:40]!r}.",
                          name)
    year, month, day = int(match.group(1)), int(match.group(3) or 1), int(match.group(5) or 1)
    hour, minute, second = int(match.group(7) or 0), int(match.group(8) or 0), int(match.group(10) or 0)
    fraction = match.group(11) or ""
    zone = match.group(12)
    if match.group(7) is not None and zone is None:
        raise bad_request(f"{name} with a time must give a time zone (Z or +08:00).", name)
    try:
        micro = int((fraction[1:] + "000000")[:6]) if fraction else 0
        moment = datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)
        if zone and zone != "Z":
            sign = 1 if zone[0] == "+" else -1
            moment -= sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    except ValueError:
        raise bad_request(f"{name} is not a real date or time: {value[:40]!r}.", name) from None
    return format_instant(moment)
