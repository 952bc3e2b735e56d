"""A server that is stopped and started again finds all its data; the embedded engine stops with it."""

from __future__ import annotations

import os
import time

import pytest
import requests
from conftest import FHIR_JSON, new_server, observation

from fhirserver.store.embedded import running_engine_uri


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_restart_keeps_every_version_and_the_deletions(tmp_path):
    server = new_server(tmp_path / "node").start()
    try:
        created = requests.post(f"{server.base}/Observation", json=observation("persist-1"),
                                headers={"Content-Type": FHIR_JSON}, timeout=30).json()
        rid = created["id"]
        requests.put(f"{server.base}/Observation/{rid}", json={**created, "status": "amended"},
                     headers={"Content-Type": FHIR_JSON}, timeout=30)
        gone_id = requests.post(f"{server.base}/Observation", json=observation("persist-2"),
                                headers={"Content-Type": FHIR_JSON}, timeout=30).json()["id"]
        requests.delete(f"{server.base}/Observation/{gone_id}", timeout=30)
    finally:
        server.stop()

    restarted = server.start()  # same data dir, database and port
    try:
        current = requests.get(f"{restarted.base}/Observation/{rid}", timeout=30)
        assert current.status_code == 200 and current.json()["status"] == "amended"
        assert requests.get(f"{restarted.base}/Observation/{rid}/_history/1", timeout=30).json()["status"] == "final"
        assert requests.get(f"{restarted.base}/Observation/{gone_id}", timeout=30).status_code == 410
        again = requests.put(f"{restarted.base}/Observation/{rid}", json={**created, "status": "corrected"},
                             headers={"Content-Type": FHIR_JSON, "If-Match": 'W/"2"'}, timeout=30)
        assert again.status_code == 200 and again.json()["meta"]["versionId"] == "3"
    finally:
        restarted.stop()


@pytest.mark.skipif(bool(os.environ.get("FHIRSERVER_MONGODB_URI")), reason="embedded engine only")
def test_stopping_the_server_stops_its_embedded_engine(tmp_path):
    server = new_server(tmp_path / "node").start()
    state = (tmp_path / "node" / "embedded-mongo.json").read_text()
    pid = int(state.split('"pid": ')[1].rstrip("}"))
    assert running_engine_uri(tmp_path / "node")
    assert _pid_alive(pid)
    server.stop()
    deadline = time.monotonic() + 15
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _pid_alive(pid)
    assert running_engine_uri(tmp_path / "node") is None


def test_transaction_half_written_by_a_crashed_process_is_undone_at_start_up(tmp_path):
    """A journal and the versions it claimed, as a process killed in mid-commit leaves them."""
    import pymongo

    from fhirserver.store.repository import StoredVersion

    server = new_server(tmp_path / "node").start()
    try:
        kept = requests.post(f"{server.base}/Observation", json=observation("kept"),
                             headers={"Content-Type": FHIR_JSON}, timeout=30).json()
        with pymongo.MongoClient(server.mongo_uri()) as client:
            db = client[server.db_name]
            half = [StoredVersion("Patient", "half-written", 1, "2026-01-01T00:00:00.000Z", False, "POST", "{}", {},
                                  tx="tx-crashed"),
                    StoredVersion("Observation", kept["id"], 2, "2026-01-01T00:00:00.000Z", True, "DELETE", None, {},
                                  tx="tx-crashed")]
            db["_journal"].insert_one({"_id": "tx-crashed", "started": 0,
                                       "writes": [[v.resource_type, v.id, v.vid] for v in half]})
            for version in half:
                db[f"{version.resource_type}_history"].insert_one(version.history_doc())
                db[version.resource_type].replace_one({"_id": version.id}, version.current_doc(), upsert=True)
        assert requests.get(f"{server.base}/Observation/{kept['id']}", timeout=30).status_code == 410
    finally:
        server.stop()
    restarted = server.start()
    try:
        assert requests.get(f"{restarted.base}/Patient/half-written", timeout=30).status_code == 404
        current = requests.get(f"{restarted.base}/Observation/{kept['id']}", timeout=30)
        assert current.status_code == 200 and current.json()["meta"]["versionId"] == "1"
        history = requests.get(f"{restarted.base}/Observation/{kept['id']}/_history", timeout=30).json()
        assert len(history["entry"]) == 1
    finally:
        restarted.stop()
