"""Search through HTTP over a loaded synthetic region, each result checked against an independent
evaluation in Python written directly over the resources (no code shared with the indexer/planner)."""

from __future__ import annotations

import calendar
import random
import unicodedata
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
import synthetic
from conftest import FHIR_JSON, observation, post, unique
from fhir.resources.R4B.observation import Observation

CST = timezone(timedelta(hours=8))


@pytest.fixture(scope="module")
def region(base):
    tag = unique("region")
    rng = random.Random(5)
    pats = synthetic.patients(rng, 30, tag)
    obs = synthetic.observations(rng, 150, pats, tag)
    with requests.Session() as session:
        for resource in pats + obs:
            body = _json(resource)
            r = session.put(f"{base}/{resource['resourceType']}/{resource['id']}", data=body,
                            headers={"Content-Type": FHIR_JSON})
            assert r.status_code == 201, r.text
    return {"tag": tag, "Patient": {p["id"]: p for p in pats}, "Observation": {o["id"]: o for o in obs}}


def _json(resource: dict[str, Any]) -> bytes:
    import json

    return json.dumps(resource, ensure_ascii=False, default=_number).encode()


def _number(value: Any) -> Any:
    return float(value) if isinstance(value, Decimal) else value


def search_ids(http, base, rtype: str, query: str, tag: str) -> list[str]:
    """All ids matching, following next links; the region's tag keeps other tests' data out."""
    url = f"{base}/{rtype}?{query}&_tag=urn:test|{tag}&_count=40"
    ids: list[str] = []
    while url:
        response = http.get(url)
        assert response.status_code == 200, response.text
        bundle = response.json()
        ids += [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]
        url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)
    return ids


# -- an independent reading of FHIR search semantics -------------------------------------------------
def period(text: str) -> tuple[datetime, datetime]:
    parts = text.replace("Z", "+00:00")
    if "T" in parts:
        moment = datetime.fromisoformat(parts)
        return moment, moment + (timedelta(minutes=1) if len(text) <= 16 else timedelta(seconds=1))
    pieces = [int(p) for p in text.split("-")]
    if len(pieces) == 1:
        return datetime(pieces[0], 1, 1, tzinfo=CST), datetime(pieces[0] + 1, 1, 1, tzinfo=CST)
    if len(pieces) == 2:
        days = calendar.monthrange(*pieces)[1]
        start = datetime(pieces[0], pieces[1], 1, tzinfo=CST)
        return start, start + timedelta(days=days)
    start = datetime(*pieces, tzinfo=CST)
    return start, start + timedelta(days=1)


def obs_period(o: dict) -> tuple[datetime, datetime] | None:
    if "effectiveDateTime" in o:
        return period(o["effectiveDateTime"])
    if "effectivePeriod" in o:
        return period(o["effectivePeriod"]["start"])[0], period(o["effectivePeriod"]["end"])[1]
    return None


def date_matches(target: tuple[datetime, datetime] | None, prefix: str, value: str) -> bool:
    if target is None:
        return False
    lo, hi = target
    a, b = period(value)
    return {"eq": a <= lo and hi <= b, "ne": not (a <= lo and hi <= b), "gt": hi > b, "lt": lo < a,
            "ge": hi > b or (a <= lo and hi <= b), "le": lo < a or (a <= lo and hi <= b),
            "sa": lo >= b, "eb": hi <= a}[prefix]


def codes(concept: dict) -> list[tuple[str, str]]:
    return [(c.get("system", ""), c["code"]) for c in concept.get("coding", [])]


def fold(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))


def value(o: dict) -> float | None:
    return float(o["valueQuantity"]["value"]) if "valueQuantity" in o else None


OBSERVATION_CASES = [
    ("code=718-7", lambda o, r: ("http://loinc.org", "718-7") in codes(o["code"])),
    ("code=http://loinc.org|777-3", lambda o, r: ("http://loinc.org", "777-3") in codes(o["code"])),
    ("code=http://snomed.info/sct|777-3", lambda o, r: False),
    ("status=final,amended", lambda o, r: o["status"] in ("final", "amended")),
    ("status:not=final", lambda o, r: o["status"] != "final"),
    ("status=final&code=2823-3",
     lambda o, r: o["status"] == "final" and ("http://loinc.org", "2823-3") in codes(o["code"])),
    ("code:text=血", lambda o, r: o["code"]["text"].startswith("血")),
    ("value-quantity=gt150", lambda o, r: value(o) is not None and value(o) > 150),
    ("value-quantity=le4.0", lambda o, r: value(o) is not None and value(o) <= 4.0),
    ("value-quantity=lt5|http://unitsofmeasure.org|mmol/L",
     lambda o, r: value(o) is not None and value(o) < 5 and o["valueQuantity"]["code"] == "mmol/L"),
    ("value-quantity:missing=true", lambda o, r: "valueQuantity" not in o),
    ("code-value-quantity=http://loinc.org|718-7$gt150",
     lambda o, r: ("http://loinc.org", "718-7") in codes(o["code"]) and value(o) is not None and value(o) > 150),
    ("component-code-value-quantity=http://loinc.org|8480-6$ge140",
     lambda o, r: any(float(c["valueQuantity"]["value"]) >= 140 for c in o.get("component", []))),
    ("date=2024", lambda o, r: date_matches(obs_period(o), "eq", "2024")),
    ("date=2024-03", lambda o, r: date_matches(obs_period(o), "eq", "2024-03")),
    ("date=ge2024-06-01", lambda o, r: date_matches(obs_period(o), "ge", "2024-06-01")),
    ("date=lt2024-03-01", lambda o, r: date_matches(obs_period(o), "lt", "2024-03-01")),
    ("date=gt2024-11-30T12:00:00%2B08:00", lambda o, r: date_matches(obs_period(o), "gt", "2024-11-30T12:00:00+08:00")),
    ("date=sa2025-01-01", lambda o, r: date_matches(obs_period(o), "sa", "2025-01-01")),
    ("date=eb2023-06-01", lambda o, r: date_matches(obs_period(o), "eb", "2023-06-01")),
    ("date=ne2024", lambda o, r: obs_period(o) is not None and date_matches(obs_period(o), "ne", "2024")),
    ("date=ge2024&date=lt2025", lambda o, r: date_matches(obs_period(o), "ge", "2024")
     and date_matches(obs_period(o), "lt", "2025")),
    # bounded windows: the planner adds their 30-day bucket clause (fhir/search/planner.py); same answers required
    ("date=ge2024-03-01&date=le2024-04-15", lambda o, r: date_matches(obs_period(o), "ge", "2024-03-01")
     and date_matches(obs_period(o), "le", "2024-04-15")),
    ("date=2024-01,2024-06", lambda o, r: date_matches(obs_period(o), "eq", "2024-01")
     or date_matches(obs_period(o), "eq", "2024-06")),
    ("date=gt2024-02-10&date=eb2024-05-01", lambda o, r: date_matches(obs_period(o), "gt", "2024-02-10")
     and date_matches(obs_period(o), "eb", "2024-05-01")),
    ("subject=Patient/{p0}", lambda o, r: o["subject"]["reference"] == f"Patient/{r['p0']}"),
    ("subject:Patient.name=张", lambda o, r: any(fold(s).startswith("张") for s in _names(r["pats"][_ref(o)]))),
    ("subject.identifier={ident0}", lambda o, r: _ref(o) == r["p0"]),
    ("patient.gender=female", lambda o, r: r["pats"][_ref(o)]["gender"] == "female"),
]


def _ref(o: dict) -> str:
    return o["subject"]["reference"].split("/")[1]


def _names(p: dict) -> list[str]:
    n = p["name"][0]
    given = n["given"]
    return [n["family"], *given, n["text"], f"{' '.join(given)} {n['family']}", n["family"] + "".join(given)]


PATIENT_CASES = [
    ("name=zhang", lambda p, r: any(fold(s).startswith("zhang") for s in _names(p))),
    ("name=ZHANG", lambda p, r: any(fold(s).startswith("zhang") for s in _names(p))),
    ("name=muller", lambda p, r: any(fold(s).startswith("muller") for s in _names(p))),
    ("name=张", lambda p, r: any(s.startswith("张") for s in _names(p))),
    ("name:exact={name0}", lambda p, r: r["name0"] in _names(p)),
    ("name:contains=秀", lambda p, r: any("秀" in s for s in _names(p))),
    ("gender=female", lambda p, r: p["gender"] == "female"),
    ("address-city=成都", lambda p, r: any(a.get("city", "").startswith("成都") for a in p.get("address", []))),
    ("birthdate=ge2000", lambda p, r: "birthDate" in p and date_matches(period(p["birthDate"]), "ge", "2000")),
    ("birthdate=1985", lambda p, r: "birthDate" in p and date_matches(period(p["birthDate"]), "eq", "1985")),
    ("birthdate:missing=true", lambda p, r: "birthDate" not in p),
    ("_has:Observation:subject:code=4548-4",
     lambda p, r: any(_ref(o) == p["id"] and ("http://loinc.org", "4548-4") in codes(o["code"])
                      for o in r["obs"].values())),
    ("_has:Observation:subject:value-quantity=gt160",
     lambda p, r: any(_ref(o) == p["id"] and value(o) is not None and value(o) > 160 for o in r["obs"].values())),
]


def _context(region: dict) -> dict:
    p0 = sorted(region["Patient"])[0]
    return {"p0": p0, "ident0": region["Patient"][p0]["identifier"][0]["value"],
            "name0": region["Patient"][p0]["name"][0]["text"],
            "pats": region["Patient"], "obs": region["Observation"]}


@pytest.mark.parametrize(("query", "predicate"), OBSERVATION_CASES, ids=[c[0] for c in OBSERVATION_CASES])
def test_observation_search_matches_independent_evaluation(http, base, region, query, predicate):
    ctx = _context(region)
    query = query.format(**ctx)
    expected = sorted(i for i, o in region["Observation"].items() if predicate(o, ctx))
    got = search_ids(http, base, "Observation", query, region["tag"])
    assert sorted(got) == expected
    assert len(got) == len(set(got))


@pytest.mark.parametrize(("query", "predicate"), PATIENT_CASES, ids=[c[0] for c in PATIENT_CASES])
def test_patient_search_matches_independent_evaluation(http, base, region, query, predicate):
    ctx = _context(region)
    expected = sorted(i for i, p in region["Patient"].items() if predicate(p, ctx))
    assert sorted(search_ids(http, base, "Patient", query.format(**ctx), region["tag"])) == expected


def test_cases_are_not_trivially_empty(region):
    ctx = _context(region)
    empty = [q for q, pred in OBSERVATION_CASES if not any(pred(o, ctx) for o in region["Observation"].values())]
    empty += [q for q, pred in PATIENT_CASES if not any(pred(p, ctx) for p in region["Patient"].values())]
    assert empty == ["code=http://snomed.info/sct|777-3"]


def test_sort_by_date_then_id_pages_in_order_and_previous_goes_back(http, base, region):
    tag = region["tag"]
    url = f"{base}/Observation?code=718-7&_sort=-date&_tag=urn:test|{tag}&_count=7"
    pages, links = [], []
    while url:
        bundle = http.get(url).json()
        pages.append([e["resource"]["id"] for e in bundle.get("entry", [])])
        links.append({link["relation"]: link["url"] for link in bundle["link"]})
        url = links[-1].get("next")
    got = [i for page in pages for i in page]
    rows = [(obs_period(o), i) for i, o in region["Observation"].items()
            if ("http://loinc.org", "718-7") in codes(o["code"])]
    # Descending by the earliest instant of each resource's date; resources without one sort last.
    expected = [i for _, i in sorted(rows, key=lambda r: (-(r[0][0].timestamp() if r[0] else -1e18), r[1]))]
    assert got == expected
    assert "previous" not in links[0] and len(pages) >= 3
    back = http.get(links[2]["previous"]).json()
    assert [e["resource"]["id"] for e in back["entry"]] == pages[1]


def test_sort_by_string_and_token_keys(http, base, region):
    ids = search_ids(http, base, "Patient", "_sort=gender,-birthdate", region["tag"])
    assert sorted(ids) == sorted(region["Patient"])
    genders = [region["Patient"][i]["gender"] for i in ids]
    assert genders == sorted(genders)


def test_include_and_revinclude(http, base, region):
    tag = region["tag"]
    bundle = http.get(f"{base}/Observation?code=4548-4&_include=Observation:subject&_tag=urn:test|{tag}"
                      f"&_count=500").json()
    matches = [e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "match"]
    included = {e["resource"]["id"] for e in bundle["entry"] if e["search"]["mode"] == "include"}
    assert matches and included == {_ref(o) for o in matches}
    p0 = _context(region)["p0"]
    rev = http.get(f"{base}/Patient?_id={p0}&_revinclude=Observation:subject").json()
    rev_ids = {e["resource"]["id"] for e in rev["entry"] if e["search"]["mode"] == "include"}
    assert rev_ids == {i for i, o in region["Observation"].items() if _ref(o) == p0}


def test_patient_compartment_search(http, base, region):
    p0 = _context(region)["p0"]
    bundle = http.get(f"{base}/Patient/{p0}/Observation?code=718-7&_count=500").json()
    got = sorted(e["resource"]["id"] for e in bundle.get("entry", []))
    expected = sorted(i for i, o in region["Observation"].items()
                      if _ref(o) == p0 and ("http://loinc.org", "718-7") in codes(o["code"]))
    assert got == expected
    assert http.get(f"{base}/Patient/{p0}/Organization").status_code == 400


def test_total_summary_count_and_elements(http, base, region):
    tag = region["tag"]
    expected = sum(1 for o in region["Observation"].values() if o["status"] == "final")
    accurate = http.get(f"{base}/Observation?status=final&_tag=urn:test|{tag}&_total=accurate&_count=1").json()
    assert accurate["total"] == expected and len(accurate["entry"]) == 1
    assert "total" not in http.get(f"{base}/Observation?status=final&_tag=urn:test|{tag}&_count=1").json()
    counted = http.get(f"{base}/Observation?status=final&_tag=urn:test|{tag}&_summary=count").json()
    assert counted["total"] == expected and "entry" not in counted
    trimmed = http.get(f"{base}/Observation?status=final&_tag=urn:test|{tag}&_elements=status&_count=2").json()
    resource = trimmed["entry"][0]["resource"]
    assert set(resource) == {"resourceType", "id", "meta", "status", "code"}  # code is mandatory: kept
    assert {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED",
            "display": "subsetted"} in resource["meta"]["tag"]
    typed = http.get(f"{base}/Observation?status=final&_tag=urn:test|{tag}&_elements=valueQuantity&_count=50").json()
    assert any("valueQuantity" in e["resource"] for e in typed["entry"])  # named by its full name
    Observation.model_validate(next(e["resource"] for e in typed["entry"]))  # still valid (fhir.resources R4B)
    rid = trimmed["entry"][0]["resource"]["id"]
    read = http.get(f"{base}/Observation/{rid}?_elements=status").json()
    assert set(read) == {"resourceType", "id", "meta", "status", "code"}
    assert "text" not in http.get(f"{base}/Observation/{rid}?_summary=data").json()
    assert set(http.get(f"{base}/Observation/{rid}?_summary=true").json()) <= {
        "resourceType", "id", "meta", "status", "code", "subject", "effectiveDateTime", "valueQuantity", "issued",
        "identifier", "basedOn", "partOf", "category", "focus", "encounter", "effectivePeriod", "performer",
        "hasMember", "derivedFrom", "component", "implicitRules", "valueCodeableConcept", "valueString"}
    assert http.get(f"{base}/Observation/{rid}?_summary=bogus").status_code == 400
    summary = http.get(f"{base}/Observation?status=final&_tag=urn:test|{tag}&_summary=true&_count=1").json()
    assert "subject" in summary["entry"][0]["resource"] and "category" not in summary["entry"][0]["resource"]


def test_post_search_with_form_body_equals_get(http, base, region):
    tag = region["tag"]
    form = {"code": "777-3", "_tag": f"urn:test|{tag}", "_count": "500"}
    posted = http.post(f"{base}/Observation/_search", data=form,
                       headers={"Content-Type": "application/x-www-form-urlencoded"}).json()
    got = http.get(f"{base}/Observation?{urlencode(form)}").json()
    assert [e["resource"]["id"] for e in posted["entry"]] == [e["resource"]["id"] for e in got["entry"]]


def test_unknown_parameters_are_ignored_and_reported_unless_strict(http, base, region):
    """R4: a server SHOULD ignore unknown parameters (and say so), unless Prefer: handling=strict; it SHALL reject an
    unsupported modifier either way; a conditional write never ignores one of its criteria."""
    tag = region["tag"]
    strict = http.get(f"{base}/Observation?status=final&colour=red&_tag=urn:test|{tag}",
                      headers={"Prefer": "handling=strict"})
    assert strict.status_code == 400 and "colour" in strict.text
    plain = http.get(f"{base}/Observation?status=final&_tag=urn:test|{tag}&_total=accurate").json()
    for headers in ({}, {"Prefer": "handling=lenient"}):
        lenient = http.get(f"{base}/Observation?status=final&colour=red&_tag=urn:test|{tag}&_total=accurate",
                           headers=headers).json()
        outcome = [e for e in lenient["entry"] if e["search"]["mode"] == "outcome"]
        assert outcome and "colour" in outcome[0]["resource"]["issue"][0]["diagnostics"]
        assert lenient["total"] == plain["total"] > 0  # the rest of the search is applied as asked
    modifier = http.get(f"{base}/Observation?status:fuzzy=final&_tag=urn:test|{tag}")
    assert modifier.status_code == 400 and "fuzzy" in modifier.text
    wide = http.delete(f"{base}/Observation?colour=red&_tag=urn:test|{tag}")
    assert wide.status_code == 400  # conditional delete: an unknown criterion is not dropped
    assert http.get(f"{base}/Observation?_tag=urn:test|{tag}&_total=accurate").json()["total"] >= plain["total"]


def test_paging_links_stay_correct_when_data_changes_between_pages(http, base, region):
    tag = region["tag"]
    first = http.get(f"{base}/Patient?_tag=urn:test|{tag}&_count=10").json()
    ids_first = [e["resource"]["id"] for e in first["entry"]]
    next_url = next(link["url"] for link in first["link"] if link["relation"] == "next")
    http.put(f"{base}/Patient/{tag}-p0000", data=_json({"resourceType": "Patient", "id": f"{tag}-p0000",
                                                       "meta": {"tag": [{"system": "urn:test", "code": tag}]}}),
             headers={"Content-Type": FHIR_JSON})  # sorts before every other id: must not shift page 2
    second = [e["resource"]["id"] for e in http.get(next_url).json()["entry"]]
    everything = sorted(region["Patient"])
    assert ids_first + second == everything[:20]
    http.delete(f"{base}/Patient/{tag}-p0000")


def test_hostile_queries_over_http_are_400_never_5xx(http, base):
    hostile = ["code:regex=.*", "date=2024-13-01", "value-quantity=1|2",
               "_sort=nonsense", "_page=e30", "_page=" + "%7B%22v%22%3A%5B%7B%22%24gt%22%3A1%7D%5D%7D",
               "subject:Patient.identifier.x.y=1", "_include=Observation:nope", "_revinclude=*",
               "value-string=" + "a" * 600,
               "_has:Observation:subject:code:regex=1", "_count=abc"]
    for query in hostile:
        response = http.get(f"{base}/Observation?{query}")
        assert response.status_code == 400, (query, response.status_code, response.text)
        assert response.json()["resourceType"] == "OperationOutcome"
    # an operator written into a parameter's name is an unknown parameter: ignored and reported, or 400 if strict
    ignored = http.get(f"{base}/Observation?identifier[$ne]=1&_count=1").json()
    assert [e for e in ignored.get("entry", []) if e["search"]["mode"] == "outcome"]
    assert http.get(f"{base}/Observation?identifier[$ne]=1", headers={"Prefer": "handling=strict"}).status_code == 400


def test_identifier_modifiers_uri_and_last_updated(http, base):
    tag = unique("mods")
    meta = {"tag": [{"system": "urn:test", "code": tag}], "profile": [f"http://fhir.example.cn/{tag}/lab"]}
    mr = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}
    nid = unique("nid")
    with_identifier = post(http, base, observation(None, meta=meta, subject={
        "identifier": {"system": synthetic.ID_SYSTEM, "value": nid}})).json()
    post(http, base, observation(None, meta={"tag": meta["tag"]}))
    patient = post(http, base, {"resourceType": "Patient", "meta": meta, "identifier": [
        {"type": mr, "system": "urn:hospital:a", "value": f"{tag}-mrn"}, {"system": synthetic.ID_SYSTEM, "value": nid}]}
    ).json()

    def ids(rtype: str, query: str) -> list[str]:
        return search_ids(http, base, rtype, query, tag)

    assert ids("Observation", f"subject:identifier={synthetic.ID_SYSTEM}|{nid}") == [with_identifier["id"]]
    assert ids("Patient", f"identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|{tag}-mrn") == \
        [patient["id"]]
    assert ids("Patient", f"identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|{nid}") == []
    assert sorted(ids("Observation", f"_profile=http://fhir.example.cn/{tag}/lab")) == [with_identifier["id"]]
    stamp = with_identifier["meta"]["lastUpdated"]
    assert with_identifier["id"] in ids("Observation", f"_lastUpdated=ge{stamp[:19]}Z")
    assert ids("Observation", "_lastUpdated=lt2000-01-01") == []


def test_search_follows_updates_and_deletes_of_indexed_values(http, base):
    """Index values are replaced with each version: an old subject no longer finds the resource."""
    tag = unique("moved")
    meta = {"tag": [{"system": "urn:test", "code": tag}]}
    created = post(http, base, observation(None, meta=meta, subject={"reference": f"Patient/{tag}-a"})).json()
    assert search_ids(http, base, "Observation", f"subject=Patient/{tag}-a", tag) == [created["id"]]
    moved = {**created, "subject": {"reference": f"Patient/{tag}-b"}}
    http.put(f"{base}/Observation/{created['id']}", json=moved, headers={"Content-Type": FHIR_JSON})
    assert search_ids(http, base, "Observation", f"subject=Patient/{tag}-a", tag) == []
    assert search_ids(http, base, "Observation", f"subject=Patient/{tag}-b", tag) == [created["id"]]
    http.delete(f"{base}/Observation/{created['id']}")
    assert search_ids(http, base, "Observation", f"subject=Patient/{tag}-b", tag) == []


def test_date_windows_for_the_bucket_clause_are_sound() -> None:
    """The window a date search narrows to: intersect criteria, hull of OR-ed values, none when unsafe."""
    from fhirserver.fhir.search.planner import Planner
    from fhirserver.fhir.search.query import Criterion
    from fhirserver.fhir.search.values import date_buckets, date_range, hull_buckets, parse_zone

    zone = parse_zone("+08:00")
    planner = Planner(zone, None)

    def crit(*values: str) -> Criterion:
        return Criterion("date", "date", None, values, "date")

    march, april = date_range("2024-03", zone), date_range("2024-04", zone)
    assert planner.date_windows([crit("ge2024-03"), crit("lt2024-04")]) == {"date": (march.lo, april.lo)}
    assert planner.date_windows([crit("2024-03", "2024-04")]) == {"date": (march.lo, april.hi)}  # OR-ed values
    # eq January AND eq June can both hold for one resource with two dates: no common window, no narrowing
    assert planner.date_windows([crit("2024-01"), crit("2024-06")]) == {}
    assert planner.date_windows([crit("ap2024-03"), crit("lt2024-04")])["date"][0] < march.lo  # ap is left out
    assert hull_buckets([{"lo": march.lo, "hi": march.hi}, {"lo": april.lo, "hi": april.hi}]) == \
        date_buckets(march.lo, april.hi)
    assert hull_buckets([{"lo": march.lo, "hi": march.lo + 1e12}]) == ["long"]  # an open period: every window
    assert date_buckets(march.lo, april.lo) and not date_buckets(march.lo, march.lo + 1e12)  # too wide


def test_count_zero_gives_the_total_and_include_iterate_follows_references(http, base):
    """_count=0 answers how many match (clients count with it); _include:iterate follows the included
    resources' references too (DiagnosticReport -> its Observation -> that Observation's Patient)."""
    tag = unique("iterate")
    patient = post(http, base, {"resourceType": "Patient", "meta": {"tag": [{"system": "urn:test", "code": tag}]},
                                "name": [{"text": "迭代"}]}).json()
    result = post(http, base, observation(None, subject={"reference": f"Patient/{patient['id']}"},
                                          meta={"tag": [{"system": "urn:test", "code": tag}]})).json()
    report = post(http, base, {"resourceType": "DiagnosticReport", "status": "final", "code": {"text": "血常规"},
                               "meta": {"tag": [{"system": "urn:test", "code": tag}]},
                               "result": [{"reference": f"Observation/{result['id']}"}]}).json()
    counted = http.get(f"{base}/Observation?_tag=urn:test|{tag}&_count=0").json()
    assert counted["total"] == 1 and not counted.get("entry")
    found = http.get(f"{base}/DiagnosticReport", params={
        "_tag": f"urn:test|{tag}", "_include": "DiagnosticReport:result",
        "_include:iterate": "Observation:subject"}).json()
    got = {(e["resource"]["resourceType"], e["resource"]["id"], e["search"]["mode"]) for e in found["entry"]}
    assert got == {("DiagnosticReport", report["id"], "match"), ("Observation", result["id"], "include"),
                   ("Patient", patient["id"], "include")}


def test_post_with_criteria_in_the_query_is_a_conditional_create(http, base):
    """POST Patient?identifier=… (fhirpy's conditional create) creates once, then finds the same record."""
    value = unique("qcreate")
    body = {"resourceType": "Patient", "identifier": [{"system": "urn:test:q", "value": value}]}
    url = f"{base}/Patient?identifier=urn:test:q|{value}"
    first = http.post(url, json=body, headers={"Content-Type": FHIR_JSON})
    second = http.post(url, json=body, headers={"Content-Type": FHIR_JSON})
    assert first.status_code == 201 and second.status_code == 200
    assert first.json()["id"] == second.json()["id"]
    both = http.post(url, json=body, headers={"Content-Type": FHIR_JSON, "If-None-Exist": "identifier=other|x"})
    assert both.status_code == 400
    assert http.get(f"{base}/Patient?identifier=urn:test:q|{value}&_total=accurate").json()["total"] == 1


def test_system_search_over_types_pages_without_repeats_or_gaps(http, base):
    """`GET [base]?_type=Patient,Observation&_tag=…` answers the tagged resources of both types; followed with
    `_count=2`, the pages hold each resource once and end; `_total=accurate` counts both types; a parameter one of
    the types lacks is a 400 (it is not silently ignored for that type); an unknown `_type` is a 400."""
    tag = unique("sys")
    meta = {"tag": [{"system": "urn:test", "code": tag}]}
    made = set()
    for i in range(3):
        made.add("Observation/" + post(http, base, observation(f"{tag}-{i}", meta=meta)).json()["id"])
    for _ in range(2):
        patient = http.post(f"{base}/Patient", json={"resourceType": "Patient", "meta": meta}, headers={
            "Content-Type": FHIR_JSON}).json()
        made.add(f"Patient/{patient['id']}")
    seen: list[str] = []
    url: str | None = f"{base}?_type=Patient,Observation&_tag=urn:test|{tag}&_count=2&_total=accurate"
    while url:
        page = http.get(url)
        assert page.status_code == 200, page.text
        body = page.json()
        assert body["total"] == 5
        seen += [f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in body.get("entry", [])]
        url = next((link["url"] for link in body["link"] if link["relation"] == "next"), None)
        assert len(seen) <= 6
    assert sorted(seen) == sorted(made)
    narrow = http.get(f"{base}?_type=Patient,Observation&name=x")
    assert narrow.status_code == 400, narrow.text
    unknown = http.get(f"{base}?_type=Nope")
    assert unknown.status_code == 400 and unknown.json()["issue"][0]["expression"] == ["_type"], unknown.text


def test_system_history_is_newest_first_across_types_and_pages_cleanly(http, base):
    """`GET [base]/_history?_since=…` lists versions of every type newest first; followed page by page with
    `_count=2`, every version written since appears exactly once, in order."""
    import time

    since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    time.sleep(0.05)
    written = []
    obs = post(http, base, observation(unique("hist"))).json()
    written.append(f"Observation/{obs['id']}/1")
    patient = http.post(f"{base}/Patient", json={"resourceType": "Patient"}, headers={"Content-Type": FHIR_JSON})
    written.append(f"Patient/{patient.json()['id']}/1")
    updated = http.put(f"{base}/Observation/{obs['id']}", json={**obs, "status": "amended"},
                       headers={"Content-Type": FHIR_JSON})
    assert updated.status_code == 200
    written.append(f"Observation/{obs['id']}/2")
    seen: list[str] = []
    stamps: list[str] = []
    url: str | None = f"{base}/_history?_since={since}&_count=2"
    while url:
        page = http.get(url)
        assert page.status_code == 200 and page.json()["type"] == "history", page.text
        for entry in page.json().get("entry", []):
            resource = entry["resource"]
            seen.append(f"{resource['resourceType']}/{resource['id']}/{resource['meta']['versionId']}")
            stamps.append(resource["meta"]["lastUpdated"])
        url = next((link["url"] for link in page.json()["link"] if link["relation"] == "next"), None)
    mine = [s for s in seen if s in written]
    assert mine == list(reversed(written))  # newest first
    assert len(seen) == len(set(seen))
    assert stamps == sorted(stamps, reverse=True)


def test_include_wildcard_includes_every_referenced_resource(http, base):
    """`_include=Observation:*` (and `_include=*`) adds what any reference parameter of the match points to: here
    its subject and its performer; `_revinclude=*` is a 400 (no wildcard in reverse)."""
    tag = unique("wild")
    patient = http.post(f"{base}/Patient", json={"resourceType": "Patient", "meta": {"tag": [
        {"system": "urn:test", "code": tag}]}}, headers={"Content-Type": FHIR_JSON}).json()
    organization = http.post(f"{base}/Organization", json={"resourceType": "Organization", "name": "通配医院"},
                             headers={"Content-Type": FHIR_JSON}).json()
    post(http, base, {**observation(tag), "subject": {"reference": f"Patient/{patient['id']}"},
                      "performer": [{"reference": f"Organization/{organization['id']}"}]})
    for wildcard in ("Observation:*", "*"):
        found = http.get(f"{base}/Observation", params={"identifier": tag, "_include": wildcard})
        assert found.status_code == 200, found.text
        included = {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in found.json()["entry"]
                    if e["search"]["mode"] == "include"}
        assert included == {f"Patient/{patient['id']}", f"Organization/{organization['id']}"}
    assert http.get(f"{base}/Observation", params={"_revinclude": "*"}).status_code == 400


def test_observation_lastn_gives_the_newest_of_each_code(http, base):
    """Observation/$lastn?patient=…&max=2: per code, the two newest results, newest first; without a patient, 400."""
    patient = http.post(f"{base}/Patient", json={"resourceType": "Patient"}, headers={"Content-Type": FHIR_JSON}).json()
    made = {}
    for code, day_of_month in (("718-7", 1), ("718-7", 2), ("718-7", 3), ("4548-4", 5)):
        resource = {**observation(unique()), "subject": {"reference": f"Patient/{patient['id']}"},
                    "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                    "effectiveDateTime": f"2026-10-0{day_of_month}"}
        made[post(http, base, resource).json()["id"]] = (code, day_of_month)
    answer = http.get(f"{base}/Observation/$lastn", params={"patient": f"Patient/{patient['id']}", "max": 2})
    assert answer.status_code == 200, answer.text
    got = [made[e["resource"]["id"]] for e in answer.json()["entry"]]
    assert sorted(got) == [("4548-4", 5), ("718-7", 2), ("718-7", 3)]
    assert http.get(f"{base}/Observation/$lastn").status_code == 400
