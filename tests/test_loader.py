"""`fhirserver load`: Bundle, resource and NDJSON files into a running server, with clear failures."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

from conftest import observation, unique


def run_load(base: str, *files) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fhirserver", "load", "--url", base, "--batch-size", "3",
                           *map(str, files)], capture_output=True, text=True, timeout=120)


def test_load_bundle_resource_and_ndjson_files(tmp_path, http, base):
    tag = unique("load")
    meta = {"tag": [{"system": "urn:test", "code": tag}]}
    collection = {"resourceType": "Bundle", "type": "collection",
                  "entry": [{"resource": observation(f"{tag}-{i}", meta=meta)} for i in range(4)]}
    (tmp_path / "collection.json").write_text(json.dumps(collection, ensure_ascii=False), encoding="utf-8")
    patient = {"resourceType": "Patient", "id": f"{tag}-p", "meta": meta, "name": [{"text": "王五"}]}
    (tmp_path / "patient.json").write_text(json.dumps(patient, ensure_ascii=False), encoding="utf-8")
    (tmp_path / "more.ndjson").write_text("\n".join(json.dumps(observation(f"{tag}-n{i}", meta=meta))
                                                    for i in range(5)) + "\n", encoding="utf-8")
    result = run_load(base, tmp_path / "collection.json", tmp_path / "patient.json", tmp_path / "more.ndjson")
    assert result.returncode == 0, result.stderr
    assert "10/10 resources" in result.stderr
    total = http.get(f"{base}/Observation?_tag=urn:test|{tag}&_summary=count").json()["total"]
    assert total == 9
    assert http.get(f"{base}/Patient/{tag}-p").status_code == 200
    again = run_load(base, tmp_path / "patient.json")  # PUT by id: loading twice does not duplicate
    assert again.returncode == 0
    assert http.get(f"{base}/Patient/{tag}-p").json()["meta"]["versionId"] == "2"


def test_load_reports_bad_files_and_refused_resources(tmp_path, base):
    (tmp_path / "broken.json").write_text("{not json", encoding="utf-8")
    broken = run_load(base, tmp_path / "broken.json")
    assert broken.returncode == 1 and "broken.json: not valid JSON" in broken.stderr
    (tmp_path / "invalid.ndjson").write_text(json.dumps(observation(None, status="bogus")) + "\n", encoding="utf-8")
    invalid = run_load(base, tmp_path / "invalid.ndjson")
    assert invalid.returncode == 1 and "Observation.status" in invalid.stderr
    unreachable = subprocess.run([sys.executable, "-m", "fhirserver", "load", "--url", "http://127.0.0.1:9/fhir",
                                  str(tmp_path / "invalid.ndjson")], capture_output=True, text=True, timeout=60)
    assert unreachable.returncode == 1 and "is it running?" in unreachable.stderr


def _interrupt_once(command: list[str], started: Callable[[], bool], timeout: float = 120.0) -> tuple[int, str]:
    """Run a client command, send it Ctrl-C (SIGINT) once `started()` holds, and return (exit code, its output)."""
    import signal
    import time

    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + timeout
    while not started():
        assert process.poll() is None, f"finished before it could be interrupted:\n{process.stdout.read()}"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    return process.returncode, output


def test_ctrl_c_in_load_says_what_is_stored_and_a_rerun_completes_it(tmp_path, http, base):
    """Ctrl-C once the first batches are stored: exit 130, one sentence (whole batches stored, a rerun is safe), no
    traceback; the rerun stores the rest without duplicating (every resource has an id)."""
    tag = unique("intr")
    meta = {"tag": [{"system": "urn:test", "code": tag}]}
    lines = [json.dumps(observation(f"{tag}-{i}", id=f"{tag}-{i}", meta=meta)) for i in range(2000)]
    (tmp_path / "many.ndjson").write_text("\n".join(lines) + "\n", encoding="utf-8")
    command = [sys.executable, "-m", "fhirserver", "load", "--url", base, "--batch-size", "10",
               str(tmp_path / "many.ndjson")]

    def stored() -> int:
        return http.get(f"{base}/Observation?_tag=urn:test|{tag}&_summary=count").json()["total"]

    code, output = _interrupt_once(command, lambda: stored() > 0)
    assert code == 130, output
    assert "load interrupted" in output and "again is safe" in output and "Traceback" not in output, output
    assert 0 < stored() < 2000
    assert stored() % 10 == 0  # whole batches only: each is one transaction
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert stored() == 2000
