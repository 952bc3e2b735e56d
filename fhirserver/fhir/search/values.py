"""Search value semantics, as pure functions: FHIR dates as ranges, prefixes, implicit precision of
numbers, string normalisation. http://hl7.org/fhir/R4/search.html#prefix

Dates and instants become half-open ranges [lo, hi) of epoch milliseconds: "2024-03" is the whole of
March. Values without a time zone are read in the server's zone (FHIRSERVER_TIMEZONE, default +08:00,
China Standard Time), for stored resources and for search values alike.
"""

from __future__ import annotations

import calendar
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation

PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
# Open ends of Periods: far outside any clinical date, and exact in a float.
MIN_MS = -(2**53) + 1
MAX_MS = 2**53 - 1

_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2})(?::(\d{2})(?::(\d{2})(\.\d+)?)?)?"
                   r"(Z|[+-]\d{2}:\d{2})?)?)?)?$")


class ValueFormatError(ValueError):
    """A search or resource value that does not have the form its type requires."""


@dataclass(frozen=True)
class Range:
    lo: float
    hi: float  # exclusive


def parse_zone(text: str) -> timezone:
    match = re.fullmatch(r"([+-])(\d{2}):(\d{2})", text)
    if not match:
        raise ValueFormatError(f"time zone must look like +08:00, got {text!r}")
    sign = 1 if match.group(1) == "+" else -1
    return timezone(sign * timedelta(hours=int(match.group(2)), minutes=int(match.group(3))))


def date_range(text: str, default_zone: timezone) -> Range:
    """A FHIR date, dateTime or instant as the range of instants it denotes."""
    match = _DATE.match(text.strip())
    if not match:
        raise ValueFormatError(f"{text[:40]!r} is not a FHIR date or dateTime")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    tz = UTC if zone == "Z" else (parse_zone(zone) if zone else default_zone)
    try:
        y = int(year)
        if month is None:
            start, end = datetime(y, 1, 1, tzinfo=tz), datetime(y + 1, 1, 1, tzinfo=tz)
        elif day is None:
            m = int(month)
            start = datetime(y, m, 1, tzinfo=tz)
            end = start + timedelta(days=calendar.monthrange(y, m)[1])
        elif hour is None:
            start = datetime(y, int(month), int(day), tzinfo=tz)
            end = start + timedelta(days=1)
        else:
            start = datetime(y, int(month), int(day), int(hour), int(minute or 0), int(second or 0), tzinfo=tz)
            if second is None:
                end = start + timedelta(minutes=1)
            elif fraction:
                digits = fraction[1:]
                start += timedelta(microseconds=int((digits + "000000")[:6]))
                end = start + timedelta(milliseconds=1)
            else:
                end = start + timedelta(seconds=1)
    except ValueError:
        raise ValueFormatError(f"{text[:40]!r} is not a real date") from None
    return Range(_ms(start), _ms(end))


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def split_prefix(value: str, allowed: bool = True) -> tuple[str, str]:
    """'ge2024-01-01' -> ('ge', '2024-01-01'); no prefix means eq."""
    if allowed and len(value) > 2 and value[:2] in PREFIXES and (value[2].isdigit() or value[2] in "-+."):
        return value[:2], value[2:]
    return "eq", value


def number_range(text: str) -> tuple[float, Range]:
    """A decimal and the range its written precision implies: 100 -> [99.5, 100.5), 1.50 -> [1.495, 1.505)."""
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise ValueFormatError(f"{text[:40]!r} is not a number") from None
    if not number.is_finite():
        raise ValueFormatError(f"{text[:40]!r} is not a finite number")
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)
    half = Decimal(5).scaleb(exponent - 1)
    return float(number), Range(float(number - half), float(number + half))


def normalize_text(text: str) -> str:
    """For string search: NFKC (full-width ＡＢＣ１ -> ABC1), case-folded, accents removed, spaces collapsed.
    Chinese characters are kept as they are, so 张三 finds 张三."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    stripped = "".join(ch for ch in unicodedata.normalize("NFD", folded) if not unicodedata.combining(ch))
    return " ".join(unicodedata.normalize("NFC", stripped).split())


# -- 30-day buckets: what lets an ordinary multikey index narrow a date range --------------------------------
BUCKET_MS = 30 * 24 * 3600 * 1000
MAX_SPAN_BUCKETS = 24  # a longer span (an open period) gets LONG_BUCKET: a candidate for every window
LONG_BUCKET = "long"


def date_buckets(lo: float, hi: float) -> list[str]:
    """The 30-day buckets [lo, hi) touches; [] when it spans more than MAX_SPAN_BUCKETS (or is empty)."""
    if not hi > lo:
        return []
    first, last = int(lo // BUCKET_MS), int((hi - 1) // BUCKET_MS)
    if last - first + 1 > MAX_SPAN_BUCKETS:
        return []
    return [f"b{n}" for n in range(first, last + 1)]


def hull_buckets(ranges: list[dict[str, float]]) -> list[str]:
    """The bucket keys of a resource's date values: the buckets of their hull, or [LONG_BUCKET] when wide."""
    if not ranges:
        return []
    lo, hi = min(r["lo"] for r in ranges), max(r["hi"] for r in ranges)
    return date_buckets(lo, hi) or [LONG_BUCKET]
