"""Token modifiers answered by the terminology service: `:in` and `:not-in` a ValueSet, `:below` and `:above` a
code of a hierarchical CodeSystem (R4 search.html#token). Each becomes the list of `system|code` tokens it stands
for before the search runs, so the planner matches them like any token list (and `:not-in` like `:not`).

Only what this server holds is expanded (terminology/: the recognized-item lists, hr-item and the maps); an unknown
ValueSet or CodeSystem is a 400 that says so, never an empty answer.
"""

from __future__ import annotations

from ..errors import FhirError
from ..search.query import Criterion
from .context import FhirContext

TERMINOLOGY_MODIFIERS = frozenset({"in", "not-in", "below", "above"})
MAX_CODES = 2000  # tokens one modifier may stand for; a larger set is asked for with a narrower one


def expanded(ctx: FhirContext, c: Criterion) -> Criterion:
    """The criterion with the modifier replaced by the tokens it names (OR-ed), `:not-in` as `:not`."""
    tokens: list[str] = []
    for value in c.values:
        tokens += _members(ctx, c, value) if c.modifier in ("in", "not-in") else _hierarchy(ctx, c, value)
    tokens = list(dict.fromkeys(tokens))
    if len(tokens) > MAX_CODES:
        raise FhirError.of(400, "too-costly", f"'{c.name}' stands for {len(tokens)} codes; at most {MAX_CODES} are "
                                              f"searched at once: name a smaller set.", c.name)
    return Criterion(c.code, "token", "not" if c.modifier == "not-in" else None, tuple(tokens), c.name)


def _members(ctx: FhirContext, c: Criterion, url: str) -> list[str]:
    if url not in ctx.terminology.value_sets and url.split("|", 1)[0] not in ctx.terminology.value_sets:
        raise FhirError.of(400, "not-found", f"'{c.name}' names the ValueSet {url[:120]}, which this server does not "
                                             f"hold (GET /fhir/ValueSet lists those it does).", c.name)
    return [f"{m.system}|{m.code}" for m in ctx.terminology.members(url)]


def _hierarchy(ctx: FhirContext, c: Criterion, value: str) -> list[str]:
    system, bar, code = value.partition("|")
    if not bar or not system or not code:
        raise FhirError.of(400, "value", f"'{c.name}' takes system|code (e.g. "
                                         f"http://hr.example.org/fhir/CodeSystem/hr-item|IMG).", c.name)
    index = ctx.terminology.code_systems.get(system)
    if index is None:
        raise FhirError.of(400, "not-found", f"'{c.name}' names the CodeSystem {system[:120]}, whose hierarchy this "
                                             f"server does not hold.", c.name)
    if code not in index.concepts:
        raise FhirError.of(400, "not-found", f"Code '{code[:64]}' is not in the CodeSystem {system}.", c.name)
    if c.modifier == "above":
        return [f"{system}|{code}", *(f"{system}|{a}" for a in index.ancestors(code))]
    below, frontier = [code], [code]
    while frontier:  # the code and all its descendants, breadth first
        frontier = [child for parent in frontier for child in index.concepts[parent].children]
        below += frontier
    return [f"{system}|{b}" for b in below]
