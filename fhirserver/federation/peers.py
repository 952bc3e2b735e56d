"""Peers are Endpoint resources managed through the normal API: status active, connectionType hl7-fhir-rest,
address = the peer's FHIR base (http or https), the hr-region extension, managingOrganization. Endpoint.header
lines ("Authorization: Bearer ...") are sent to that peer and never shown in responses. Only registered,
active peers are ever contacted: no URL from a request is fetched."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..fhir.interactions.context import FhirContext
from ..fhir.interactions.search import find
from ..fhir.json_format import loads

REST = "hl7-fhir-rest"
_HEADER = re.compile(r"([A-Za-z0-9-]{1,64}):\s*(.{1,4096})")
MAX_PEERS = 64


@dataclass(frozen=True)
class Peer:
    endpoint: str              # Endpoint/<id>
    name: str
    address: str               # FHIR base, no trailing slash
    region: str | None
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def label(self) -> str:
        return f"{self.name} ({self.region})" if self.region else self.name


PEER_TYPES = frozenset({"Endpoint"})  # what the peer list is read from (cached by registry generation)


def active_peers(ctx: FhirContext) -> list[Peer]:
    peers = []
    for version in find(ctx, "Endpoint", [("status", "active"), ("connection-type", REST)], MAX_PEERS):
        data = loads(version.text or "{}")
        address = str(data.get("address", "")).rstrip("/")
        if not address.startswith(("http://", "https://")):
            continue
        region = next((e.get("valueCoding", {}).get("code") for e in data.get("extension", [])
                       if str(e.get("url", "")).endswith("/StructureDefinition/hr-region")), None)
        headers = tuple((m.group(1), m.group(2).strip()) for m in (_HEADER.fullmatch(h) for h in data.get("header", [])
                                                                  if isinstance(h, str)) if m)
        peers.append(Peer(f"Endpoint/{version.id}", data.get("name") or version.id, address, region, headers))
    return peers
