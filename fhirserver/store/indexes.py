"""The collections and MongoDB indexes the store needs, as data.

Per resource type: `<Type>` holds the current version (`_id` = logical id), `<Type>_history` every version
(`_id` = "<id>/<version>", unique: that key is what makes concurrent writers safe). Search fields get ordinary
(multikey) indexes; a date parameter is indexed through its 30-day buckets (`sp.<code>__b`), since an index on
the range sub-documents cannot bound a range. `pk` (the partition key) is indexed where it is written: it is
the shard key of patient-compartment collections (README: Scaling out). `_locks` serialises conditional writes.
"""

from __future__ import annotations

from dataclasses import dataclass

LOCKS = "_locks"
GENERATIONS = "_generations"  # change counters (store/locks.py)
CDS_CARDS = "_cds_cards"
BUCKET_SUFFIX = "__b"


@dataclass(frozen=True)
class IndexSpec:
    name: str
    keys: tuple[tuple[str, int], ...]
    unique: bool = False


def field_name(code: str) -> str:
    """Search parameter code -> stored field name. Hyphens become underscores (kept from the first engine,
    which could not index such names; FHIR codes use '-' and never '_' inside, so the mapping is one to one)."""
    return code.replace("-", "_")


def index_field(code: str) -> str:
    return f"sp.{field_name(code)}"


def history_collection(resource_type: str) -> str:
    return f"{resource_type}_history"


def collection_indexes(resource_types: tuple[str, ...], indexed_parameters: dict[str, list[str]],
                       bucketed: frozenset[str] = frozenset(), partitioned: frozenset[str] = frozenset(),
                       ) -> dict[str, list[IndexSpec]]:
    """Every collection and its indexes. `bucketed`: date parameter codes indexed by bucket; `partitioned`: the
    types whose documents carry `pk`."""
    out: dict[str, list[IndexSpec]] = {LOCKS: [], CDS_CARDS: [], GENERATIONS: []}
    for rtype in resource_types:
        fields = [index_field(code) + (BUCKET_SUFFIX if code in bucketed else "")
                  for code in indexed_parameters.get(rtype, [])]
        out[rtype] = [IndexSpec(field.replace(".", "_"), ((field, 1),)) for field in fields]
        out[history_collection(rtype)] = [
            IndexSpec("rid_vid", (("rid", 1), ("vid", -1)), unique=True),
            IndexSpec("ts", (("ts", -1),)),
        ]
        if rtype in partitioned:
            out[rtype].append(IndexSpec("pk", (("pk", 1),)))
            out[history_collection(rtype)].append(IndexSpec("pk", (("pk", 1),)))
    return out


def indexed_fields(specs: dict[str, list[IndexSpec]]) -> dict[str, frozenset[str]]:
    """Per collection, the fields that lead an index (where a query can start)."""
    return {name: frozenset(spec.keys[0][0] for spec in indexes) for name, indexes in specs.items()}
