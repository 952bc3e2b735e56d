"""Build terminology/ and our profiles/ artifacts from tools/catalog_tables.py.

    python tools/build_terminology.py
The JSON it writes is the data the server loads (and what vendors download); this script only exists so
that 300+ concepts, their maps and scopes stay consistent. All canonical URLs start with
DEFAULT_CANONICAL; the server rewrites them when FHIRSERVER_CANONICAL_BASE is set.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT))

import catalog_tables as t  # noqa: E402

from fhirserver.config import DEFAULT_CANONICAL  # noqa: E402

C = DEFAULT_CANONICAL
ITEM = f"{C}/CodeSystem/hr-item"
DATE = "2026-11-23"
ILLUSTRATIVE = ("Validity windows not published by a region, minimum institution levels and reference prices "
                "(CNY) are illustrative defaults that each region replaces in its scope ValueSet or its copy of "
                "this file. LOINC codes are those checked in the project's domain notes plus other widely used "
                "codes; verify them against your LOINC release before production use.")


def write(folder: str, resource: dict[str, Any]) -> None:
    path = ROOT / folder / f"{resource['resourceType']}-{resource['id']}.json"
    path.write_text(json.dumps(resource, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def base(resource_type: str, rid: str, name: str, title: str, description: str) -> dict[str, Any]:
    return {"resourceType": resource_type, "id": rid, "url": f"{C}/{resource_type}/{rid}", "version": "2026.1",
            "name": name, "title": title, "status": "active", "date": DATE, "publisher": "fhirserver project",
            "description": description}


def prop(code: str, kind: str, value: Any) -> dict[str, Any]:
    key = {"code": "valueCode", "integer": "valueInteger", "decimal": "valueDecimal", "boolean": "valueBoolean",
           "string": "valueString", "dateTime": "valueDateTime", "Coding": "valueCoding"}[kind]
    return {"code": code, key: value}


ITEM_PROPERTIES = [
    ("category", "code", "lab, imaging, ecg or pathology"),
    ("modality", "code", "DICOM modality of an imaging item (DX, CT, MR, US, MG)"),
    ("body-site", "code", "Body site of an imaging item (DICOM BodyPartExamined)"),
    ("specimen", "string", "Specimen of a laboratory item"),
    ("contrast", "boolean", "Whether the imaging item uses contrast"),
    ("validity-days", "integer", "Recognition validity window in days, counted from the report date (default)"),
    ("min-level", "integer", "Minimum institution level (1-3) whose result is recognized (default)"),
    ("price", "decimal", "Reference price in CNY, for savings statistics (illustrative)"),
    ("loinc", "Coding", "LOINC code of the item, where one exists"),
    ("status", "code", "active or retired"),
    ("effective-from", "dateTime", "Date the item was admitted to the catalog"),
    ("effective-to", "dateTime", "Date the item was retired from the catalog"),
]


def item_concept(code: str, zh: str, en: str, props: list[dict[str, Any]], definition: str) -> dict[str, Any]:
    return {"code": code, "display": zh, "definition": definition,
            "designation": [{"language": "en", "value": en}, {"language": "zh", "value": zh}], "property": props}


def build_items() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The hr-item CodeSystem and a flat list of (code, info) rows for scopes and maps."""
    rows: list[dict[str, Any]] = []
    lab_children = []
    for group, zh, en, specimen in t.LAB_GROUPS:
        items = []
        for n, (kind, izh, ien, loinc, days, level, price) in enumerate(t.LAB_ITEMS[group], 1):
            code = f"{group}-{n:03d}"
            props = [prop("category", "code", "lab"), prop("specimen", "string", specimen),
                     prop("validity-days", "integer", days), prop("min-level", "integer", level),
                     prop("price", "decimal", price), prop("status", "code", "active"),
                     prop("effective-from", "dateTime", "2022-07-01")]
            if loinc:
                props.append(prop("loinc", "Coding", {"system": "http://loinc.org", "code": loinc}))
            panel = "panel" if kind == "P" else "test"
            items.append(item_concept(code, izh, ien, props, f"Laboratory {panel}: {ien} ({izh})."))
            rows.append({"code": code, "zh": izh, "category": "lab", "group": group, "loinc": loinc, "days": days,
                         "panel": kind == "P"})
        lab_children.append({"code": group, "display": zh, "definition": f"{en} ({zh}).",
                             "designation": [{"language": "en", "value": en}],
                             "property": [prop("category", "code", "lab")], "concept": items})
    img_children = []
    for mod, group, zh, en, _dicom, days, level, price, price_c in t.MODALITIES:
        items = []
        for site, part, szh, sen, offered in t.BODY_SITES:
            if mod not in offered.split():
                continue
            variants = [(False, price)] + ([(True, price_c)] if price_c else [])
            for contrast, cost in variants:
                code = f"{mod}-{site}" + ("-C" if contrast else "")
                izh = _imaging_name(mod, szh, contrast)
                ien = f"{sen} {en}" + (" with contrast" if contrast else "")
                items.append(_imaging_concept(code, izh, ien, mod, part, contrast, days, level, cost,
                                              t.IMAGING_LOINC.get((mod, site, contrast))))
                rows.append({"code": code, "zh": izh, "category": "imaging", "group": group, "modality": mod,
                             "part": part, "contrast": contrast, "days": days, "loinc": ""})
        for code, sgroup, izh, ien, dmod, part, contrast, sdays, slevel, cost in t.SPECIAL_IMAGING:
            if sgroup == group:
                items.append(_imaging_concept(code, izh, ien, dmod, part, contrast, sdays, slevel, cost, None))
                rows.append({"code": code, "zh": izh, "category": "imaging", "group": group, "modality": dmod,
                             "part": part, "contrast": contrast, "days": sdays, "loinc": "", "special": True})
        img_children.append({"code": group, "display": zh, "definition": f"{en} ({zh}).",
                             "designation": [{"language": "en", "value": en}],
                             "property": [prop("category", "code", "imaging")], "concept": items})
    others: dict[str, list[dict[str, Any]]] = {"ECG": [], "PATH": []}
    for category, code, izh, ien, loinc, days, level, price in t.OTHER_ITEMS:
        props = [prop("category", "code", category.lower() if category == "ECG" else "pathology"),
                 prop("validity-days", "integer", days), prop("min-level", "integer", level),
                 prop("price", "decimal", price), prop("status", "code", "active"),
                 prop("effective-from", "dateTime", "2024-01-01")]
        others[category].append(item_concept(code, izh, ien, props, f"{ien} ({izh})."))
        rows.append({"code": code, "zh": izh, "category": category.lower(), "group": category, "days": days,
                     "loinc": loinc})
    # A retired item: the list changes over time (admission and exit of items).
    retired = item_concept("DX-SKULL-OLD", "头颅正侧位(旧编码)", "Skull PA and lateral (retired code)", [
        prop("category", "code", "imaging"), prop("modality", "code", "DX"), prop("body-site", "code", "SKULL"),
        prop("validity-days", "integer", 30), prop("min-level", "integer", 1), prop("price", "decimal", 80),
        prop("status", "code", "retired"), prop("effective-from", "dateTime", "2022-07-01"),
        prop("effective-to", "dateTime", "2025-01-01")], "Retired 2025-01-01; replaced by DX-SKULL.")
    img_children[0]["concept"].append(retired)
    concepts = [
        {"code": "LAB", "display": "检验", "definition": "Laboratory tests (检验).",
         "designation": [{"language": "en", "value": "Laboratory"}], "concept": lab_children},
        {"code": "IMG", "display": "检查-影像", "definition": "Imaging examinations (影像检查).",
         "designation": [{"language": "en", "value": "Imaging"}], "concept": img_children},
        {"code": "ECG", "display": "心电图", "definition": "Electrocardiography.",
         "designation": [{"language": "en", "value": "ECG"}], "concept": others["ECG"]},
        {"code": "PATH", "display": "病理", "definition": "Pathology.",
         "designation": [{"language": "en", "value": "Pathology"}], "concept": others["PATH"]},
    ]
    count = sum(1 for r in rows)
    cs = base("CodeSystem", "hr-item", "HRRecognizedItem", "互认项目 Recognized items",
              f"Platform item codes (互认编码) of results recognized between hospitals: {count} items in a "
              f"hierarchy category -> sub-category -> item, with properties used by the recognition rules. "
              f"{ILLUSTRATIVE}")
    cs.update({"caseSensitive": True, "hierarchyMeaning": "is-a", "content": "complete", "count": count + 1,
               "property": [{"code": c, "uri": f"{C}/CodeSystem/hr-item#{c}", "type": k, "description": d}
                            for c, k, d in ITEM_PROPERTIES],
               "concept": concepts})
    return cs, rows


_MOD_ZH = {"DX": "DR", "CT": "CT", "MR": "MR", "US": "超声", "MG": "钼靶"}


def _imaging_name(mod: str, site_zh: str, contrast: bool) -> str:
    if mod in ("CT", "MR"):
        return f"{site_zh}{_MOD_ZH[mod]}{'增强' if contrast else '平扫'}"
    return f"{site_zh}{_MOD_ZH[mod]}"


def _imaging_concept(code: str, zh: str, en: str, mod: str, part: str, contrast: bool, days: int, level: int,
                     price: int, loinc: str | None) -> dict[str, Any]:
    props = [prop("category", "code", "imaging"), prop("modality", "code", mod), prop("body-site", "code", part),
             prop("contrast", "boolean", contrast), prop("validity-days", "integer", days),
             prop("min-level", "integer", level), prop("price", "decimal", price), prop("status", "code", "active"),
             prop("effective-from", "dateTime", "2022-07-01")]
    if loinc:
        props.append(prop("loinc", "Coding", {"system": "http://loinc.org", "code": loinc}))
    return item_concept(code, zh, en, props, f"Imaging examination: {en} ({zh}).")


def simple_codesystem(rid: str, name: str, title: str, description: str, concepts: list[dict[str, Any]],
                      properties: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    cs = base("CodeSystem", rid, name, title, description)
    cs.update({"caseSensitive": True, "content": "complete", "hierarchyMeaning": "is-a",
               "count": _count(concepts), "concept": concepts})
    if properties:
        cs["property"] = properties
    return cs


def _count(concepts: list[dict[str, Any]]) -> int:
    return sum(1 + _count(c.get("concept", [])) for c in concepts)


def valueset(rid: str, name: str, title: str, description: str, includes: list[dict[str, Any]]) -> dict[str, Any]:
    vs = base("ValueSet", rid, name, title, description)
    vs["compose"] = {"include": includes}
    return vs


def scope(rid: str, region: str, title: str, codes: list[str], description: str,
          overrides: dict[str, int] | None = None, regions: tuple[str, ...] = ()) -> dict[str, Any]:
    concepts = []
    for code in codes:
        concept: dict[str, Any] = {"code": code}
        if overrides and code in overrides:
            concept["extension"] = [{"url": f"{C}/StructureDefinition/hr-validity-days",
                                     "valueInteger": overrides[code]}]
        concepts.append(concept)
    vs = valueset(rid, f"HRScope{region}", title, description, [{"system": ITEM, "concept": concepts}])
    vs["useContext"] = [{"code": {"system": "http://terminology.hl7.org/CodeSystem/usage-context-type",
                                  "code": "focus"},
                         "valueCodeableConcept": {"coding": [{"system": f"{C}/CodeSystem/hr-region", "code": r}]}}
                        for r in (regions or (region,))]
    return vs


def main() -> None:
    (ROOT / "terminology").mkdir(exist_ok=True)
    items, rows = build_items()
    write("terminology", items)
    active = [r for r in rows]
    lab = [r["code"] for r in active if r["category"] == "lab"]
    imaging = [r["code"] for r in active if r["category"] == "imaging"]
    write("terminology", valueset("hr-scope-national", "HRScopeNational", "全国互认项目 National scope",
                                  "Every active recognized item.",
                                  [{"system": ITEM, "filter": [{"property": "status", "op": "=", "value": "active"}]}]))
    sichuan = lab[:16] + imaging[:53]
    write("terminology", scope("hr-scope-510000", "510000", "四川省互认项目 Sichuan scope", sichuan,
                               "Sichuan (July 2022 work plan): 16 laboratory and 53 imaging items. The item choice "
                               "is illustrative; the counts follow the published plan."))
    chongqing = lab[:20] + imaging[:80]
    write("terminology", scope("hr-scope-500000", "500000", "重庆市互认项目 Chongqing scope", chongqing,
                               "Chongqing: 80 standardised imaging items and 20 laboratory items (illustrative "
                               "choice). Chongqing reminds doctors of a repeat within 3 months, so radiography (DR) "
                               "results are recognized for 90 days here, overriding the 30-day default.",
                               {c: 90 for c in chongqing if c.startswith("DX-")}))
    guizhou = lab[:79] + imaging
    write("terminology", scope("hr-scope-520000", "520000", "贵州省互认项目 Guizhou scope", guizhou,
                               "Guizhou: 79 laboratory items and every imaging item of the catalog (the province "
                               "reports 397 imaging items; the catalog holds fewer)."))
    hunan = (lab + imaging)[:213]
    write("terminology", scope("hr-scope-430000", "430000", "湖南省互认项目 Hunan scope", hunan,
                               "Hunan (Changde 2025 list size): 213 items, illustrative choice."))
    chuanyu = list(dict.fromkeys(sichuan + chongqing + lab[20:60] + imaging[80:120]))[:161]
    write("terminology", scope("hr-scope-chuanyu", "510000", "川渝互认项目 Sichuan-Chongqing agreement", chuanyu,
                               "Sichuan-Chongqing cross-province agreement: 161 items recognized in 935 hospitals. "
                               "Applies to results used in one province and performed in the other.",
                               regions=("510000", "500000")))
    for category, zh in (("lab", "检验"), ("imaging", "影像检查"), ("ecg", "心电图"), ("pathology", "病理")):
        write("terminology", valueset(f"hr-category-{category}", f"HRCategory{category.title()}",
                                      f"{zh}项目 {category} items", f"Every {category} item.",
                                      [{"system": ITEM, "filter": [{"property": "category", "op": "=",
                                                                   "value": category}]}]))
    build_small_codesystems()
    build_conceptmaps(rows)
    build_bodypart_map()
    build_profiles()
    print(f"{len(rows)} items; scopes: sichuan {len(sichuan)}, chongqing {len(chongqing)}, guizhou {len(guizhou)}, "
          f"hunan {len(hunan)}, chuanyu {len(chuanyu)}")


def build_small_codesystems() -> None:
    national = [
        ("condition-changed", "病情变化", "The condition changed; the earlier result no longer matches symptoms or diagnosis."),
        ("fast-changing", "变化较快", "The item changes quickly as the disease evolves."),
        ("before-major-intervention", "重大措施前", "Before surgery, transfusion or another major intervention."),
        ("emergency", "急诊急救", "Emergency or rescue."),
        ("appraisal", "司法/伤残/病退鉴定", "Forensic, disability or retirement appraisal."),
        ("other", "其他确需复查", "Other cases that genuinely need a repeat; a free-text explanation is required."),
    ]
    regional = [
        ("patient-request", "患者要求复查", "The patient asks for a repeat after explanation.", "500000"),
        ("qc-failed", "质控不合格", "The earlier result failed quality assessment.", "520000"),
        ("result-outdated", "结果过期", "The earlier result is considered outdated by the region.", "510000"),
    ]
    not_recognized = [
        ("outside-window", "超出有效期", "The result is older than the item's validity window."),
        ("not-in-scope", "不在互认范围", "The item is not on the recognized list of the scope where it is used."),
        ("performer-not-admitted", "机构未纳入互认", "The performing institution was not admitted to the network on the result date."),
        ("performer-not-qc", "机构质控未通过", "The performing institution is not quality-control accredited for the category."),
        ("performer-level-too-low", "机构级别不足", "The performing institution's level is below the item's minimum."),
        ("status-not-final", "结果非终审", "Preliminary, cancelled or entered-in-error results are never recognized."),
        ("superseded", "已被更新", "A later version or result supersedes this one."),
        ("no-consent", "未获患者同意", "The patient's consent to share the result is missing."),
    ]
    scope_property = [{"code": "scope", "type": "code",
                       "description": "national, or the GB/T 2260 code of the region that added the code"},
                      {"code": "free-text-required", "type": "boolean",
                       "description": "The doctor must explain the reason in text"}]
    exception_concepts = [
        {"code": "exception", "display": "可不互认情形", "definition": "Situations in which the doctor may repeat a "
         "test (国卫医发〔2022〕6号); the doctor explains to the patient and the reason is recorded.",
         "concept": [{"code": c, "display": d, "definition": e, "property": [
             {"code": "scope", "valueCode": "national"},
             {"code": "free-text-required", "valueBoolean": c == "other"}]} for c, d, e in national]
         + [{"code": c, "display": d, "definition": e + " Region-specific addition, not a national code.",
             "property": [{"code": "scope", "valueCode": r}]} for c, d, e, r in regional]},
        {"code": "not-recognized", "display": "不予互认原因", "definition": "Why a prior result is not recognizable.",
         "concept": [{"code": c, "display": d, "definition": e} for c, d, e in not_recognized]},
    ]
    write("terminology", simple_codesystem(
        "hr-exception", "HRException", "互认例外与不予互认原因 Exceptions and non-recognition reasons",
        "The six national situations that justify a repeat (with region-specific additions marked by their "
        "scope) and the reasons a result is not recognized.", exception_concepts, scope_property))
    write("terminology", valueset("hr-exception-reasons", "HRExceptionReasons", "复查理由 Re-order reasons",
                                  "Reasons a doctor may give for re-ordering despite a recognizable result.",
                                  [{"system": f"{C}/CodeSystem/hr-exception",
                                    "filter": [{"property": "concept", "op": "descendent-of", "value": "exception"}]}]))
    levels = [{"code": str(n), "display": zh, "definition": f"Level {n} institution ({zh}).",
               "concept": [{"code": f"{n}{g}", "display": f"{zh}{gz}", "definition": f"Level {n}, grade {g}."}
                           for g, gz in (("A", "甲等"), ("B", "乙等"), ("C", "丙等"))]}
              for n, zh in ((1, "一级"), (2, "二级"), (3, "三级"))]
    write("terminology", simple_codesystem("hr-institution-level", "HRInstitutionLevel", "医疗机构级别 Institution level",
                                           "Tiers 一级/二级/三级 with grades 甲/乙/丙 below them.", levels))
    write("terminology", valueset("hr-institution-level", "HRInstitutionLevel", "医疗机构级别 Institution level",
                                  "All institution levels and grades.",
                                  [{"system": f"{C}/CodeSystem/hr-institution-level"}]))
    write("terminology", simple_codesystem("hr-detected-issue", "HRDetectedIssue", "互认提示 Recognition prompt",
                                           "Codes of the DetectedIssue raised when an ordered test has a prior result.", [
        {"code": "recognizable", "display": "有可互认结果", "definition": "A recognizable prior result exists."},
        {"code": "not-recognizable", "display": "有结果但不可互认",
         "definition": "A prior result exists but is not recognizable (see the reasons)."}]))
    write("terminology", simple_codesystem("hr-affiliation", "HRAffiliation", "互认网络关系 Network affiliation",
                                           "OrganizationAffiliation.code values of the recognition network.", [
        {"code": "network-member", "display": "互认网络成员", "definition": "Admitted to the recognition network."},
        {"code": "qc-accredited", "display": "质控认证", "definition":
         "Passed quality control for the category given in OrganizationAffiliation.specialty."}]))
    write("terminology", valueset("hr-affiliation", "HRAffiliation", "互认网络关系 Network affiliation",
                                  "All affiliation codes.", [{"system": f"{C}/CodeSystem/hr-affiliation"}]))
    write("terminology", simple_codesystem("hr-qc-status", "HRQcStatus", "质控状态 Quality-control status",
                                           "Quality-control evaluation status of an institution for a category.", [
        {"code": c, "display": d, "definition": e} for c, d, e in (
            ("passed", "质控合格", "Passed the evaluation."), ("failed", "质控不合格", "Failed the evaluation."),
            ("pending", "待评估", "Not evaluated yet."), ("suspended", "暂停互认", "Recognition suspended."))]))
    write("terminology", simple_codesystem("hr-identity", "HRIdentity", "身份核验 Identity check",
                                           "Server-computed tags (meta.tag) of Patient records whose national "
                                           "resident ID cannot link them to the person's other records.", [
        {"code": c, "display": d, "definition": e} for c, d, e in (
            ("invalid-id", "身份证号无效", "The resident ID fails GB 11643 (shape, check character or birth date)."),
            ("contradicted-id", "身份证号与记录矛盾",
             "The record's birthDate or gender contradicts what its resident ID encodes."))]))
    write("terminology", simple_codesystem("hr-decision", "HRDecision", "互认决定 Recognition decision",
                                           "Outcome of a recognition decision for one prior result.", [
        {"code": c, "display": d, "definition": e} for c, d, e in (
            ("recognized", "予以互认", "The prior result is recognized; no repeat."),
            ("not-recognized", "不予互认", "The prior result is not recognizable."),
            ("repeat-justified", "有理由复查", "Recognizable, but the doctor repeats for a recorded exception."))]))
    provinces = [r for r in t.REGIONS if r[0].endswith("0000")]
    regions = []
    for code, zh, en in provinces:
        children = [{"code": c, "display": z, "designation": [{"language": "en", "value": e}]}
                    for c, z, e in t.REGIONS if c != code and c[:2] == code[:2]]
        concept: dict[str, Any] = {"code": code, "display": zh, "designation": [{"language": "en", "value": en}]}
        if children:
            concept["concept"] = children
        regions.append(concept)
    write("terminology", simple_codesystem("hr-event", "HREvent", "互认事件 Recognition events",
                                           "AuditEvent.type of the events the statistics count.", [
        {"code": c, "display": d, "definition": e} for c, d, e in (
            ("view", "跨机构调阅", "A result of another institution was looked up for a patient."),
            ("duplicate-prompt", "重复检查提示", "The doctor was told at ordering that a recognizable result exists."),
            ("recognition", "结果互认", "A doctor used a prior result instead of a new test (a repeat avoided)."),
            ("override", "复查(有理由)", "A doctor re-ordered despite a recognizable result, giving a reason."))]))
    marks = [("hr-scope-national", "HR", "National recognition mark"), ("hr-scope-510000", "川HR", "Sichuan"),
             ("hr-scope-500000", "渝HR", "Chongqing"), ("hr-scope-520000", "黔HR", "Guizhou"),
             ("hr-scope-430000", "湘HR", "Hunan"), ("hr-scope-chuanyu", "川渝HR", "Sichuan-Chongqing")]
    write("terminology", simple_codesystem("hr-mark", "HRMark", "互认标识 Recognition mark",
                                           "The mark printed on recognized reports (2022 Measures: 'HR'), one code per "
                                           "scope; computed by the server, never taken from the sender.", [
        {"code": c, "display": d, "definition": f"{e}: the report's item is recognized in {c}."} for c, d, e in marks]))
    write("terminology", simple_codesystem("hr-region", "HRRegion", "行政区划 Administrative regions (GB/T 2260)",
                                           "GB/T 2260 administrative division codes of the regions used here.", regions))
    write("terminology", valueset("hr-region", "HRRegion", "行政区划 Administrative regions",
                                  "All regions.", [{"system": f"{C}/CodeSystem/hr-region"}]))


def build_conceptmaps(rows: list[dict[str, Any]]) -> None:
    loinc = base("ConceptMap", "hr-loinc-to-item", "HRLoincToItem", "LOINC -> 互认项目",
                 "LOINC codes to recognized items (from the items' loinc property).")
    loinc.update({"sourceUri": "http://loinc.org", "targetUri": f"{C}/ValueSet/hr-scope-national",
                  "group": [{"source": "http://loinc.org", "target": ITEM, "element": [
                      {"code": r["loinc"], "target": [{"code": r["code"], "display": r["zh"], "equivalence": "equivalent"}]}
                      for r in rows if r.get("loinc")] + _imaging_loinc()}]})
    write("terminology", loinc)
    for index, (hid, zh, en, _region, lab_prefix, img_prefix) in enumerate(t.HOSPITALS):
        lab_rows = [r for r in rows if r["category"] == "lab"][index::1][: 60 + 10 * index]
        img_rows = [r for r in rows if r["category"] == "imaging"][: 80 + 20 * index]
        cm = base("ConceptMap", f"hr-local-{hid}-to-item", f"HRLocal{hid.title().replace('-', '')}",
                  f"{zh}本地编码 -> 互认项目", f"Local LIS/PACS codes of {en} ({zh}, demo) to recognized items.")
        cm.update({"sourceUri": f"http://{hid}.example.cn/fhir/ValueSet/local-codes",
                   "targetUri": f"{C}/ValueSet/hr-scope-national", "group": [
            {"source": f"http://{hid}.example.cn/CodeSystem/lis", "target": ITEM, "element": [
                {"code": f"{lab_prefix}{n:04d}", "display": r["zh"],
                 "target": [{"code": r["code"], "equivalence": "equivalent"}]} for n, r in enumerate(lab_rows, 1)]},
            {"source": f"http://{hid}.example.cn/CodeSystem/pacs", "target": ITEM, "element": [
                {"code": f"{img_prefix}{n:04d}", "display": r["zh"],
                 "target": [{"code": r["code"], "equivalence": "equivalent"}]} for n, r in enumerate(img_rows, 1)]}]})
        write("terminology", cm)
    dicom = base("ConceptMap", "hr-dicom-to-item", "HRDicomToItem", "DICOM -> 互认项目",
                 "DICOM Modality with BodyPartExamined and contrast to imaging items, for studies ingested from DICOM.")
    by_modality: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["category"] != "imaging" or r.get("special"):
            continue
        dicom_codes = next(m[4] for m in t.MODALITIES if m[0] == r["modality"])
        for dicom_code in dicom_codes:
            by_modality.setdefault(dicom_code, []).append({
                "code": r["code"], "display": r["zh"], "equivalence": "equivalent",
                "dependsOn": [{"property": f"{C}/dicom#BodyPartExamined", "value": r["part"]},
                              {"property": f"{C}/dicom#contrast", "value": "true" if r["contrast"] else "false"}]})
    dicom.update({"sourceUri": "http://dicom.nema.org/resources/ontology/DCM",
                  "targetUri": f"{C}/ValueSet/hr-category-imaging",
                  "group": [{"source": "http://dicom.nema.org/resources/ontology/DCM", "target": ITEM,
                             "element": [{"code": m, "target": targets} for m, targets in by_modality.items()]}]})
    write("terminology", dicom)


# DICOM BodyPartExamined -> SNOMED CT body structure, for ImagingStudy.series.bodySite (only codes we are sure of).
BODY_PART_SNOMED = {"HEAD": ("69536005", "Head structure"), "BRAIN": ("12738006", "Brain structure"),
                    "NECK": ("45048000", "Neck structure"), "CHEST": ("51185008", "Thoracic structure"),
                    "ABDOMEN": ("113345001", "Abdominal structure"), "PELVIS": ("12921003", "Pelvic structure"),
                    "HEART": ("80891009", "Heart structure"), "LIVER": ("10200004", "Liver structure"),
                    "KIDNEY": ("64033007", "Kidney structure"), "KNEE": ("72696002", "Knee region structure")}


def build_bodypart_map() -> None:
    cm = base("ConceptMap", "hr-dicom-bodypart-to-snomed", "HRDicomBodyPartToSnomed", "DICOM 检查部位 -> SNOMED CT",
              "DICOM BodyPartExamined values to SNOMED CT body structures (the values whose code is certain).")
    cm.update({"sourceUri": "http://dicom.nema.org/resources/ontology/DCM", "targetUri": "http://snomed.info/sct?fhir_vs",
               "group": [{"source": "http://dicom.nema.org/resources/ontology/DCM", "target": "http://snomed.info/sct",
                          "element": [{"code": part, "target": [{"code": code, "display": display, "equivalence": "equivalent"}]}
                                      for part, (code, display) in BODY_PART_SNOMED.items()]}]})
    write("terminology", cm)


def _imaging_loinc() -> list[dict[str, Any]]:
    out = []
    for (mod, site, contrast), code in t.IMAGING_LOINC.items():
        item = f"{mod}-{site}" + ("-C" if contrast else "")
        out.append({"code": code, "target": [{"code": item, "equivalence": "equivalent"}]})
    return out


def build_profiles() -> None:
    from profile_tables import profiles

    for resource in profiles(C):
        write("profiles", resource)


if __name__ == "__main__":
    main()
