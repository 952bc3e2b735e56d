"""DICOM objects stored byte for byte in MongoDB, keyed by SOP Instance UID.

Chunks go in `_dicom_chunks` first, then the instance document in `_dicom_instances`, which is the commit
mark: an object without its instance document was never stored (its chunks are replaced on the next try),
so a failure never leaves a half-stored object visible. The instance document also carries the few
attributes QIDO-RS searches, flattened to scalars (dates as integers: see decision 0002).
"""

from __future__ import annotations

from typing import Any

from bson.binary import Binary
from pymongo import ASCENDING
from pymongo.database import Database

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

    def put(self, document: dict[str, Any], data: bytes) -> None:
        """Store the object; the caller has checked it is new (or a retry of the same bytes)."""
        sop = document["_id"]
        self._db[CHUNKS].delete_many({"sop": sop})
        chunks = [{"_id": f"{sop}:{n:06d}", "sop": sop, "n": n, "data": Binary(data[offset:offset + CHUNK_SIZE])}
                  for n, offset in enumerate(range(0, len(data), CHUNK_SIZE))]
        if chunks:
            self._db[CHUNKS].insert_many(chunks, ordered=True)
        self._db[INSTANCES].replace_one({"_id": sop}, {**document, "chunks": len(chunks)}, upsert=True)

    def read(self, document: dict[str, Any]) -> bytes:
        parts = list(self._db[CHUNKS].find({"sop": document["_id"]}, max_time_ms=self._max_time_ms))
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
