"""Conditional create/update/delete: resolve criteria to matches while holding the criteria's lock.

http://hl7.org/fhir/R4/http.html#ccreate - holding a lock named by the normalised criteria for the
whole match-then-write step makes N identical conditional creates in parallel produce one resource.
Criteria are full search criteria (any parameter, modifier, chain), planned like a search.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import parse_qsl

from ...store.records import LockTimeout, StoredVersion
from ..errors import FhirError, bad_request
from ..search.query import criteria_key
from .context import FhirContext
from .search import restricted_filter


def criteria_pairs(resource_type: str, raw: str, source: str) -> list[tuple[str, str]]:
    """Criteria as sent in If-None-Exist ("identifier=x", or "Observation?identifier=x")."""
    text = raw.strip()
    if text.startswith(f"{resource_type}?"):
        text = text[len(resource_type) + 1:]
    elif "?" in text:
        raise bad_request(f"{source} criteria must be for {resource_type}: '{raw[:80]}'.", source)
    pairs = parse_qsl(text.lstrip("?"), keep_blank_values=True)
    if not pairs:
        raise bad_request(f"{source} needs search criteria such as identifier=system|value.", source)
    return pairs


@contextmanager
def matching(ctx: FhirContext, resource_type: str, pairs: list[tuple[str, str]]) -> Iterator[list[StoredVersion]]:
    """Yield up to two current matches, with writes on the same criteria excluded meanwhile."""
    query = ctx.parser.parse(resource_type, pairs, criteria_only=True)
    if not query.criteria:
        raise bad_request("Conditional criteria must contain at least one search parameter.")
    try:
        with ctx.store.locks.exclusive("conditional:" + criteria_key(resource_type, pairs)):
            # Inside the lock: building the filter may read the store (chains, _has), and what
            # it reads must include every write that finished before the lock was granted.
            # Only what the caller may see: a conditional write never reveals, or touches, a hidden resource.
            query_filter = restricted_filter(ctx, resource_type, query.criteria)
            yield ctx.store.search.find_current(resource_type, query_filter, limit=2)
    except LockTimeout:
        raise FhirError.of(503, "transient", "Another conditional write with the same criteria is still "
                                             "running; retry shortly.") from None


def too_many(resource_type: str) -> FhirError:
    return FhirError.of(412, "multiple-matches", f"The criteria match more than one {resource_type}; make them "
                                                 f"selective enough to match one resource.")
