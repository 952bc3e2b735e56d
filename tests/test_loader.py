"""`fhirserver load`: Bundle, resource and NDJSON files into a running server, with clear failures."""

from __future__ import annotations

import json
import subprocess
import sys

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
