"""DICOM objects stored byte for byte in MongoDB, keyed by SOP Instance UID.

Each upload writes its chunks (`_dicom_chunks`) under an upload key of its own, then inserts the instance document
(`_dicom_instances`, unique by SOP Instance UID) naming that key: the insert is the commit mark. A failure before
it leaves only chunks no instance names, never a half-stored object; and of two uploads of the same object at once
(a client retrying while its first upload is still being stored) one insert wins, the other removes its own
chunks and learns which object is stored. No transaction is needed, however large the object. The instance
document also carries the few attributes QIDO-RS searches, flattened to scalars (dates as integers: decision 0002).
"""

from __future__ import annotations

import uuid
from typing import Any

from bson.binary import Binary
from pymongo import ASCENDING
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

INSTANCES = "_dicom_instances"
CHUNKS = "_dicom_chunks"
CHUNK_SIZE = 255 * 1024


class DicomStore:
    def __init__(self, db: Database, max_time_ms: int = 10_000) -> None:
        self._db = db
        self._max_time_ms = max_time_ms

    def ensure_indexes(self) -> None:
        self._db[CHUNKS].create_index([("sop", ASCENDING)])
        for key in ("study", "series", "patient_id"):
            self._db[INSTANCES].create_index([(key, ASCENDING)])

    def get(self, sop_uid: str) -> dict[str, Any] | None:
        return self._db[INSTANCES].find_one({"_id": sop_uid}, max_time_ms=self._max_time_ms)

    def put(self, document: dict[str, Any], data: bytes) -> dict[str, Any] | None:
        """Store the object unless one with its SOP Instance UID is stored; None when this call stored it, else the
        instance document that is (stored by a concurrent upload), for the caller to compare."""
        sop, upload = document["_id"], uuid.uuid4().hex
        chunks = [{"_id": f"{sop}:{upload}:{n:06d}", "sop": sop, "upload": upload, "n": n,
                   "data": Binary(data[offset:offset + CHUNK_SIZE])}
                  for n, offset in enumerate(range(0, len(data), CHUNK_SIZE))]
        if chunks:
            self._db[CHUNKS].insert_many(chunks, ordered=True)
        try:
            self._db[INSTANCES].insert_one({**document, "chunks": len(chunks), "upload": upload})
        except DuplicateKeyError:  # another upload of this SOP Instance UID committed first
            self._db[CHUNKS].delete_many({"sop": sop, "upload": upload})
            return self.get(sop)
        return None

    def delete(self, sop_uid: str) -> None:
        """Remove an object (its instance document first: without it, its chunks are never read)."""
        self._db[INSTANCES].delete_one({"_id": sop_uid})
        self._db[CHUNKS].delete_many({"sop": sop_uid})

    def read(self, document: dict[str, Any]) -> bytes:
        # objects stored before upload keys have none, and neither have their chunks (None matches a missing field)
        parts = list(self._db[CHUNKS].find({"sop": document["_id"], "upload": document.get("upload")},
                                           max_time_ms=self._max_time_ms))
        parts.sort(key=lambda p: p["n"])
        if len(parts) != document["chunks"]:
            raise OSError(f"object {document['_id']} is incomplete in storage")
        return b"".join(bytes(p["data"]) for p in parts)

    def find(self, query: dict[str, Any], limit: int = 0, skip: int = 0) -> list[dict[str, Any]]:
        cursor = self._db[INSTANCES].find(query, max_time_ms=self._max_time_ms).sort(
            [("study", ASCENDING), ("series_number", ASCENDING), ("instance_number", ASCENDING), ("_id", ASCENDING)])
        if skip:
            cursor = cursor.skip(skip)
        if limit:
            cursor = cursor.limit(limit)
        return list(cursor)
