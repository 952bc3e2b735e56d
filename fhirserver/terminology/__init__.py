"""Terminology service over the CodeSystems, ValueSets and ConceptMaps in the top-level terminology/ folder."""
