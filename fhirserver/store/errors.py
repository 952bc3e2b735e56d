"""Storage failures as our own exception, so layers above never import pymongo."""

from pymongo.errors import DuplicateKeyError, PyMongoError


class StoreUnavailable(Exception):
    """The database did not answer in time or refused the connection."""


def only_duplicate_keys(exc: PyMongoError) -> bool:
    """A (bulk) write that failed on duplicate keys alone: what idempotent inserts and lock attempts expect."""
    if isinstance(exc, DuplicateKeyError):
        return True
    return all(e.get("code") == 11000 for e in (getattr(exc, "details", None) or {}).get("writeErrors", []))
