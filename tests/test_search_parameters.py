"""The search parameter definitions as loaded: rewrites, and the fast path evaluator agreeing with fhirpathpy."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from fhirpathpy import compile as compile_fhirpath
from fhirpathpy.models import models

from fhirserver.fhir.json_format import loads
from fhirserver.fhir.search.indexer import INDEXABLE_TYPES, ResourceIndexer
from fhirserver.fhir.search.parameters import (
    SearchParameterRegistry,
    compile_path,
    expression_for,
    rewrite_component,
    rewrite_expression,
    schema_types,
)
from fhirserver.fhir.search.values import parse_zone

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "tests" / "data" / "r4-examples").glob("*.json"))


def test_rewrites():
    assert rewrite_expression("(Observation.value as Quantity) | (Observation.value as SampledData)") == \
        "Observation.value.ofType(Quantity) | Observation.value.ofType(SampledData)"
    assert rewrite_expression("Specimen.subject.where(resolve() is Patient)") == \
        "Specimen.subject.where(reference.matches('(^|/)Patient/[^/]+(/_history/.*)?$'))"
    assert rewrite_component("value.as(CodeableConcept)") == "valueCodeableConcept"
    assert expression_for("Resource.meta.tag", "Observation") == "Observation.meta.tag"
    assert expression_for("Observation | Observation.component", "Observation") == "Observation | Observation.component"
    assert expression_for("Patient.name | Practitioner.name", "Practitioner") == "Practitioner.name"


def test_fast_path_takes_paths_and_simple_filters_only():
    choices, types = schema_types(ROOT / "profiles" / "fhir.schema.v4.json")
    assert {"value", "effective", "deceased", "multipleBirth"} <= choices and "performer" not in choices
    assert compile_path("Observation.code", "Observation", choices) is not None
    assert compile_path("Observation.value.ofType(Quantity)", "Observation", choices) is not None
    assert compile_path("Observation.effective", "Observation", choices) is None  # no type list to resolve it
    effective = compile_path("Observation.effective", "Observation", choices, types)
    assert effective is not None and effective({"effectivePeriod": {"start": "2026"}}) == [{"start": "2026"}]
    patient = compile_path("Observation.subject.where(reference.matches('^Patient/'))", "Observation")
    assert patient is not None and patient({"subject": {"reference": "Group/1"}}) == []
    item = compile_path("Observation.code.coding.where(system='s')", "Observation")
    assert item is not None and item({"code": {"coding": [{"system": "s", "code": "a"}, {"code": "b"}]}}) == [
        {"system": "s", "code": "a"}]
    assert compile_path("Patient.deceased.exists() and Patient.deceased != false", "Patient") is None
    assert compile_path("Observation.code.where(system='it''s')", "Observation") is None
    assert compile_path("Observation.code.", "Observation") is None
    assert compile_path("Observation.code.where(exists())", "Observation") is None


@pytest.fixture(scope="module")
def registry() -> SearchParameterRegistry:
    return SearchParameterRegistry(ROOT / "profiles", INDEXABLE_TYPES)


def _our_resources() -> list[dict]:
    """Resources of our own profiles (item codings, marks, savings, audit entities) beside the R4 examples."""
    import random

    from bench import workload

    rng = random.Random(7)
    made = workload.hospitals(rng, 2) + workload.patients(rng, 3) + workload.results(rng, 30, 3, 2)
    c = "http://hr.example.org/fhir"
    made.append({"resourceType": "AuditEvent", "id": "a1", "type": {"code": "recognition"},
                 "recorded": "2026-11-23T10:00:00Z", "action": "E", "outcome": "0",
                 "extension": [{"url": f"{c}/StructureDefinition/hr-saving", "valueDecimal": 120.5}],
                 "agent": [{"who": {"reference": "Organization/h1"}, "requestor": True},
                           {"who": {"reference": "Patient/p1"}, "requestor": False}],
                 "source": {"site": "510000", "observer": {"display": "x"}},
                 "entity": [{"what": {"reference": "DiagnosticReport/r1"}},
                            {"what": {"reference": "http://other/fhir/Patient/p2/_history/3"}}]})
    made.append({"resourceType": "Observation", "id": "o1", "status": "final", "code": {"coding": [
        {"system": f"{c}/CodeSystem/hr-item", "code": "LAB-HB"}, {"system": "http://loinc.org", "code": "718-7"}]},
        "meta": {"tag": [{"system": f"{c}/CodeSystem/hr-mark", "code": "HR"}, {"system": "x", "code": "y"}]},
        "subject": {"reference": "Group/g1"}, "effectivePeriod": {"start": "2026-01-01", "end": "2026-01-02"},
        "valueQuantity": {"value": 130, "unit": "g/L"}})
    return made


CASES = [(p.stem, p) for p in EXAMPLES] + [(f"ours-{i}", r) for i, r in enumerate(_our_resources())]


@pytest.mark.parametrize("case", [c for _, c in CASES], ids=[name for name, _ in CASES])
def test_fast_path_indexes_exactly_what_fhirpathpy_would(registry, case):
    """Every index value stored for a specification example, or one of ours, is the same with either evaluator."""
    resource = loads(case.read_bytes()) if isinstance(case, Path) else case
    model = models["r4"]
    indexer = ResourceIndexer(registry, parse_zone("+08:00"))
    fast = indexer.index(resource)
    for parameter in registry.for_type(resource["resourceType"]).values():
        if parameter.code == "_id" or parameter.resolved_by:
            continue  # the logical id is the document key; a resolved parameter (person) is never indexed
        slow = replace(parameter, evaluate=compile_fhirpath(parameter.expression, model), components=tuple(
            replace(c, evaluate=compile_fhirpath(c.expression, model)) for c in parameter.components))
        expected = indexer.parameter_fields(slow, resource)
        name = parameter.code.replace("-", "_")
        for suffix, values in expected.items():
            assert fast["sp"].get(name + suffix, []) == values, (parameter.code, suffix)
