"""Errors as values: a FhirError carries what the OperationOutcome will say, rendered in one place.

Issue codes come from the FHIR IssueType value set (http://hl7.org/fhir/valueset-issue-type.html).
Never put exception text from libraries in `diagnostics`: say what the client got wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Issue:
    """One OperationOutcome.issue."""

    code: str
    diagnostics: str
    severity: str = "error"
    expression: tuple[str, ...] = ()

    def to_fhir(self) -> dict[str, Any]:
        issue: dict[str, Any] = {"severity": self.severity, "code": self.code, "diagnostics": self.diagnostics}
        if self.expression:
            issue["expression"] = list(self.expression)
        return issue


@dataclass
class FhirError(Exception):
    """A failed request: HTTP status plus the issues that explain it."""

    status: int
    issues: list[Issue] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        status: int,
        code: str,
        diagnostics: str,
        expression: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> FhirError:
        issue = Issue(code=code, diagnostics=diagnostics, expression=(expression,) if expression else ())
        return cls(status=status, issues=[issue], headers=headers or {})

    def __str__(self) -> str:
        return f"{self.status}: " + "; ".join(i.diagnostics for i in self.issues)


def operation_outcome(issues: list[Issue]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [i.to_fhir() for i in issues]}


def information(diagnostics: str) -> dict[str, Any]:
    return operation_outcome([Issue(code="informational", diagnostics=diagnostics, severity="information")])


# Shorthands for the statuses the REST layer uses most.
def bad_request(diagnostics: str, expression: str | None = None) -> FhirError:
    return FhirError.of(400, "invalid", diagnostics, expression)


def not_found(diagnostics: str) -> FhirError:
    return FhirError.of(404, "not-found", diagnostics)


def gone(diagnostics: str, headers: dict[str, str] | None = None) -> FhirError:
    return FhirError.of(410, "deleted", diagnostics, headers=headers)


def precondition_failed(diagnostics: str) -> FhirError:
    return FhirError.of(412, "conflict", diagnostics)
