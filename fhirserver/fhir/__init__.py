"""FHIR semantics: parsing, validation, versioning rules, search definitions. Knows nothing of HTTP."""
