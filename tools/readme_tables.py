"""Print (or --write into README.md) the README's generated tables: search parameters (from profiles/)
and the shipped terminology and profile artifacts (from terminology/ and profiles/).

    python tools/readme_tables.py --write
tests/test_readme.py fails when the README's copy differs from what this prints.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fhirserver.fhir.resource_types import SUPPORTED_TYPES  # noqa: E402
from fhirserver.fhir.search.indexer import INDEXABLE_TYPES  # noqa: E402
from fhirserver.fhir.search.parameters import SearchParameterRegistry  # noqa: E402
from fhirserver.fhir.search.query import MODIFIERS, VALUE_FORMS  # noqa: E402

START, END = "<!-- search-table:start -->", "<!-- search-table:end -->"
ARTIFACTS_START, ARTIFACTS_END = "<!-- artifacts-table:start -->", "<!-- artifacts-table:end -->"
RULES_START, RULES_END = "<!-- rules-table:start -->", "<!-- rules-table:end -->"
SCOPES_START, SCOPES_END = "<!-- scopes-table:start -->", "<!-- scopes-table:end -->"
LOINC_START, LOINC_END = "<!-- loinc-table:start -->", "<!-- loinc-table:end -->"


def table() -> str:
    registry = SearchParameterRegistry(ROOT / "profiles", INDEXABLE_TYPES)
    lines = ["| type | value forms | modifiers |", "|---|---|---|"]
    for kind, forms in VALUE_FORMS.items():
        modifiers = ", ".join(f"`:{m}`" for m in sorted(MODIFIERS[kind]))
        if kind == "reference":
            modifiers += ", `:[Type]`"
        lines.append(f"| {kind} | {forms} | {modifiers} |")
    lines += ["", "| resource | parameters (all types above; `_id` on every type) |", "|---|---|"]
    for rtype in SUPPORTED_TYPES:
        names = sorted(c for c in registry.for_type(rtype) if c != "_id")
        lines.append(f"| {rtype} | {', '.join(f'`{n}`' for n in names)} |")
    return "\n".join(lines)


def artifacts_table() -> str:
    import json

    lines = ["| resource | title | what |", "|---|---|---|"]
    paths = sorted(ROOT.glob("terminology/*.json")) + sorted(ROOT.glob("profiles/*-hr-*.json"))
    for path in paths:
        resource = json.loads(path.read_text(encoding="utf-8"))
        what = resource.get("description", "").split(". ")[0].rstrip(".")
        if resource["resourceType"] == "CodeSystem":
            what += f" ({resource.get('count', 0)} concepts)"
        elif resource["resourceType"] == "ValueSet" and "concept" in resource["compose"]["include"][0]:
            what += f" ({len(resource['compose']['include'][0]['concept'])} items)"
        lines.append(f"| `{resource['resourceType']}/{resource['id']}` | {resource.get('title', resource.get('name'))} "
                     f"| {what} |")
    return "\n".join(lines)


def rules_table() -> str:
    """Reasons and exceptions from CodeSystem hr-exception; default windows from CodeSystem hr-item."""
    import json

    cs = json.loads((ROOT / "terminology" / "CodeSystem-hr-exception.json").read_text(encoding="utf-8"))
    groups = {g["code"]: g for g in cs["concept"]}
    lines = ["| reason (`hr-exception`) | 中文 | when |", "|---|---|---|"]
    for concept in groups["not-recognized"]["concept"]:
        lines.append(f"| `{concept['code']}` | {concept['display']} | {concept['definition']} |")
    lines += ["", "| clinical exception (the doctor's judgement) | 中文 | scope |", "|---|---|---|"]
    for concept in groups["exception"]["concept"]:
        scope = next((p["valueCode"] for p in concept.get("property", []) if p["code"] == "scope"), "national")
        lines.append(f"| `{concept['code']}` | {concept['display']} | {scope} |")
    items = json.loads((ROOT / "terminology" / "CodeSystem-hr-item.json").read_text(encoding="utf-8"))
    lines += ["", "| sub-category | items | default validity window (days) | min. level |", "|---|---|---|---|"]
    for category in items["concept"]:
        children = category.get("concept", [])
        groups = children if any("concept" in c for c in children) else [category]  # ECG, PATH: items directly
        for group in groups:
            leaves = group.get("concept", [group])
            days = [p["valueInteger"] for c in leaves for p in c.get("property", []) if p["code"] == "validity-days"]
            levels = [p["valueInteger"] for c in leaves for p in c.get("property", []) if p["code"] == "min-level"]
            if days:
                span = f"{min(days)}" if min(days) == max(days) else f"{min(days)}-{max(days)}"
                level = f"{min(levels)}" if min(levels) == max(levels) else f"{min(levels)}-{max(levels)}"
                lines.append(f"| {group['code']} {group['display']} | {len(leaves)} | {span} | {level} |")
    return "\n".join(lines)


def scopes_table() -> str:
    """The scopes with their versions side by side: where each applies, when it is in force, what it waives."""
    import json

    lines = ["| scope (`ValueSet`) | version | in force | applies | items | level rule |", "|---|---|---|---|---|---|"]
    for path in sorted(ROOT.glob("terminology/ValueSet-hr-scope-*.json")):
        vs = json.loads(path.read_text(encoding="utf-8"))
        if vs["id"] == "hr-scope-national":
            continue
        period = next((e["valuePeriod"] for e in vs.get("extension", [])
                       if e["url"].endswith("resource-effectivePeriod")), {})
        focus = [c["code"] for u in vs.get("useContext", []) for c in u["valueCodeableConcept"]["coding"]]
        applies = ("members of one close medical alliance" if focus == ["alliance-member"]
                   else " + ".join(focus) if len(focus) > 1 else f"in {focus[0]}")
        include = vs["compose"]["include"][0]
        items = str(len(include["concept"])) if "concept" in include else "all active"
        pairs: dict[int, list[int]] = {}
        for e in vs.get("extension", []):
            if e["url"].endswith("/hr-level-direction"):
                parts = {x["url"]: x["valueInteger"] for x in e["extension"]}
                pairs.setdefault(parts["requester"], []).append(parts["performer"])
        waived = any(e["url"].endswith("/hr-min-level-applies") and e["valueBoolean"] is False
                     for e in vs.get("extension", []))
        rule = "; ".join(f"level {r} takes {', '.join(map(str, sorted(p)))}" for r, p in sorted(pairs.items()))
        rule = "no item minimum, no direction" if waived else (rule or "item minimum only")
        lines.append(f"| `{vs['url'].rsplit('/', 1)[-1]}` | {vs.get('version', '')} "
                     f"| {period.get('start', '…')} – {period.get('end', '')} | {applies} | {items} | {rule} |")
    return "\n".join(lines)


def loinc_table() -> str:
    """LOINC coverage of the catalog per category (from the items' loinc property)."""
    import json

    items = json.loads((ROOT / "terminology" / "CodeSystem-hr-item.json").read_text(encoding="utf-8"))
    lines = ["| category | items | with a LOINC code | coverage |", "|---|---|---|---|"]

    def leaves(node: dict) -> list[dict]:
        children = node.get("concept", [])
        return [x for c in children for x in leaves(c)] if children else [node]

    for category in items["concept"]:
        found = [c for c in leaves(category) if any(p["code"] == "status" and p["valueCode"] == "active"
                                                     for p in c.get("property", []))]
        coded = [c for c in found if any(p["code"] == "loinc" for p in c.get("property", []))]
        lines.append(f"| {category['code']} {category['display']} | {len(found)} | {len(coded)} | "
                     f"{100 * len(coded) // max(1, len(found))}% |")
    return "\n".join(lines)


def generated() -> list[tuple[str, str, str]]:
    return [(START, table(), END), (ARTIFACTS_START, artifacts_table(), ARTIFACTS_END),
            (RULES_START, rules_table(), RULES_END), (SCOPES_START, scopes_table(), SCOPES_END),
            (LOINC_START, loinc_table(), LOINC_END)]


def main() -> None:
    if "--write" in sys.argv:
        readme = ROOT / "README.md"
        text = readme.read_text(encoding="utf-8")
        for start, body, end in generated():
            head, _, rest = text.partition(start)
            _, _, tail = rest.partition(end)
            text = head + f"{start}\n{body}\n{end}" + tail
        readme.write_text(text, encoding="utf-8")
    else:
        for start, body, end in generated():
            print(f"{start}\n{body}\n{end}")


if __name__ == "__main__":
    main()
