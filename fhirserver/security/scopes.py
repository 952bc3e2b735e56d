"""SMART App Launch scopes, v2 (`user/Observation.rs`) and v1 (`user/Observation.read`) forms.

A scope grants permissions (c, r, u, d, s) on one resource type or all (`*`) in one context: `system`
(a backend acting for its organization), `user` (a practitioner) or `patient` (one patient's data).
http://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SCOPE = re.compile(r"(patient|user|system)/(\*|[A-Z][A-Za-z]{0,63})\.([a-z*]+)(\?.*)?")
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}
PERMISSIONS = "cruds"


@dataclass(frozen=True)
class Scope:
    context: str       # patient | user | system
    resource_type: str  # a type or "*"
    permissions: frozenset[str]


def parse_scope(text: str) -> Scope | None:
    """One scope string; None for scopes that are not resource scopes (openid, launch, ...) or malformed."""
    match = _SCOPE.fullmatch(text)
    if match is None:
        return None
    context, rtype, perms, _query = match.groups()
    if perms in _V1:
        letters = _V1[perms]
    elif perms and all(p in PERMISSIONS for p in perms) and list(perms) == sorted(perms, key=PERMISSIONS.index) \
            and len(set(perms)) == len(perms):
        letters = perms
    else:
        return None
    return Scope(context, rtype, frozenset(letters))


def parse_scopes(claim: object) -> tuple[Scope, ...]:
    if not isinstance(claim, str):
        return ()
    return tuple(s for s in (parse_scope(part) for part in claim.split()) if s is not None)


def grants(scopes: tuple[Scope, ...], resource_type: str, permission: str) -> Scope | None:
    """The first scope granting `permission` on `resource_type`, or None."""
    for scope in scopes:
        if scope.resource_type in ("*", resource_type) and permission in scope.permissions:
            return scope
    return None
