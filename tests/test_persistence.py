"""A server that is stopped and started again finds all its data; the embedded engine stops with it."""

from __future__ import annotations

import json
import os
import signal
import socket
import time

import pytest
import requests
from conftest import FHIR_JSON, new_server, observation, post

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


def test_killed_engine_keeps_every_acknowledged_write(tmp_path):
    """SIGKILL of the embedded engine itself (no checkpoint, no clean close): every write acknowledged before it
    is there after a restart, including a transaction Bundle, and nothing half of one."""
    if os.environ.get("FHIRSERVER_MONGODB_URI"):
        pytest.skip("embedded engine only")
    server = new_server(tmp_path / "node").start()
    try:
        ids = [requests.post(f"{server.base}/Observation", json=observation(f"kill-{n}"), timeout=30,
                             headers={"Content-Type": FHIR_JSON}).json()["id"] for n in range(20)]
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": observation(f"kill-tx-{n}"), "request": {"method": "POST", "url": "Observation"}}
            for n in range(30)]}
        answer = requests.post(server.base, json=bundle, timeout=60, headers={"Content-Type": FHIR_JSON})
        assert answer.status_code == 200
        ids += [e["response"]["location"].split("/")[1] for e in answer.json()["entry"]]
        engine_pid = int(json.loads((tmp_path / "node" / "embedded-mongo.json").read_text())["pid"])
        os.kill(engine_pid, signal.SIGKILL)
    finally:
        server.stop()
    restarted = server.start()
    try:
        for rid in ids:
            assert requests.get(f"{restarted.base}/Observation/{rid}", timeout=30).status_code == 200, rid
    finally:
        restarted.stop()


def test_partition_key_is_set_with_the_first_version_and_never_changes(http, base, store):
    """`pk`, the shard key of patient-compartment collections: the hashed patient of the first version, on the
    current document and every history document, kept when a later version names another patient."""
    from fhirserver.store.records import partition_key

    patient = post(http, base, {"resourceType": "Patient", "name": [{"family": "分区"}]}).json()
    expected = partition_key(f"Patient/{patient['id']}")
    obs = post(http, base, observation(None, subject={"reference": f"Patient/{patient['id']}"})).json()
    moved = http.put(f"{base}/Observation/{obs['id']}", json={**obs, "subject": {"reference": "Patient/other"}},
                     headers={"Content-Type": FHIR_JSON})
    assert moved.status_code == 200
    assert http.delete(f"{base}/Observation/{obs['id']}").status_code in (200, 204)
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:5b0c7f3e-6a8e-4d59-9a57-3e4f1f0d2b11", "resource": {"resourceType": "Patient"},
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": observation(None, subject={"reference": "urn:uuid:5b0c7f3e-6a8e-4d59-9a57-3e4f1f0d2b11"}),
         "request": {"method": "POST", "url": "Observation"}}]}
    answer = http.post(base, json=bundle, headers={"Content-Type": FHIR_JSON})
    assert answer.status_code == 200
    new_patient, new_obs = (e["response"]["location"].split("/")[1] for e in answer.json()["entry"])
    organization = post(http, base, {"resourceType": "Organization", "name": "无分区"}).json()

    assert store["Patient"].find_one({"_id": patient["id"]})["pk"] == expected
    assert store["Observation"].find_one({"_id": obs["id"]})["pk"] == expected  # after the move and the delete
    assert {d["pk"] for d in store["Observation_history"].find({"rid": obs["id"]})} == {expected}
    assert store["Observation_history"].count_documents({"rid": obs["id"]}) == 3
    assert store["Observation"].find_one({"_id": new_obs})["pk"] == partition_key(f"Patient/{new_patient}")
    assert "pk" not in store["Organization"].find_one({"_id": organization["id"]})
    assert any(ix["key"] == {"pk": 1} for ix in store["Observation"].list_indexes())


def test_a_dead_engine_is_restarted_and_health_says_so_meanwhile(tmp_path):
    """SIGKILL of the embedded engine, and its port taken so that it cannot come back at once: /healthz answers 503,
    requests answer 503 with Retry-After (never 500); once the port is free the server has restarted the engine on
    it, and every acknowledged write is there."""
    if os.environ.get("FHIRSERVER_MONGODB_URI"):
        pytest.skip("embedded engine only")
    server = new_server(tmp_path / "node").start()
    health = server.base.rsplit("/fhir", 1)[0] + "/healthz"
    try:
        ids = [requests.post(f"{server.base}/Observation", json=observation(f"dead-{n}"), timeout=30,
                             headers={"Content-Type": FHIR_JSON}).json()["id"] for n in range(5)]
        state = tmp_path / "node" / "embedded-mongo.json"
        engine = json.loads(state.read_text())
        port = int(engine["uri"].rsplit(":", 1)[1].split("/", 1)[0])
        assert requests.get(health, timeout=10).status_code == 200
        os.kill(int(engine["pid"]), signal.SIGKILL)
        blocker = socket.socket()
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past the dead engine's TIME_WAIT
        deadline = time.monotonic() + 10
        while True:  # take the engine's port as soon as the dead engine lets go of it
            try:
                blocker.bind(("127.0.0.1", port))
                blocker.listen()
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.01)
        try:
            time.sleep(1.5)
            down = requests.get(health, timeout=10)
            assert down.status_code == 503 and down.headers.get("Retry-After"), down.text
            answer = requests.get(f"{server.base}/Observation/{ids[0]}", timeout=60)
            assert answer.status_code == 503 and answer.headers.get("Retry-After"), answer.text
            assert answer.json()["resourceType"] == "OperationOutcome"
        finally:
            blocker.close()
        deadline = time.monotonic() + 90
        while not state.is_file() or json.loads(state.read_text())["pid"] == engine["pid"]:
            assert time.monotonic() < deadline, "the engine was not restarted"  # a new engine, same data and port
            time.sleep(0.2)
        assert json.loads(state.read_text())["uri"] == engine["uri"]
        assert requests.get(health, timeout=10).status_code == 200
        for rid in ids:
            assert requests.get(f"{server.base}/Observation/{rid}", timeout=30).status_code == 200, rid
    finally:
        server.stop()
