"""Domain errors raised by services; the API maps them to HTTP status codes.

Services stay HTTP-free: they say *what* went wrong (unknown id, conflict,
invalid field, broken rule) and `provisioning.api` decides the status code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

FieldPath = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Issue:
    """One machine-readable finding: which field, which rule (a service rule id
    such as "R21", or a hardware check such as "lines.max"), the limit that was
    crossed, and a sentence for people. Warnings never block a change."""

    field: FieldPath
    rule: str
    message: str
    limit: Any = None
    severity: Literal["error", "warning"] = "error"
    # More machine-readable keys for the 422 body, e.g. {"element": "HNO", "problem": "required"}
    # for a civic address element (issue #4).
    extra: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"field": ".".join(str(p) for p in self.field), "rule": self.rule,
                "limit": self.limit, "message": self.message, **(self.extra or {})}


class ProvisioningError(Exception):
    """Base class; `message` is safe to show to API clients."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(ProvisioningError):
    """An id in the path does not exist (HTTP 404)."""

    def __init__(self, entity: str, entity_id: int | str) -> None:
        super().__init__(f"{entity} {entity_id} not found")
        self.entity = entity
        self.entity_id = entity_id


class Invalid(ProvisioningError):
    """A request is semantically wrong (HTTP 422). `issues` holds every error
    found (not just the first), each with field path, rule and limit; `field`
    is the first one's path, e.g. ("lines", 0, "user_id")."""

    def __init__(self, field: str | FieldPath, message: str, *, rule: str = "invalid",
                 limit: Any = None, issues: Sequence[Issue] = ()) -> None:
        super().__init__(message)
        self.field: FieldPath = (field,) if isinstance(field, str) else tuple(field)
        self.issues: tuple[Issue, ...] = tuple(issues) or (Issue(self.field, rule, message, limit),)
        self.rule = self.issues[0].rule

    @classmethod
    def of(cls, issues: Sequence[Issue]) -> Invalid:
        errors = [i for i in issues if i.severity == "error"]
        assert errors, "Invalid.of needs at least one error"
        first = errors[0]
        return cls(first.field, first.message, rule=first.rule, limit=first.limit, issues=errors)


class Conflict(ProvisioningError):
    """The request clashes with stored state (HTTP 409). `rule_id` names the
    service rule (docs/rules.md) when a rule is the reason, e.g. R12."""

    def __init__(self, message: str, *, rule_id: str | None = None, field: str | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.rule_id = rule_id
        self.field = field
        self.extra: dict[str, Any] = dict(extra or {})


@dataclass
class Findings:
    """Collects issues while checking a request; `raise_errors()` ends the check."""

    issues: list[Issue] = field(default_factory=list)

    def error(self, path: FieldPath, rule: str, message: str, limit: Any = None) -> None:
        self.issues.append(Issue(path, rule, message, limit))

    def warn(self, path: FieldPath, rule: str, message: str, limit: Any = None) -> None:
        self.issues.append(Issue(path, rule, message, limit, "warning"))

    def check(self, path: FieldPath, rule: str, message: str, limit: Any = None, *,
              hard: bool = True) -> None:
        """An error when the fact behind it is verified (`hard`), else a warning."""
        (self.error if hard else self.warn)(path, rule, message, limit)

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "warning"]

    def raise_errors(self) -> None:
        if any(i.severity == "error" for i in self.issues):
            raise Invalid.of(self.issues)
