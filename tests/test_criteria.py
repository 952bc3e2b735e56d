"""Golden table: FHIR criteria string in, exact MongoDB filter out (a pure function), injection included."""

from __future__ import annotations

from pathlib import Path

import pytest

from fhirserver.fhir.errors import FhirError
from fhirserver.fhir.search.criteria import normalized_key, parse_criteria, plan_filter
from fhirserver.fhir.search.indexer import INDEXABLE_TYPES
from fhirserver.fhir.search.parameters import SearchParameterRegistry

PROFILES = Path(__file__).resolve().parents[1] / "profiles"
LIVE = {"deleted": False}


@pytest.fixture(scope="module")
def registry() -> SearchParameterRegistry:
    return SearchParameterRegistry(PROFILES, INDEXABLE_TYPES)


GOLDEN = [
    ("identifier=urn:x|1", {"$and": [LIVE, {"sp.identifier": {"$in": ["urn:x|1"]}}]}),
    ("identifier=1,2", {"$and": [LIVE, {"sp.identifier": {"$in": ["1", "2"]}}]}),
    ("identifier=|1", {"$and": [LIVE, {"sp.identifier": {"$in": ["|1"]}}]}),
    ("_id=a1", {"$and": [LIVE, {"_id": {"$in": ["a1"]}}]}),
    ("code=718-7&code=http://loinc.org|718-7", {"$and": [LIVE, {"sp.code": {"$in": ["718-7"]}},
                                                         {"sp.code": {"$in": ["http://loinc.org|718-7"]}}]}),
    ("combo-code=x", {"$and": [LIVE, {"sp.combo_code": {"$in": ["x"]}}]}),
    ("identifier=a\\,b", {"$and": [LIVE, {"sp.identifier": {"$in": ["a,b"]}}]}),
    ('identifier={"$gt":""}', {"$and": [LIVE, {"sp.identifier": {"$in": ['{"$gt":""}']}}]}),
    ("identifier=$where", {"$and": [LIVE, {"sp.identifier": {"$in": ["$where"]}}]}),
    ("identifier=.*", {"$and": [LIVE, {"sp.identifier": {"$in": [".*"]}}]}),
    ("_count=5&_format=json", LIVE),
]


@pytest.mark.parametrize(("query", "expected"), GOLDEN, ids=[g[0] for g in GOLDEN])
def test_query_string_plans_to_exact_filter(registry, query, expected):
    assert plan_filter(parse_criteria("Observation", query, registry)) == expected


@pytest.mark.parametrize("query", [
    "identifier[$ne]=1", "$where=1", "identifier.$gt=1", "unknown=1", "identifier:missing=true", "identifier=",
    "_id=$gt", "_id=" + "a" * 65, "identifier=" + "x" * 513, "identifier=" + ",".join(["v"] * 101),
])
def test_hostile_or_unsupported_criteria_are_400_naming_the_parameter(registry, query):
    with pytest.raises(FhirError) as caught:
        parse_criteria("Observation", query, registry)
    assert caught.value.status == 400
    assert caught.value.issues[0].expression


def test_normalized_key_ignores_order(registry):
    a = parse_criteria("Patient", "identifier=b,a&active=true", registry)
    b = parse_criteria("Patient", "active=true&identifier=a,b", registry)
    assert normalized_key("Patient", a) == normalized_key("Patient", b)


def test_official_definitions_cover_every_type(registry):
    for rtype in ("Observation", "DiagnosticReport", "ImagingStudy", "Patient", "ServiceRequest", "Consent"):
        assert registry.get(rtype, "_tag") is not None
    assert registry.get("Observation", "identifier") is not None
    assert registry.get("ImagingStudy", "modality") is not None
    assert registry.get("Provenance", "identifier") is None  # Provenance has no identifier parameter in R4
