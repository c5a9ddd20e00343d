"""E911 records written by the gateway, in batches, from its writer thread (issue #4).

Why batches on a thread: the SIP loop must never wait for the database (see
`gateway.cdr_writer`). The gateway queues plain dicts and a writer thread
hands them here, one transaction per batch. Like `provisioning.cdrs`, every
record is validated *before* the transaction: a bad one raises
`pydantic.ValidationError` (a ValueError) and nothing of the batch is written,
so the writer can retry record by record and drop only the bad one.

- `record_registrations(events)` (R13): each REGISTER's network fingerprint
  (`e911.moves.fingerprint(...).as_dict()`) is compared with the device's
  last one (`e911.moves.check_move`); a move flags the device
  `location_stale` with the reason and, for a nomadic device (softphone),
  opens a location prompt for its user (an older open prompt is superseded).
  Unchanged fingerprints write nothing; events older than the last recorded
  one (or than a location re-bind) are ignored. Changes are published as
  `device.fingerprint_recorded` / `device.location_stale` /
  `device.location_prompted` after the commit, so the directory snapshot
  follows.
- `record_emergency_calls(records)`: one row per Call-ID with the route
  decision, the exact PIDF-LO sent and the callback; a later record with
  the same Call-ID adds answer/end times and the final status. The first
  record of each call goes to the append-only audit log (PIDF-LO included):
  `emergency_call.routed` or `emergency_call.refused`.
- `record_psap_calls(records)`: `gateway.psap.PsapCall.to_dict()` kept whole,
  upserted by Call-ID as the PSAP simulator's call moves on.

Reads for the API (`list_emergency_calls`, `list_psap_calls`) take a Session.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from e911.moves import NetworkFingerprint, check_move
from provisioning import audit
from provisioning.e911_schemas import EmergencyCallIn, PsapCallIn, RegistrationEvent
from provisioning.events import Change, ChangeBus
from provisioning.models import Device, DeviceE911, EmergencyCall, LocationPrompt, PsapCallRecord

log = logging.getLogger("voiplab.e911")

M = TypeVar("M", bound=BaseModel)

#: fields a later record of the same call may fill in or move on
_CALL_PROGRESS = ("answered_at", "ended_at", "sip_status", "psap_call_id")


def _validated(model: type[M], records: Sequence[M | Mapping[str, Any]]) -> list[M]:
    return [r if isinstance(r, model) else model.model_validate(dict(r)) for r in records]


@dataclass(frozen=True, slots=True)
class MoveOutcome:
    """What one registration event did: `status` is "first" (baseline recorded), "same",
    "moved", "ignored" (older than what is on record) or "unknown_device"."""

    device_id: int
    status: str
    stale: bool = False
    prompt_id: int | None = None
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class _Draft:
    """A MoveOutcome before the flush that gives new prompts their ids."""

    device_id: int
    status: str
    stale: bool = False
    reason: str = ""
    prompt: LocationPrompt | None = None


@dataclass
class _RegistrationRun:
    """What one registration batch has loaded and what it will write."""

    devices: dict[int, Device]
    states: dict[int, DeviceE911]
    changes: list[Change]
    open_prompts: dict[int, list[LocationPrompt]] = field(default_factory=dict)
    audit: list[Callable[[], object]] = field(default_factory=list)

    def later(self, s: Session, at: datetime, actor: str, action: str, device: Device,
              detail: dict[str, Any] | Callable[[], dict[str, Any]]) -> None:
        """Queue an audit event (after the flush: details may name ids assigned by it)."""
        def write() -> object:
            return audit.record(s, at=at, actor=actor, action=action, entity="device", entity_id=device.id,
                                account_id=device.account_id, detail=detail() if callable(detail) else detail)
        self.audit.append(write)


def _prompt_detail(prompt: LocationPrompt) -> Callable[[], dict[str, Any]]:
    """The detail of a prompt superseded in the batch that created it (its id comes with the flush)."""
    return lambda: {"prompt_id": prompt.id, "rule_id": "R13"}


class E911Store:
    """Batch writes for the gateway's writer thread; `bus` gets the resulting changes."""

    def __init__(self, engine: Engine, *, bus: ChangeBus | None = None, actor: str = "gateway") -> None:
        self._engine = engine
        self._bus = bus
        self.actor = actor

    def _publish(self, changes: Sequence[Change]) -> None:
        if self._bus is not None:
            self._bus.publish_many(changes)  # one batch: the directory folds it under one session

    def _retrying(self, work: Any) -> Any:
        """Run `work(session)` in a transaction; a unique-key race with another writer
        (several gateway workers) is retried once on fresh rows."""
        for attempt in (1, 2):
            with Session(self._engine, expire_on_commit=False) as session:
                try:
                    result = work(session)
                    session.commit()
                    return result
                except IntegrityError:
                    session.rollback()
                    if attempt == 2:
                        raise
                    log.info("E911 batch met a concurrent writer; retrying once")
        raise AssertionError("unreachable")

    # --- R13 -------------------------------------------------------------------------------------

    def record_registrations(self, events: Sequence[RegistrationEvent | Mapping[str, Any]]) -> list[MoveOutcome]:
        """Fold REGISTER fingerprints in (see the module docstring); one outcome per event.

        A batch costs a fixed number of queries (devices, their E911 rows, their open prompts)
        and one flush, however many devices moved: a whole site's NAT changing at once must
        not hold the writer thread for long.
        """
        batch = _validated(RegistrationEvent, events)
        if not batch:
            return []
        changes: list[Change] = []

        def work(s: Session) -> list[MoveOutcome]:
            changes.clear()
            ids = sorted({e.device_id for e in batch})
            run = _RegistrationRun(
                devices={d.id: d for d in s.exec(select(Device).where(col(Device.id).in_(ids))) if d.id is not None},
                states={r.device_id: r for r in s.exec(select(DeviceE911).where(col(DeviceE911.device_id).in_(ids))
                                                       .with_for_update())},
                changes=changes)
            for prompt in s.exec(select(LocationPrompt).where(col(LocationPrompt.device_id).in_(ids),
                                                              LocationPrompt.status == "open")
                                 .order_by(col(LocationPrompt.id))):
                run.open_prompts.setdefault(prompt.device_id, []).append(prompt)
            with s.no_autoflush:
                drafts = [self._one_registration(s, e, run) for e in batch]
            s.flush()  # prompts get their ids; the audit follows in event order
            for write in run.audit:
                write()
            return [MoveOutcome(d.device_id, d.status, d.stale, d.prompt.id if d.prompt else None, d.reason)
                    for d in drafts]

        outcomes: list[MoveOutcome] = self._retrying(work)
        self._publish(changes)
        return outcomes

    def _one_registration(self, s: Session, event: RegistrationEvent, run: _RegistrationRun) -> _Draft:
        device = run.devices.get(event.device_id)
        if device is None or device.state == "retired":
            return _Draft(event.device_id, "unknown_device")
        current = NetworkFingerprint(event.fingerprint.subnet, event.fingerprint.contact_host.lower())
        state = run.states.get(event.device_id)
        if state is None:
            state = run.states[event.device_id] = DeviceE911(device_id=event.device_id,
                                                             account_id=device.account_id)
        if state.fingerprint_at is not None and event.at < state.fingerprint_at:
            return _Draft(event.device_id, "ignored", state.location_stale)
        raw = state.last_fingerprint
        last = NetworkFingerprint(raw["subnet"], raw["contact_host"]) if raw else None
        if last == current:
            return _Draft(event.device_id, "same", state.location_stale)
        move = check_move(last, current, device.kind)
        state.last_fingerprint = current.as_dict()
        state.fingerprint_at = event.at
        s.add(state)
        if not move.moved:
            run.changes.append(Change("device.fingerprint_recorded", event.device_id, device.account_id))
            return _Draft(event.device_id, "first", state.location_stale)
        if not state.location_stale:
            state.stale_since = event.at
        state.location_stale = True
        state.stale_reason = move.reason[:500]
        run.later(s, event.at, self.actor, "device.location_stale", device,
                  {"reason": move.reason, "from": last.as_dict() if last else None, "to": current.as_dict(),
                   "kind": device.kind, "location_id": device.location_id, "rule_id": "R13"})
        prompt = self._prompt(s, event, device, last, current, move.reason, run) if move.prompt else None
        run.changes.append(Change("device.location_prompted" if move.prompt else "device.location_stale",
                                  event.device_id, device.account_id))
        return _Draft(event.device_id, "moved", True, move.reason, prompt)

    def _prompt(self, s: Session, event: RegistrationEvent, device: Device, last: NetworkFingerprint | None,
                current: NetworkFingerprint, reason: str, run: _RegistrationRun) -> LocationPrompt:
        """Open a prompt for the user; an older open one of the device is superseded."""
        waiting = run.open_prompts.setdefault(event.device_id, [])
        for older in waiting:
            older.status = "superseded"
            older.resolved_at = event.at
            older.resolved_by = self.actor
            s.add(older)
            run.later(s, event.at, self.actor, "location_prompt.superseded", device,
                      {"prompt_id": older.id, "rule_id": "R13"} if older.id is not None
                      else _prompt_detail(older))
        prompt = LocationPrompt(account_id=device.account_id, device_id=event.device_id, created_at=event.at,
                                reason=reason[:500], location_id=device.location_id,
                                fingerprint=current.as_dict(), previous_fingerprint=last.as_dict() if last else None)
        s.add(prompt)
        waiting[:] = [prompt]
        run.later(s, event.at, self.actor, "location_prompt.created", device,
                  lambda: {"prompt_id": prompt.id, "reason": reason, "location_id": device.location_id,
                           "rule_id": "R13"})
        return prompt

    # --- emergency calls -------------------------------------------------------------------------

    def record_emergency_calls(self, records: Sequence[EmergencyCallIn | Mapping[str, Any]]) -> int:
        """Insert new calls (audited with their PIDF-LO) and move known ones on; returns rows touched."""
        batch = _validated(EmergencyCallIn, records)
        if not batch:
            return 0

        def work(s: Session) -> int:
            ids = sorted({r.call_id for r in batch})
            rows = {c.call_id: c for c in s.exec(select(EmergencyCall).where(col(EmergencyCall.call_id).in_(ids)))}
            for record in batch:
                row = rows.get(record.call_id)
                if row is None:
                    rows[record.call_id] = self._new_call(s, record)
                else:
                    self._progress(s, row, record)
            return len(batch)

        written: int = self._retrying(work)
        return written

    def _new_call(self, s: Session, record: EmergencyCallIn) -> EmergencyCall:
        row = EmergencyCall(**record.model_dump())
        s.add(row)
        s.flush()
        refused = record.route_kind == "refuse"
        audit.record(s, at=record.started_at, actor=self.actor,
                     action="emergency_call.refused" if refused else "emergency_call.routed",
                     entity="emergency_call", entity_id=row.id, account_id=record.account_id,
                     detail=record.model_dump(mode="json", exclude={"answered_at", "ended_at"}))
        return row

    @staticmethod
    def _progress(s: Session, row: EmergencyCall, record: EmergencyCallIn) -> None:
        for name in _CALL_PROGRESS:
            value = getattr(record, name)
            if value is not None:
                setattr(row, name, value)
        s.add(row)

    # --- PSAP verdicts ---------------------------------------------------------------------------

    def record_psap_calls(self, records: Sequence[PsapCallIn | Mapping[str, Any]]) -> int:
        """Upsert PSAP simulator records by Call-ID (the newest state wins); returns rows touched."""
        raw = [dict(r.model_dump(mode="json") if isinstance(r, BaseModel) else r) for r in records]
        batch = _validated(PsapCallIn, raw)
        if not batch:
            return 0

        def work(s: Session) -> int:
            ids = sorted({r.call_id for r in batch})
            rows = {c.call_id: c for c in s.exec(select(PsapCallRecord)
                                                 .where(col(PsapCallRecord.call_id).in_(ids)))}
            for record, data in zip(batch, raw, strict=True):
                row = rows.get(record.call_id)
                if row is None:
                    row = rows[record.call_id] = PsapCallRecord(call_id=record.call_id, role=record.role,
                                                                verdict=record.verdict, state=record.state,
                                                                received_at=record.received_at, data={})
                row.role, row.verdict, row.state = record.role, record.verdict, record.state
                row.status, row.device_id, row.received_at = record.status, record.device_id, record.received_at
                row.data = _jsonable(data)
                s.add(row)
            return len(batch)

        written: int = self._retrying(work)
        return written


def _jsonable(value: Any) -> Any:
    """Datetimes as ISO text, the rest as is (the PSAP record is JSON-ready already)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


# --- reads for the API ------------------------------------------------------------------------------

def list_emergency_calls(session: Session, *, account_id: int | None = None, device_id: int | None = None,
                         route_kind: str | None = None, call_id: str | None = None, limit: int = 100,
                         offset: int = 0) -> list[tuple[EmergencyCall, PsapCallRecord | None]]:
    """Newest first, each with the PSAP simulator's record of it (matched by Call-ID)."""
    stmt = select(EmergencyCall)
    if account_id is not None:
        stmt = stmt.where(EmergencyCall.account_id == account_id)
    if device_id is not None:
        stmt = stmt.where(EmergencyCall.device_id == device_id)
    if route_kind is not None:
        stmt = stmt.where(EmergencyCall.route_kind == route_kind)
    if call_id is not None:
        stmt = stmt.where(EmergencyCall.call_id == call_id)
    stmt = stmt.order_by(col(EmergencyCall.started_at).desc(), col(EmergencyCall.id).desc())
    calls = list(session.exec(stmt.offset(offset).limit(limit)))
    keys = {c.psap_call_id or c.call_id for c in calls}
    psap = {p.call_id: p for p in session.exec(select(PsapCallRecord)
                                               .where(col(PsapCallRecord.call_id).in_(sorted(keys))))} if keys else {}
    return [(c, psap.get(c.psap_call_id or c.call_id)) for c in calls]


def list_psap_calls(session: Session, *, role: str | None = None, verdict: str | None = None,
                    device_id: str | None = None, limit: int = 100, offset: int = 0) -> list[PsapCallRecord]:
    """Newest first."""
    stmt = select(PsapCallRecord)
    if role is not None:
        stmt = stmt.where(PsapCallRecord.role == role)
    if verdict is not None:
        stmt = stmt.where(PsapCallRecord.verdict == verdict)
    if device_id is not None:
        stmt = stmt.where(PsapCallRecord.device_id == device_id)
    stmt = stmt.order_by(col(PsapCallRecord.received_at).desc(), col(PsapCallRecord.id).desc())
    return list(session.exec(stmt.offset(offset).limit(limit)))
