"""The audit spool and the head of the hash chain (the chaining rules are security/audit.py's).

`audit_spool` holds each access event from the moment its response leaves until a shipper chains it; the head
document in `audit_chain` holds the chain's position and hash and the shipper's lease (holder, until), and
moves only by compare-and-set on position and holder.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from .outages import translating_outages

CHAIN = "audit_chain"
HEAD = "head"
SPOOL = "audit_spool"
EVENTS = "AuditEvent"
GENESIS = "0" * 64


@translating_outages
class AuditLog:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- the spool ----------------------------------------------------------------------------------------
    def spool(self, events: list[tuple[str, str]]) -> None:
        """Store (id, JSON text) pairs durably, stamped with the time they arrived."""
        now = time.time()
        self._db[SPOOL].insert_many([{"_id": event_id, "at": now, "text": text} for event_id, text in events],
                                    ordered=False)

    def oldest(self, limit: int) -> list[dict[str, Any]]:
        """Spooled events oldest first: {_id, at, text}."""
        return list(self._db[SPOOL].find({}, sort=[("at", 1), ("_id", 1)], limit=limit))

    def waiting(self, spooled_by: float | None = None) -> bool:
        """Whether any event waits (spooled at or before `spooled_by`, when given)."""
        query = {} if spooled_by is None else {"at": {"$lte": spooled_by}}
        return self._db[SPOOL].find_one(query, {"_id": 1}) is not None

    def unspool(self, ids: list[str], session: Any = None) -> None:
        self._db[SPOOL].delete_many({"_id": {"$in": ids}}, session=session)

    def pending(self) -> int:
        """How many events wait in the spool, not chained yet."""
        return int(self._db[SPOOL].count_documents({}))

    def stored(self, ids: list[str]) -> tuple[set[str], set[str]]:
        """Which of these events are stored as AuditEvents already: (current, claimed only). A shipper that died
        between an event's history claim and its current document leaves the claim only."""
        current = {doc["_id"] for doc in self._db[EVENTS].find({"_id": {"$in": ids}}, {"_id": 1})}
        claims = [f"{i}/1" for i in ids if i not in current]
        claimed = {doc["rid"] for doc in self._db[f"{EVENTS}_history"].find({"_id": {"$in": claims}}, {"rid": 1})} \
            if claims else set()
        return current, claimed

    # -- the head and its lease ------------------------------------------------------------------------------
    def head(self) -> dict[str, Any] | None:
        return self._db[CHAIN].find_one({"_id": HEAD})

    def acquire(self, holder: str, lease_s: float) -> bool:
        """Take the lease when it is free, expired or already `holder`'s (then it is renewed). One command: the
        upsert fails with a duplicate key while another process holds it."""
        now = time.time()
        try:
            taken = self._db[CHAIN].update_one(
                {"_id": HEAD, "$or": [{"until": {"$lt": now}}, {"until": {"$exists": False}}, {"holder": holder}]},
                {"$set": {"until": now + lease_s, "holder": holder}, "$setOnInsert": {"seq": 0, "hash": GENESIS}},
                upsert=True)
        except DuplicateKeyError:
            return False
        return taken.matched_count == 1 or taken.upserted_id is not None

    def advance(self, holder: str, from_seq: int, to_seq: int, digest: str, session: Any = None) -> bool:
        """Move the head from `from_seq` to `to_seq`, only while `holder` holds the lease (inside the transaction
        that stores the events, when `session` is given: then the head never moves without them)."""
        moved = self._db[CHAIN].update_one({"_id": HEAD, "seq": from_seq, "holder": holder},
                                           {"$set": {"seq": to_seq, "hash": digest}}, session=session)
        return moved.modified_count == 1

    def release(self, holder: str) -> None:
        self._db[CHAIN].update_one({"_id": HEAD, "holder": holder}, {"$set": {"until": 0}})

    def chained(self, marker: str) -> Iterator[tuple[str, str]]:
        """(id, JSON text) of every stored AuditEvent whose text carries `marker` (the sequence extension)."""
        for doc in self._db[EVENTS].find({"text": {"$regex": re.escape(marker)}}, {"text": 1}):
            yield doc["_id"], doc["text"]

