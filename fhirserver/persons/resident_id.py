"""The Chinese resident identity number (居民身份证号码, GB 11643-1999): 18 characters, the birth date in
positions 7-14, the sex in position 17 (odd: male), and an ISO 7064 MOD 11-2 check character last."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

SYSTEM = "urn:oid:2.16.156.10011.1.3"
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_SHAPE = re.compile(r"^\d{17}[\dX]$")


@dataclass(frozen=True)
class ResidentId:
    value: str
    birth_date: str  # YYYY-MM-DD
    gender: str      # FHIR administrative gender: male | female


def check_character(first17: str) -> str:
    return _CHECK[sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def parse(value: str) -> ResidentId | str:
    """The number's birth date and sex, or a sentence saying why it is not a valid number."""
    text = value.strip().upper()
    if not _SHAPE.match(text):
        return "a resident ID has 18 characters: 17 digits and a check digit or X"
    if check_character(text[:17]) != text[17]:
        return f"its check character should be {check_character(text[:17])} (ISO 7064 MOD 11-2), not {text[17]}"
    try:
        born = date(int(text[6:10]), int(text[10:12]), int(text[12:14]))
    except ValueError:
        return f"{text[6:14]} in it is not a birth date"
    return ResidentId(text, born.isoformat(), "male" if int(text[16]) % 2 else "female")
