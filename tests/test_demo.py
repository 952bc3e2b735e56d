"""`fhirserver demo` loads a network in which the README's recognition examples work."""

from __future__ import annotations

import subprocess
import sys

from conftest import FHIR_JSON


def test_demo_network_loads_and_the_readme_story_works(http, base):
    result = subprocess.run(
        [sys.executable, "-m", "fhirserver", "demo", "--url", base], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    answer = http.post(
        f"{base}/DiagnosticReport/demo-dr-chest/$recognize",
        headers={"Content-Type": FHIR_JSON},
        json={
            "resourceType": "Parameters",
            "parameter": [{"name": "requester", "valueReference": {"reference": "Organization/demo-cq-children"}}],
        },
    )
    assert answer.json()["parameter"][0] == {"name": "recognizable", "valueBoolean": True}
    order = {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "order",
        "subject": {"identifier": {"system": "urn:oid:2.16.156.10011.1.3", "value": "50011220190501001X"}},
        "code": {"coding": [{"system": "http://loinc.org", "code": "36643-5"}]},
        "requester": {"reference": "Organization/demo-cq-children"},
    }
    check = {"resourceType": "Parameters", "parameter": [{"name": "request", "resource": order}]}
    bundle = http.post(
        f"{base}/ServiceRequest/$duplicate-check", headers={"Content-Type": FHIR_JSON}, json=check
    ).json()
    issue = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "DetectedIssue")
    assert "重庆市渝北区人民医院" in issue["detail"] and "可互认" in issue["detail"]
    again = subprocess.run(
        [sys.executable, "-m", "fhirserver", "demo", "--url", base], capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0  # loading twice is harmless (PUT by id)
