"""Golden table: FHIR query string in, exact MongoDB filter out (pure functions), injection included."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl

import pytest

from fhirserver.fhir.errors import FhirError
from fhirserver.fhir.search.indexer import INDEXABLE_TYPES
from fhirserver.fhir.search.parameters import SearchParameterRegistry
from fhirserver.fhir.search.planner import Planner
from fhirserver.fhir.search.query import QueryParser, criteria_key
from fhirserver.fhir.search.values import BUCKET_MS, date_range, parse_zone

PROFILES = Path(__file__).resolve().parents[1] / "profiles"
LIVE = {"deleted": False}
ZONE = parse_zone("+08:00")


@pytest.fixture(scope="module")
def parser() -> QueryParser:
    return QueryParser(SearchParameterRegistry(PROFILES, INDEXABLE_TYPES))


def plan(parser: QueryParser, rtype: str, query: str) -> dict:
    parsed = parser.parse(rtype, parse_qsl(query, keep_blank_values=True))
    return Planner(ZONE, "https://fhir.example.cn/fhir").plan(parsed.criteria)


def both(*clauses: dict) -> dict:
    """The implicit form: live versions and the clauses in one document (each test's clauses have distinct keys)."""
    out = dict(LIVE)
    for clause in clauses:
        assert not set(clause) & set(out)
        out.update(clause)
    return out


D2024 = date_range("2024", ZONE)
D20240301 = date_range("2024-03-01", ZONE)
D20240401 = date_range("2024-04-01", ZONE)


def buckets(lo: float, hi: float) -> dict:
    """The implied clause of a bounded date window: its 30-day buckets, and the open-ended ones ("long")."""
    return {"sp.date__b": {"$in": [f"b{n}" for n in range(int(lo // BUCKET_MS), int((hi - 1) // BUCKET_MS) + 1)]
                           + ["long"]}}


GOLDEN = [
    ("identifier=urn:x|1", both({"sp.identifier": {"$in": ["urn:x|1"]}})),
    ("identifier=1,2", both({"sp.identifier": {"$in": ["1", "2"]}})),
    ("identifier=|1", both({"sp.identifier": {"$in": ["|1"]}})),
    ("identifier=urn:x|", both({"sp.identifier": {"$elemMatch": {"$regex": "^urn:x\\|"}}})),
    ("_id=a1", both({"_id": {"$in": ["a1"]}})),
    ("_id:not=a1", both({"_id": {"$nin": ["a1"]}})),
    ("code=718-7&code=http://loinc.org|718-7", both({"sp.code": {"$in": ["718-7"]}},
                                                    {"$and": [{"sp.code": {"$in": ["http://loinc.org|718-7"]}}]})),
    ("combo-code=x", both({"sp.combo_code": {"$in": ["x"]}})),
    ("status:not=final", both({"sp.status": {"$nin": ["final"]}})),
    ("status:not=final,amended", both({"sp.status": {"$nin": ["final", "amended"]}})),
    ("code:text=血", both({"sp.code__text": {"$elemMatch": {"$regex": "^血"}}})),
    ("identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|123",
     both({"sp.identifier__type": {"$in": ["http://terminology.hl7.org/CodeSystem/v2-0203|MR|123"]}})),
    ("subject:missing=true", both({"sp.subject": {"$exists": False}})),
    ("subject=Patient/p1", both({"sp.subject": {"$in": ["Patient/p1"]}})),
    ("subject:Patient=p1", both({"sp.subject": {"$in": ["Patient/p1"]}})),
    ("subject=https://fhir.example.cn/fhir/Patient/p1", both({"sp.subject": {"$in": ["Patient/p1"]}})),
    ("subject:identifier=urn:oid:2.16.156.10011.1.3|51010019800101001X",
     both({"sp.subject__identifier": {"$in": ["urn:oid:2.16.156.10011.1.3|51010019800101001X"]}})),
    ("date=2024", both({"sp.date": {"$elemMatch": {"lo": {"$gte": D2024.lo}, "hi": {"$lte": D2024.hi}}}},
                       buckets(D2024.lo, D2024.hi))),
    ("date=gt2024", both({"sp.date": {"$elemMatch": {"hi": {"$gt": D2024.hi}}}})),
    ("date=lt2024-03-01", both({"sp.date": {"$elemMatch": {"lo": {"$lt": D20240301.lo}}}})),
    ("date=sa2024", both({"sp.date": {"$elemMatch": {"lo": {"$gte": D2024.hi}}}})),
    ("date=eb2024", both({"sp.date": {"$elemMatch": {"hi": {"$lte": D2024.lo}}}})),
    ("date=ge2024", both({"$or": [{"sp.date": {"$elemMatch": {"hi": {"$gt": D2024.hi}}}},
                                  {"sp.date": {"$elemMatch": {"lo": {"$gte": D2024.lo}, "hi": {"$lte": D2024.hi}}}}]})),
    ("date=ge2024-03-01&date=lt2024-04-01", both(
        {"sp.date": {"$elemMatch": {"lo": {"$lt": D20240401.lo}}}},
        {"$or": [{"sp.date": {"$elemMatch": {"hi": {"$gt": D20240301.hi}}}},
                 {"sp.date": {"$elemMatch": {"lo": {"$gte": D20240301.lo}, "hi": {"$lte": D20240301.hi}}}}]},
        buckets(D20240301.lo, D20240401.lo))),
    ("date=gt2024-03-01&date=lt2024-04-01", both({"sp.date": {"$all": [
        {"$elemMatch": {"hi": {"$gt": D20240301.hi}}},
        {"$elemMatch": {"lo": {"$lt": D20240401.lo}}}]}},
        buckets(D20240301.hi, D20240401.lo))),
    ("value-quantity=gt5.4|http://unitsofmeasure.org|mmol/L",
     both({"sp.value_quantity": {"$elemMatch": {"v": {"$gt": 5.4}, "s": "http://unitsofmeasure.org",
                                                "c": "mmol/L"}}})),
    ("value-quantity=5.4",
     both({"sp.value_quantity": {"$elemMatch": {"v": {"$gte": 5.35, "$lt": 5.45}}}})),
    ("code-value-quantity=http://loinc.org|718-7$lt100",
     both({"sp.code_value_quantity": {"$elemMatch": {"k0": "http://loinc.org|718-7", "k1_v": {"$lt": 100.0}}}})),
    ('identifier={"$gt":""}', both({"sp.identifier": {"$in": ['{"$gt":""}']}})),
    ("identifier=$where", both({"sp.identifier": {"$in": ["$where"]}})),
    ("identifier=.*", both({"sp.identifier": {"$in": [".*"]}})),
    ("_count=5&_format=json&_sort=-date", LIVE),
]

PATIENT_GOLDEN = [
    ("name=zhang", both({"sp.name": {"$elemMatch": {"$regex": "^zhang"}}})),
    ("name=Ｚhàng", both({"sp.name": {"$elemMatch": {"$regex": "^zhang"}}})),
    ("name:contains=.*(", both({"sp.name": {"$elemMatch": {"$regex": "\\.\\*\\("}}})),
    ("name:exact=张三", both({"sp.name__exact": {"$in": ["张三"]}})),
    ("birthdate=ne2024", both({"sp.birthdate": {"$exists": True}, "$nor": [
        {"sp.birthdate": {"$elemMatch": {"lo": {"$gte": D2024.lo}, "hi": {"$lte": D2024.hi}}}}]})),
]


@pytest.mark.parametrize(("query", "expected"), GOLDEN, ids=[g[0] for g in GOLDEN])
def test_observation_query_plans_to_exact_filter(parser, query, expected):
    assert plan(parser, "Observation", query) == expected


@pytest.mark.parametrize(("query", "expected"), PATIENT_GOLDEN, ids=[g[0] for g in PATIENT_GOLDEN])
def test_patient_query_plans_to_exact_filter(parser, query, expected):
    assert plan(parser, "Patient", query) == expected


HOSTILE = [
    "identifier[$ne]=1", "$where=1", "identifier.$gt=1", "unknown=1", "identifier:above=1", "identifier=",
    "_id=$gt", "_id=" + "a" * 65, "identifier=" + "x" * 513, "identifier=" + ",".join(["v"] * 101),
    "code:regex=.*", "date=2024-13-01", "date=gt", "date=yesterday", "value-quantity=abc", "value-quantity=1|2",
    "code-value-quantity=1", "subject:missing=maybe", "_sort=nonsense", "_sort=", "_count=-1", "_count=1e3",
    "_total=all", "_summary=yes", "_elements=$where", "_include=Observation:nonsense", "_include=Evil:subject",
    "_revinclude=Provenance", "subject:Patient.name.family.given=x", "subject.nothing=1", "_has:Observation=1",
    "_has:Evil:patient:code=1", "_has:Observation:code:code=1", "_text=x", "_filter=status eq final",
    "subject:Unicorn.name=x", "status:text:not=x", "_page=" + "A" * 10,
]


@pytest.mark.parametrize("query", HOSTILE)
def test_hostile_or_unsupported_query_is_400_naming_the_parameter(parser, query):
    with pytest.raises(FhirError) as caught:
        pairs = parse_qsl(query, keep_blank_values=True)
        parsed = parser.parse("Observation", pairs)
        Planner(ZONE).plan([c for c in parsed.criteria if not c.chain and not c.has])
        if parsed.page:  # paging tokens are checked where they are read
            from fhirserver.fhir.interactions.search import _read_token

            _read_token(parsed.page, 2)
    assert caught.value.status == 400
    assert caught.value.issues[0].expression or caught.value.issues[0].diagnostics


def test_lenient_handling_turns_unknown_parameters_into_warnings(parser):
    parsed = parser.parse("Observation", [("nonsense", "1"), ("status", "final")], lenient=True)
    assert [c.code for c in parsed.criteria] == ["status"]
    assert parsed.warnings and parsed.warnings[0].severity == "warning"


def test_criteria_key_ignores_order(parser):
    assert criteria_key("Patient", [("identifier", "b,a"), ("active", "true")]) == \
        criteria_key("Patient", [("active", "true"), ("identifier", "a,b")])


def test_official_definitions_cover_every_type(parser):
    registry = parser.registry
    for rtype in ("Observation", "DiagnosticReport", "ImagingStudy", "Patient", "ServiceRequest", "Consent"):
        assert registry.get(rtype, "_tag") is not None
        assert registry.get(rtype, "_lastUpdated") is not None
    assert registry.get("Observation", "code-value-quantity").components
    assert registry.get("ImagingStudy", "modality") is not None
    assert registry.get("Provenance", "identifier") is None  # Provenance has no identifier parameter in R4
