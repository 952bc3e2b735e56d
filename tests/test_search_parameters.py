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
    choice_elements,
    compile_path,
    expression_for,
    rewrite_component,
    rewrite_expression,
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


def test_fast_path_only_takes_plain_paths():
    choices = choice_elements(ROOT / "profiles" / "fhir.schema.v4.json")
    assert {"value", "effective", "deceased", "multipleBirth"} <= choices and "performer" not in choices
    assert compile_path("Observation.code", "Observation", choices) is not None
    assert compile_path("Observation.value.ofType(Quantity)", "Observation", choices) is not None
    assert compile_path("Observation.effective", "Observation", choices) is None
    assert compile_path("Observation.subject.where(reference.matches('x'))", "Observation") is None
    assert compile_path("Patient.deceased.exists() and Patient.deceased != false", "Patient") is None


@pytest.fixture(scope="module")
def registry() -> SearchParameterRegistry:
    return SearchParameterRegistry(ROOT / "profiles", INDEXABLE_TYPES)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_fast_path_indexes_exactly_what_fhirpathpy_would(registry, path):
    """Every index value stored for a specification example is the same with either evaluator."""
    resource = loads(path.read_bytes())
    model = models["r4"]
    indexer = ResourceIndexer(registry, parse_zone("+08:00"))
    fast = indexer.index(resource)
    for parameter in registry.for_type(resource["resourceType"]).values():
        if parameter.code == "_id":
            continue  # the logical id is the document key, not an index field
        slow = replace(parameter, evaluate=compile_fhirpath(parameter.expression, model), components=tuple(
            replace(c, evaluate=compile_fhirpath(c.expression, model)) for c in parameter.components))
        expected = indexer.parameter_fields(slow, resource)
        name = parameter.code.replace("-", "_")
        for suffix, values in expected.items():
            assert fast["sp"].get(name + suffix, []) == values, (parameter.code, suffix)
