"""Domain errors raised by services; the API maps them to HTTP status codes.

Services stay HTTP-free: they say *what* went wrong (unknown id, conflict,
invalid field, broken rule) and `provisioning.api` decides the status code.
"""

from __future__ import annotations


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
    """A request field is semantically wrong (HTTP 422); `field` is its path, e.g.
    ("lines", 0, "user_id")."""

    def __init__(self, field: str | tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.field: tuple[str | int, ...] = (field,) if isinstance(field, str) else tuple(field)


class Conflict(ProvisioningError):
    """The request clashes with stored state (HTTP 409). `rule_id` names the
    service rule (docs/rules.md) when a rule is the reason, e.g. R12."""

    def __init__(self, message: str, *, rule_id: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.rule_id = rule_id
        self.field = field
