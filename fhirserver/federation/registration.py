"""`fhirserver peering`: register every node of a deployment as the others' peer (an Endpoint each), e.g. from
the compose file's one-shot job. Idempotent: PUT Endpoint/peer-<name>."""

from __future__ import annotations

import time

import requests

from ..security.principal import bearer_header

CONNECTION = {"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type", "code": "hl7-fhir-rest"}
CANONICAL = "http://hr.example.org/fhir"


def endpoint(name: str, address: str, region: str, canonical: str = CANONICAL,
             owner: str | None = None) -> dict[str, object]:
    """The peer's Endpoint; `owner` (an Organization reference) is its managingOrganization: with authentication on
    only the owner may write it, so it is the organization the registering token acts for."""
    resource: dict[str, object] = {
        "resourceType": "Endpoint", "id": f"peer-{name}", "status": "active", "name": name,
        "connectionType": CONNECTION, "payloadType": [{"text": "FHIR R4"}], "address": address,
        "extension": [{"url": f"{canonical}/StructureDefinition/hr-region",
                       "valueCoding": {"system": f"{canonical}/CodeSystem/hr-region", "code": region}}]}
    if owner:
        resource["managingOrganization"] = {"reference": owner}
    return resource


def token_organization(header: dict[str, str]) -> str | None:
    """The `organization` claim of the caller's own bearer token (read, not verified: the server verifies it)."""
    import jwt

    token = header.get("Authorization", "").removeprefix("Bearer ").strip()
    if not token:
        return None
    try:
        claim = jwt.decode(token, options={"verify_signature": False}).get("organization")
    except jwt.PyJWTError:
        return None
    return claim if isinstance(claim, str) and claim.startswith("Organization/") else None


def parse_node(text: str) -> tuple[str, str, str]:
    """'http://host:8080/fhir=name=510000' -> (address, name, region)."""
    address, name, region = text.rsplit("=", 2)
    if not address.startswith(("http://", "https://")) or not name or not (region.isdigit() and len(region) == 6):
        raise ValueError(f"a node is <FHIR base URL>=<name>=<6-digit region>, got {text!r}")
    return address.rstrip("/"), name, region


def register(nodes: list[tuple[str, str, str]], wait_s: float = 120.0) -> int:
    """PUT each node's Endpoint on every other node; returns how many were written."""
    session = requests.Session()
    session.headers.update({"Content-Type": "application/fhir+json", **bearer_header()})
    owner = token_organization(bearer_header())
    written = 0
    for address, _, _ in nodes:
        _wait_ready(session, address, wait_s)
    for address, name, _ in nodes:
        for peer_address, peer_name, peer_region in nodes:
            if peer_name == name:
                continue
            response = session.put(f"{address}/Endpoint/peer-{peer_name}", timeout=60,
                                   json=endpoint(peer_name, peer_address, peer_region, owner=owner))
            if response.status_code not in (200, 201):
                raise RuntimeError(f"{address} refused the peer {peer_name}: HTTP {response.status_code} "
                                   f"{response.text[:300]}")
            written += 1
    return written


def _wait_ready(session: requests.Session, address: str, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            if session.get(f"{address}/metadata", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{address} did not answer within {wait_s:g} s")
        time.sleep(1)
