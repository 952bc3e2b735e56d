"""The outbox of Subscription notifications: durable jobs, claimed under a lease so that one process of many
sends each, retried at the time the sender sets; and one state document per Subscription (events counted,
when it last sent, when its next heartbeat is due). Jobs live in the store, so a crash loses none."""

from __future__ import annotations

import time
import uuid
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.database import Database

from .outages import translating_outages

JOBS = "subscription_outbox"
STATE = "subscription_state"


@translating_outages
class Deliveries:
    def __init__(self, db: Database, max_time_ms: int = 10_000) -> None:
        self._db = db
        self._max_time_ms = max_time_ms

    def ensure_indexes(self) -> None:
        self._db[JOBS].create_index([("due", ASCENDING), ("lease", ASCENDING)])
        self._db[JOBS].create_index([("sub", ASCENDING)])

    # -- jobs -----------------------------------------------------------------------------------------------
    def enqueue(self, subscription: str, kind: str, focus: str | None = None, event: int | None = None) -> str:
        job = {"_id": str(uuid.uuid4()), "sub": subscription, "kind": kind, "focus": focus, "event": event,
               "due": time.time(), "lease": 0.0, "attempts": 0, "error": None}
        self._db[JOBS].insert_one(job)
        return str(job["_id"])

    def claim(self, holder: str, lease_s: float) -> dict[str, Any] | None:
        """The next due job nobody holds, now leased to `holder` (None when none is due)."""
        now = time.time()
        return self._db[JOBS].find_one_and_update(
            {"due": {"$lte": now}, "lease": {"$lte": now}}, {"$set": {"lease": now + lease_s, "holder": holder}},
            sort=[("due", ASCENDING)], return_document=ReturnDocument.AFTER, maxTimeMS=self._max_time_ms)

    def done(self, job_id: str) -> None:
        self._db[JOBS].delete_one({"_id": job_id})

    def retry(self, job_id: str, due: float, attempts: int, error: str) -> None:
        self._db[JOBS].update_one({"_id": job_id},
                                  {"$set": {"due": due, "lease": 0.0, "attempts": attempts, "error": error[:500]}})

    def drop(self, subscription: str) -> int:
        """Forget a Subscription's pending jobs (it is in error or off: nothing more is sent)."""
        return int(self._db[JOBS].delete_many({"sub": subscription}).deleted_count)

    def pending(self, subscription: str) -> int:
        return int(self._db[JOBS].count_documents({"sub": subscription}, maxTimeMS=self._max_time_ms))

    # -- per-subscription state -----------------------------------------------------------------------------
    def count_event(self, subscription: str) -> int:
        """The Subscription's next event number (events-since-subscription-start)."""
        state = self._db[STATE].find_one_and_update({"_id": subscription}, {"$inc": {"events": 1}}, upsert=True,
                                                    return_document=ReturnDocument.AFTER)
        return int(state["events"])

    def sent(self, subscription: str, heartbeat_s: float | None) -> None:
        now = time.time()
        fields: dict[str, Any] = {"last_sent": now}
        if heartbeat_s:
            fields["next_heartbeat"] = now + heartbeat_s
        self._db[STATE].update_one({"_id": subscription}, {"$set": fields}, upsert=True)

    def heartbeat_due(self, subscription: str, heartbeat_s: float) -> bool:
        """Whether this process takes the Subscription's heartbeat now (at most one process does per period)."""
        now = time.time()
        self._db[STATE].update_one({"_id": subscription}, {"$setOnInsert": {"next_heartbeat": now + heartbeat_s,
                                                                            "events": 0}}, upsert=True)
        taken = self._db[STATE].find_one_and_update(
            {"_id": subscription, "next_heartbeat": {"$lte": now}}, {"$set": {"next_heartbeat": now + heartbeat_s}})
        return taken is not None

    def state(self, subscription: str) -> dict[str, Any]:
        return self._db[STATE].find_one({"_id": subscription}) or {"_id": subscription, "events": 0}

    def reset(self, subscription: str) -> None:
        """A Subscription (re)requested starts counting anew."""
        self._db[STATE].replace_one({"_id": subscription}, {"_id": subscription, "events": 0}, upsert=True)
