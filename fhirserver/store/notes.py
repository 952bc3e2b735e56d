"""Small bookkeeping documents of the server's own (e.g. the CDS cards it issued), by `_id`."""

from __future__ import annotations

from typing import Any

from pymongo.database import Database

from .outages import translating_outages


@translating_outages
class Notes:
    def __init__(self, db: Database, max_time_ms: int = 10_000) -> None:
        self._db = db
        self._max_time_ms = max_time_ms

    def save(self, collection: str, note: dict[str, Any]) -> None:
        self._db[collection].replace_one({"_id": note["_id"]}, note, upsert=True)

    def load(self, collection: str, note_id: str) -> dict[str, Any] | None:
        return self._db[collection].find_one({"_id": note_id}, max_time_ms=self._max_time_ms)

    def take(self, collection: str, note_id: str) -> dict[str, Any] | None:
        """Read and remove in one step: a note that may be used once (an authorization code)."""
        return self._db[collection].find_one_and_delete({"_id": note_id}, maxTimeMS=self._max_time_ms)
