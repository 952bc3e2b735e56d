"""The person behind Patient records: every hospital keeps its own record of a person; these modules tell which
records are the same person (docs/decisions/0009-person-index.md)."""
