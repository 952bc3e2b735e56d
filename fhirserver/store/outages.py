"""An unreachable or slow database surfaces as StoreUnavailable from every public method of a store part."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from pymongo.errors import ConnectionFailure, ExecutionTimeout

from .errors import StoreUnavailable

_OUTAGES = (ConnectionFailure, ExecutionTimeout)
C = TypeVar("C", bound=type)


def translating_outages(cls: C) -> C:
    """Wrap the public methods of a store part."""
    for name, method in list(vars(cls).items()):
        if name.startswith("_") or not callable(method):
            continue

        def wrapper(*args: Any, __method: Any = method, **kwargs: Any) -> Any:
            try:
                return __method(*args, **kwargs)
            except _OUTAGES as exc:
                raise StoreUnavailable(type(exc).__name__) from exc

        wrapper.__name__, wrapper.__doc__ = method.__name__, method.__doc__
        setattr(cls, name, wrapper)
    return cls


@contextmanager
def outages_translated() -> Iterator[None]:
    """The same inside a context manager of a store part (its body runs after the wrapped call returned)."""
    try:
        yield
    except _OUTAGES as exc:
        raise StoreUnavailable(type(exc).__name__) from exc
