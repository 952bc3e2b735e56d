"""The resource types this server stores, and the fhir.resources (R4B) model for each.

Why R4B: fhir.resources 8.x has no R4 package; its R4B models accept the R4 examples of our types
(checked by tests/test_validation.py against the specification's own examples).
"""

from __future__ import annotations

import importlib
from functools import cache

SUPPORTED_TYPES: tuple[str, ...] = (
    "DiagnosticReport",
    "Observation",
    "ImagingStudy",
    "Patient",
    "Organization",
    "Practitioner",
    "PractitionerRole",
    "OrganizationAffiliation",
    "ServiceRequest",
    "Specimen",
    "Endpoint",
    "Consent",
    "Provenance",
    "AuditEvent",
    "DetectedIssue",
    "Subscription",
)


def is_supported(resource_type: str) -> bool:
    return resource_type in SUPPORTED_TYPES


@cache
def model_class(resource_type: str) -> type:
    """The pydantic model class of fhir.resources.R4B for a supported type."""
    module = importlib.import_module(f"fhir.resources.R4B.{resource_type.lower()}")
    return getattr(module, resource_type)
