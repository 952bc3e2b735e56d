"""The audit chain survives a crash at every step of chaining: the shipper is killed (fault injection,
FHIRSERVER_FAULT_INJECT) right after the head moves, after the history write and after the current write, inside
the one transaction that does all three; the next server chains every event exactly once and `audit verify` says
the chain is intact."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pymongo
import pytest
import requests
from conftest import FHIR_JSON, ServerProcess, audit_settled, free_port, new_server, observation


def _verify(server: ServerProcess) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FHIRSERVER_AUTH": "off", "FHIRSERVER_MONGODB_DB": server.db_name}
    return subprocess.run([sys.executable, "-m", "fhirserver", "audit", "verify", "--data-dir", str(server.data_dir)],
                          capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.parametrize("step", ["head", "history", "current"])
def test_a_shipper_killed_mid_chaining_leaves_an_intact_chain(tmp_path: Path, step: str) -> None:
    marker = tmp_path / "killed"
    first = new_server(tmp_path / "node", FHIRSERVER_FAULT_INJECT=f"audit:{step}:{marker}")
    first.workers = 1
    first.start()
    try:
        created = requests.post(f"{first.base}/Observation", json=observation(), timeout=30,
                                headers={"Content-Type": FHIR_JSON})
        assert created.status_code == 201
        for _ in range(2):
            requests.get(f"{first.base}/Observation/{created.json()['id']}", timeout=30)
        deadline = time.monotonic() + 30
        while not marker.exists():  # the worker's shipper reached the step and died there
            assert time.monotonic() < deadline, "the fault was never reached"
            time.sleep(0.1)
    finally:
        first.stop()
    assert marker.read_text() == step
    second = ServerProcess(data_dir=first.data_dir, port=free_port(), db_name=first.db_name).start()
    try:
        assert requests.get(f"{second.base}/Observation?_count=1", timeout=30).status_code == 200
        with pymongo.MongoClient(second.mongo_uri()) as client:
            db = client[second.db_name]
            audit_settled(db)
            events = list(db["AuditEvent"].find({}, {"_id": 1}))
            history = list(db["AuditEvent_history"].find({}, {"rid": 1}))
            assert len(events) == len({e["_id"] for e in events}) == len(history) >= 4  # 3 first, then the search
        verify = _verify(second)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert f"{len(events)} events in the chain" in verify.stdout, verify.stdout
    finally:
        second.stop()
