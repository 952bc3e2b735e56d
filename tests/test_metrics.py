"""Prometheus metrics at /metrics, summed over the gunicorn workers."""

from __future__ import annotations

import re

import requests
from conftest import FHIR_JSON, observation, post


def _sample(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match and all(f'{k}="{v}"' in match.group(1) for k, v in labels.items()):
            total += float(match.group(2))
    return total


def test_metrics_count_requests_per_interaction_and_store_commands(base: str, http: requests.Session) -> None:
    root = base.rsplit("/fhir", 1)[0]
    before = requests.get(f"{root}/metrics", timeout=30).text
    created = post(http, base, observation())
    for _ in range(12):
        assert http.get(f"{base}/Observation/{created.json()['id']}").status_code == 200
    http.get(f"{base}/Observation/does-not-exist")
    response = requests.get(f"{root}/metrics", timeout=30)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain")
    after = response.text
    reads = (_sample(after, "fhirserver_requests_total", interaction="read", status="2xx")
             - _sample(before, "fhirserver_requests_total", interaction="read", status="2xx"))
    assert reads >= 12  # both workers' counts are summed
    assert _sample(after, "fhirserver_requests_total", interaction="read", status="4xx") >= 1
    assert _sample(after, "fhirserver_request_seconds_count", interaction="create") >= 1
    assert _sample(after, "fhirserver_store_command_seconds_count", command="find") > 0
    assert FHIR_JSON not in after  # plain Prometheus text, no resources
