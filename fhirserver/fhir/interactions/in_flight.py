"""What the transaction being prepared will also write, for a write rule that must see its sibling entries.

A rule (a before_write hook) that asks "is there an order for this patient?" reads the store; inside a
transaction Bundle the order may arrive in the same Bundle, still unwritten. The transaction publishes its entries
here while it prepares them; `resources(type)` gives their resources of one type (references rewritten as they will
be stored), computed on first ask. Outside a transaction it is empty.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

Lookup = Callable[[str], list[dict[str, Any]]]

_current: ContextVar[Lookup | None] = ContextVar("fhirserver_in_flight", default=None)


def resources(resource_type: str) -> list[dict[str, Any]]:
    """The resources of this type that the transaction being prepared writes (PUT and POST entries)."""
    lookup = _current.get()
    return lookup(resource_type) if lookup is not None else []


@contextmanager
def transaction(lookup: Lookup) -> Iterator[None]:
    cache: dict[str, list[dict[str, Any]]] = {}

    def cached(resource_type: str) -> list[dict[str, Any]]:
        if resource_type not in cache:
            cache[resource_type] = lookup(resource_type)
        return cache[resource_type]

    token = _current.set(cached)
    try:
        yield
    finally:
        _current.reset(token)
