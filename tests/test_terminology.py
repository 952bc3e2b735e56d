"""Terminology artifacts and operations over HTTP: $lookup, $validate-code, $expand, $translate, $subsumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import FHIR_JSON

from fhirserver.fhir.validation import ResourceValidator

ROOT = Path(__file__).resolve().parents[1]
C = "http://hr.example.org/fhir"
ITEM = f"{C}/CodeSystem/hr-item"
ARTIFACTS = sorted([*ROOT.glob("terminology/*.json"), *ROOT.glob("profiles/*-hr-*.json"),
                    ROOT / "profiles" / "CompartmentDefinition-patient.json"])


@pytest.mark.parametrize("path", ARTIFACTS, ids=[p.name for p in ARTIFACTS])
def test_every_artifact_is_valid_fhir_r4(path):
    import importlib

    resource = json.loads(path.read_text(encoding="utf-8"))
    module = importlib.import_module(f"fhir.resources.R4B.{resource['resourceType'].lower()}")
    getattr(module, resource["resourceType"]).model_validate(resource)
    schema = ResourceValidator(ROOT / "profiles" / "fhir.schema.v4.json")
    assert list(schema._validator(resource["resourceType"]).iter_errors(resource)) == []


def test_catalog_meets_the_published_sizes():
    items = json.loads((ROOT / "terminology" / "CodeSystem-hr-item.json").read_text(encoding="utf-8"))

    def leaves(concepts):
        for c in concepts:
            if "concept" in c:
                yield from leaves(c["concept"])
            else:
                yield c
    active = [c for c in leaves(items["concept"]) if {"code": "status", "valueCode": "active"} in c["property"]]
    assert len(active) >= 300
    chuanyu = json.loads((ROOT / "terminology" / "ValueSet-hr-scope-chuanyu.json").read_text(encoding="utf-8"))
    assert len(chuanyu["compose"]["include"][0]["concept"]) == 161
    sichuan = json.loads((ROOT / "terminology" / "ValueSet-hr-scope-510000.json").read_text(encoding="utf-8"))
    codes = [c["code"] for c in sichuan["compose"]["include"][0]["concept"]]
    assert sum(c.startswith("LAB") for c in codes) == 16 and len(codes) - 16 == 53


def params(body: dict) -> dict:
    out: dict = {}
    for p in body["parameter"]:
        value = next((v for k, v in p.items() if k.startswith("value")), p.get("part"))
        out.setdefault(p["name"], []).append(value)
    return out


def test_lookup_returns_display_designations_and_properties(http, base):
    body = http.get(f"{base}/CodeSystem/$lookup", params={"system": ITEM, "code": "CT-HEAD"}).json()
    found = params(body)
    assert found["display"] == ["头颅CT平扫"]
    names = {part[0]["valueCode"]: part[-1]["valueString"] for part in found["designation"] if len(part) == 2}
    assert names["en"] == "Head Computed tomography"
    synonyms = {part[-1]["valueString"] for part in found["designation"] if part[1]["name"] == "use"}
    assert {"Head CT"} <= synonyms  # the words doctors type are synonyms
    props = {part[0]["valueCode"]: next(v for k, v in part[1].items() if k.startswith("value"))
             for part in found["property"]}
    assert props["validity-days"] == 90 and props["modality"] == "CT" and props["loinc"]["code"] == "30799-1"
    assert props["parent"] == "IMG-CT"
    english = params(http.get(f"{base}/CodeSystem/hr-item/$lookup",
                              params={"code": "CT-HEAD", "displayLanguage": "en"}).json())
    assert english["display"] == ["Head Computed tomography"]


def test_lookup_by_post_parameters_and_unknown_code(http, base):
    body = {"resourceType": "Parameters", "parameter": [{"name": "coding", "valueCoding": {"system": ITEM,
                                                                                          "code": "LAB-HEM-001"}}]}
    response = http.post(f"{base}/CodeSystem/$lookup", json=body, headers={"Content-Type": FHIR_JSON})
    assert params(response.json())["display"] == ["血常规"]
    missing = http.get(f"{base}/CodeSystem/$lookup", params={"system": ITEM, "code": "NOPE"})
    assert missing.status_code == 404 and "NOPE" in missing.json()["issue"][0]["diagnostics"]
    unknown_system = http.get(f"{base}/CodeSystem/$lookup", params={"system": "urn:nope", "code": "x"})
    assert unknown_system.status_code == 404


@pytest.mark.parametrize(("text", "expected"), [
    ("血常规", "LAB-HEM-001"), ("胸部", "DX-CHEST"), ("头颅CT", "CT-HEAD"), ("head computed", "CT-HEAD"),
    ("718-7", "LAB-HEM-014"), ("ＣＴ", "CT-HEAD"),
])
def test_expand_filters_chinese_english_and_loinc(http, base, text, expected):
    body = http.get(f"{base}/ValueSet/$expand", params={"url": f"{C}/ValueSet/hr-scope-national", "filter": text,
                                                       "count": "200"}).json()
    codes = [c["code"] for c in body["expansion"]["contains"]]
    assert expected in codes
    assert body["expansion"]["total"] == len(codes)


@pytest.mark.parametrize(("text", "expected", "not_expected"), [
    ("MRI", "MR-KNEE", "CT-KNEE"), ("核磁", "MR-BRAIN", "CT-HEAD"), ("磁共振", "MR-LSPINE", "DX-LSPINE"),
    ("胸片", "DX-CHEST", "CT-CHEST"), ("X线", "DX-KNEE", "MR-KNEE"), ("B超", "US-ABDOMEN", "CT-ABDOMEN"),
    ("彩超", "US-THYROID", "CT-THYROID"), ("ALT", "LAB-CHEM-004", "LAB-CHEM-005"),
])
def test_expand_finds_the_words_doctors_type(http, base, text, expected, not_expected):
    """Synonyms (designation use Synonym) are searched like the display: filter=MRI found nothing before."""
    body = http.get(f"{base}/ValueSet/$expand", params={"url": f"{C}/ValueSet/hr-scope-national", "filter": text,
                                                       "count": "1000"}).json()
    codes = {c["code"] for c in body["expansion"].get("contains", [])}
    assert expected in codes and not_expected not in codes


def test_item_codesystem_counts_what_it_defines_and_names_its_all_codes_valueset(http, base):
    cs = http.get(f"{base}/CodeSystem/hr-item").json()

    def walk(nodes):
        return sum(1 + walk(n.get("concept", [])) for n in nodes)

    assert cs["count"] == walk(cs["concept"])
    everything = http.get(f"{base}/ValueSet/$expand", params={"url": cs["valueSet"], "count": "1000"}).json()
    assert everything["expansion"]["total"] == cs["count"]
    lab = next(c for c in cs["concept"] if c["code"] == "LAB")
    leaves = [i for g in lab["concept"] for i in g["concept"]]
    coded = [i for i in leaves if any(p["code"] == "loinc" for p in i["property"])]
    assert len(coded) >= 0.8 * len(leaves)  # the floor for lab items


def test_expand_pages_with_count_and_offset_and_designations(http, base):
    url = f"{base}/ValueSet/hr-scope-chuanyu/$expand"
    first = http.get(url, params={"count": "100"}).json()["expansion"]
    second = http.get(url, params={"count": "100", "offset": "100"}).json()["expansion"]
    assert first["total"] == second["total"] == 161
    codes = [c["code"] for c in first["contains"]] + [c["code"] for c in second["contains"]]
    assert len(codes) == len(set(codes)) == 161
    designated = http.get(url, params={"count": "1", "includeDesignations": "true"}).json()["expansion"]
    assert designated["contains"][0]["designation"]


def test_expand_carries_regional_validity_overrides(http, base):
    body = http.get(f"{base}/ValueSet/hr-scope-500000/$expand", params={"filter": "DR", "count": "50"}).json()
    overridden = [c for c in body["expansion"]["contains"] if c.get("extension")]
    assert overridden and overridden[0]["extension"][0] == {
        "url": f"{C}/StructureDefinition/hr-validity-days", "valueInteger": 90}


def test_validate_code_in_value_set_and_code_system(http, base):
    ok = params(http.get(f"{base}/ValueSet/$validate-code", params={
        "url": f"{C}/ValueSet/hr-scope-510000", "system": ITEM, "code": "LAB-HEM-001"}).json())
    assert ok["result"] == [True] and ok["display"] == ["血常规"]
    outside = params(http.get(f"{base}/ValueSet/$validate-code", params={
        "url": f"{C}/ValueSet/hr-scope-510000", "system": ITEM, "code": "MR-PROSTATE"}).json())
    assert outside["result"] == [False] and "not in the ValueSet" in outside["message"][0]
    wrong_display = params(http.get(f"{base}/CodeSystem/$validate-code", params={
        "url": ITEM, "code": "CT-HEAD", "display": "胸部CT"}).json())
    assert wrong_display["result"] == [False]
    concept = {"resourceType": "Parameters", "parameter": [
        {"name": "url", "valueUri": f"{C}/ValueSet/hr-scope-national"},
        {"name": "codeableConcept", "valueCodeableConcept": {"coding": [
            {"system": "http://loinc.org", "code": "718-7"}, {"system": ITEM, "code": "LAB-HEM-014"}]}}]}
    posted = http.post(f"{base}/ValueSet/$validate-code", json=concept, headers={"Content-Type": FHIR_JSON})
    assert params(posted.json())["result"] == [True]


def test_translate_forward_reverse_local_codes_and_dicom(http, base):
    forward = params(http.get(f"{base}/ConceptMap/$translate",
                              params={"system": "http://loinc.org", "code": "24627-2"}).json())
    assert forward["match"][0][1]["valueCoding"]["code"] == "CT-CHEST"
    reverse = params(http.get(f"{base}/ConceptMap/hr-loinc-to-item/$translate",
                              params={"system": ITEM, "code": "CT-CHEST", "reverse": "true"}).json())
    assert reverse["match"][0][1]["valueCoding"] == {"system": "http://loinc.org", "code": "24627-2"}
    local = params(http.get(f"{base}/ConceptMap/$translate",
                            params={"system": "http://hospital-a.example.cn/CodeSystem/lis", "code": "JY0001"}).json())
    assert local["match"][0][1]["valueCoding"]["code"] == "LAB-HEM-001"
    dicom = {"resourceType": "Parameters", "parameter": [
        {"name": "system", "valueUri": "http://dicom.nema.org/resources/ontology/DCM"},
        {"name": "code", "valueCode": "CT"},
        {"name": "dependency", "part": [{"name": "element", "valueUri": f"{C}/dicom#BodyPartExamined"},
                                        {"name": "concept", "valueCodeableConcept": {"coding": [{"code": "HEAD"}]}}]},
        {"name": "dependency", "part": [{"name": "element", "valueUri": f"{C}/dicom#contrast"},
                                        {"name": "concept", "valueCodeableConcept": {"coding": [{"code": "true"}]}}]}]}
    matched = params(http.post(f"{base}/ConceptMap/hr-dicom-to-item/$translate", json=dicom,
                               headers={"Content-Type": FHIR_JSON}).json())
    assert [m[1]["valueCoding"]["code"] for m in matched["match"]] == ["CT-HEAD-C"]
    nothing = params(http.get(f"{base}/ConceptMap/$translate", params={"system": "http://loinc.org",
                                                                       "code": "0000-0"}).json())
    assert nothing["result"] == [False]


def test_subsumes(http, base):
    def outcome(a, b):
        return params(http.get(f"{base}/CodeSystem/$subsumes", params={"system": ITEM, "codeA": a,
                                                                       "codeB": b}).json())["outcome"][0]
    assert outcome("IMG", "CT-HEAD") == "subsumes"
    assert outcome("CT-HEAD", "IMG-CT") == "subsumed-by"
    assert outcome("CT-HEAD", "CT-HEAD") == "equivalent"
    assert outcome("LAB", "CT-HEAD") == "not-subsumed"


@pytest.mark.parametrize(("path", "query"), [
    ("ValueSet/$expand", {"url": f"{C}/ValueSet/hr-scope-national", "count": "many"}),
    ("ValueSet/$expand", {"url": f"{C}/ValueSet/hr-scope-national", "colour": "red"}),
    ("ValueSet/$expand", {}),
    ("ValueSet/$expand", {"url": f"{C}/ValueSet/hr-scope-national", "count": "5000"}),
    ("CodeSystem/$lookup", {"system": ITEM}),
    ("CodeSystem/$subsumes", {"system": ITEM, "codeA": "IMG"}),
    ("ConceptMap/$translate", {"system": "http://loinc.org", "code": "1", "reverse": "maybe"}),
    ("ConceptMap/$translate", {"system": "http://loinc.org", "code": "1", "dependency": "novalue"}),
])
def test_bad_operation_parameters_are_400_naming_them(http, base, path, query):
    response = http.get(f"{base}/{path}", params=query)
    assert response.status_code == 400, response.text
    assert response.json()["resourceType"] == "OperationOutcome"


def test_conformance_resources_are_read_and_searched(http, base):
    cs = http.get(f"{base}/CodeSystem/hr-item").json()
    assert cs["url"] == ITEM and cs["count"] > 300
    found = http.get(f"{base}/ValueSet", params={"url": f"{C}/ValueSet/hr-scope-chuanyu"}).json()
    assert found["total"] == 1 and found["entry"][0]["resource"]["id"] == "hr-scope-chuanyu"
    assert http.get(f"{base}/StructureDefinition/hr-organization").json()["type"] == "Organization"
    assert http.get(f"{base}/ConceptMap?status=active").json()["total"] >= 5
    assert http.get(f"{base}/CodeSystem/nope").status_code == 404
    assert http.get(f"{base}/ValueSet?colour=red").status_code == 400


def test_capability_statement_lists_operations_and_custom_parameters(http, base):
    statement = http.get(f"{base}/metadata").json()
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    assert {o["name"] for o in resources["ValueSet"]["operation"]} == {"expand", "validate-code"}
    assert {o["name"] for o in resources["CodeSystem"]["operation"]} == {"lookup", "validate-code", "subsumes"}
    assert {o["name"] for o in resources["Observation"]["operation"]} == {"validate", "recognize", "evaluate", "lastn"}
    item = next(p for p in resources["Observation"]["searchParam"] if p["name"] == "item")
    assert item["definition"] == f"{C}/SearchParameter/hr-item"
    assert any(p["name"] == "region" for p in resources["Organization"]["searchParam"])


def test_canonical_base_is_configurable_for_every_artifact(tmp_path):
    import requests
    from conftest import new_server

    other = "https://fhir.chuanyu.example.cn/fhir"
    server = new_server(tmp_path / "node", FHIRSERVER_CANONICAL_BASE=other).start()
    try:
        cs = requests.get(f"{server.base}/CodeSystem/hr-item", timeout=30).json()
        assert cs["url"] == f"{other}/CodeSystem/hr-item"
        assert "hr.example.org" not in requests.get(f"{server.base}/ValueSet/hr-scope-chuanyu", timeout=30).text
        looked = requests.get(f"{server.base}/CodeSystem/$lookup", timeout=30,
                              params={"system": f"{other}/CodeSystem/hr-item", "code": "CT-HEAD"})
        assert looked.status_code == 200
        created = requests.post(f"{server.base}/Observation", headers={"Content-Type": FHIR_JSON}, timeout=30,
                                json={"resourceType": "Observation", "status": "final",
                                      "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]}}).json()
        assert created["code"]["coding"][-1]["system"] == f"{other}/CodeSystem/hr-item"
        found = requests.get(f"{server.base}/Observation", params={"item": "LAB-HEM-014"}, timeout=30).json()
        assert found["entry"][0]["resource"]["id"] == created["id"]
    finally:
        server.stop()


def test_token_modifiers_in_not_in_below_above_use_the_terminology(http, base):
    """`code:below=hr-item|IMG` finds the CT of the head (IMG > IMG-CT > CT-HEAD) and not the blood count;
    `:above` a code finds what is coded with it or a broader code; `:in`/`:not-in` a ValueSet this server holds
    split the results by the imaging category. Unknown ValueSets and a bare code are 400s that name the parameter."""
    import uuid

    item = "http://hr.example.org/fhir/CodeSystem/hr-item"
    subject = f"Patient/mods-{uuid.uuid4().hex[:8]}"
    ids = {}
    for name, coding in (("ct", {"system": item, "code": "CT-HEAD"}), ("cbc", {"system": item, "code": "LAB-HEM-001"}),
                         ("ct-group", {"system": item, "code": "IMG-CT"})):
        report = {"resourceType": "DiagnosticReport", "status": "final", "code": {"coding": [coding]},
                  "subject": {"reference": subject}}
        created = http.post(f"{base}/DiagnosticReport", json=report, headers={"Content-Type": FHIR_JSON})
        assert created.status_code == 201, created.text
        ids[created.json()["id"]] = name

    def found(modifier: str, value: str) -> set[str]:
        response = http.get(f"{base}/DiagnosticReport", params={f"code:{modifier}": value, "subject": subject})
        assert response.status_code == 200, response.text
        return {ids[e["resource"]["id"]] for e in response.json().get("entry", [])}

    assert found("below", f"{item}|IMG") == {"ct", "ct-group"}
    assert found("below", f"{item}|CT-HEAD") == {"ct"}
    assert found("above", f"{item}|CT-HEAD") == {"ct", "ct-group"}
    assert found("in", "http://hr.example.org/fhir/ValueSet/hr-category-imaging") == {"ct", "ct-group"}
    assert found("not-in", "http://hr.example.org/fhir/ValueSet/hr-category-imaging") == {"cbc"}
    for modifier, value, words in (("in", "http://example.org/ValueSet/none", "does not hold"),
                                   ("below", "IMG", "takes system|code"),
                                   ("below", f"{item}|NO-SUCH", "is not in the CodeSystem")):
        bad = http.get(f"{base}/DiagnosticReport", params={f"code:{modifier}": value})
        assert bad.status_code == 400 and words in bad.text, bad.text
        assert bad.json()["issue"][0]["expression"] == [f"code:{modifier}"]
