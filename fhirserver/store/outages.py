"""An unreachable or slow database surfaces as StoreUnavailable from every public method of a store part."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from pymongo.errors import ConnectionFailure, ExecutionTimeout, OperationFailure, WriteConcernError

from .errors import StoreUnavailable

_OUTAGES = (ConnectionFailure, ExecutionTimeout, WriteConcernError)
# Server answers that mean "not now" (shutting down, stepping down, no primary, over its time limit), not a bug
_TRANSIENT_CODES = frozenset({50, 91, 189, 262, 10107, 11600, 11602, 13435, 13436})


def is_outage(error: BaseException) -> bool:
    """Whether a store error means the store is unreachable or unable right now (answered 503, retry)."""
    if isinstance(error, _OUTAGES):
        return True
    return isinstance(error, OperationFailure) and (error.code in _TRANSIENT_CODES
                                                    or error.has_error_label("TransientTransactionError"))
C = TypeVar("C", bound=type)


def translating_outages(cls: C) -> C:
    """Wrap the public methods of a store part."""
    for name, method in list(vars(cls).items()):
        if name.startswith("_") or not callable(method):
            continue

        def wrapper(*args: Any, __method: Any = method, **kwargs: Any) -> Any:
            try:
                return __method(*args, **kwargs)
            except Exception as exc:
                if is_outage(exc):
                    raise StoreUnavailable(type(exc).__name__) from exc
                raise

        wrapper.__name__, wrapper.__doc__ = method.__name__, method.__doc__
        setattr(cls, name, wrapper)
    return cls


@contextmanager
def outages_translated() -> Iterator[None]:
    """The same inside a context manager of a store part (its body runs after the wrapped call returned)."""
    try:
        yield
    except Exception as exc:
        if is_outage(exc):
            raise StoreUnavailable(type(exc).__name__) from exc
        raise
