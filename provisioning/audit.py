"""Audit trail: one AuditEvent per provisioning change, secrets redacted.

Redaction is by key name and applied recursively, as a second line of
defence: services already leave passwords out of the detail they log.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlmodel import Session

from provisioning.models import AuditEvent

REDACTED = "***"
_SECRET_KEY = re.compile(r"pass(word)?|secret|token|ha1|credential|api_key|authorization", re.I)


def redact(value: Any) -> Any:
    """Copy of `value` with every value under a secret-looking key replaced."""
    if isinstance(value, Mapping):
        return {str(k): REDACTED if _SECRET_KEY.search(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


def record(session: Session, *, at: datetime, actor: str, action: str, entity: str,
           entity_id: int | None, account_id: int | None,
           detail: Mapping[str, Any] | None = None) -> AuditEvent:
    """Add an audit event to the session (committed with the change it describes)."""
    event = AuditEvent(at=at, actor=actor, action=action, entity=entity, entity_id=entity_id,
                       account_id=account_id, detail=redact(dict(detail or {})))
    session.add(event)
    return event
