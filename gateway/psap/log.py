"""What the PSAP simulator remembers: one `PsapCall` per INVITE it judged, in a `PsapLog`.

Why a store of its own: the point of the simulator is the verdict a
compliance tester reads call by call (`GET /api/v1/psap/calls`): every check
with pass/fail and a detail, the exact PIDF-LO received, the registered
location it was compared with and the differences. The log is in memory
and bounded; the composition root may pass `on_change` to persist records
(e.g. a `psap_call` table) off the SIP path.
"""

from __future__ import annotations

import itertools
import json
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from e911.civic import CIVIC_FIELDS, CivicAddress


@dataclass(frozen=True, slots=True)
class Check:
    """One check on one call. `counts=False` marks information that does not affect the verdict."""

    name: str
    passed: bool
    detail: str
    counts: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "detail": self.detail, "counts": self.counts}


@dataclass(slots=True)
class PsapCall:
    """The record of one call the PSAP simulator received (mutable while the call lives)."""

    id: int
    call_id: str
    role: str  # "emergency" | "test" | "national_centre" | "not_emergency"
    received_at: datetime
    request_uri: str
    to: str
    from_: str
    source: str  # "host:port" the INVITE came from
    service_urn: str | None
    callback: str | None
    device_id: str | None
    checks: list[Check]
    status: int  # the final status answered
    reason: str
    geolocation_error: str | None = None
    pidf: str | None = None  # the exact PIDF-LO received (text)
    conveyed: dict[str, str] | None = None  # civic elements received
    expected: dict[str, str] | None = None  # civic elements registered (from the lookup)
    differences: list[dict[str, str | None]] = field(default_factory=list)
    readback: str | None = None  # 933: the text read back in the 200 OK
    notes: list[str] = field(default_factory=list)
    state: str = "received"  # received | ringing | answered | confirmed | ended | rejected | cancelled | no_ack
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    ended_by: str | None = None  # "bye" | "cancel" | "no_ack"

    @property
    def verdict(self) -> str:
        """"pass" when every counting check passed, else "fail"."""
        return "pass" if all(c.passed for c in self.checks if c.counts) else "fail"

    @property
    def failed_checks(self) -> list[str]:
        return [c.name for c in self.checks if c.counts and not c.passed]

    def check(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what `GET /api/v1/psap/calls` returns per call)."""
        return {
            "id": self.id, "call_id": self.call_id, "role": self.role, "verdict": self.verdict,
            "failed_checks": self.failed_checks, "received_at": self.received_at.isoformat(),
            "request_uri": self.request_uri, "to": self.to, "from": self.from_, "source": self.source,
            "service_urn": self.service_urn, "callback": self.callback, "device_id": self.device_id,
            "checks": [c.as_dict() for c in self.checks], "status": self.status, "reason": self.reason,
            "geolocation_error": self.geolocation_error, "pidf": self.pidf, "conveyed": self.conveyed,
            "expected": self.expected, "differences": self.differences, "readback": self.readback,
            "notes": self.notes, "state": self.state,
            "answered_at": self.answered_at.isoformat() if self.answered_at else None,
            "ended_at": self.ended_at.isoformat() if self.ended_at else None, "ended_by": self.ended_by,
        }


class PsapLog:
    """Bounded, ordered store of `PsapCall`s keyed by Call-ID (the oldest drop out first)."""

    def __init__(self, limit: int = 10_000, on_change: Callable[[PsapCall], None] | None = None) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.on_change = on_change
        self._calls: OrderedDict[str, PsapCall] = OrderedDict()
        self._ids = itertools.count(1)

    def next_id(self) -> int:
        return next(self._ids)

    def add(self, call: PsapCall) -> None:
        self._calls[call.call_id] = call
        self._calls.move_to_end(call.call_id)
        while len(self._calls) > self.limit:
            self._calls.popitem(last=False)
        self.changed(call)

    def changed(self, call: PsapCall) -> None:
        """Tell the listener a record was added or its state moved on."""
        if self.on_change is not None:
            self.on_change(call)

    def get(self, call_id: str) -> PsapCall | None:
        return self._calls.get(call_id)

    def calls(self, *, role: str | None = None, verdict: str | None = None,
              device_id: str | None = None) -> list[PsapCall]:
        """Oldest first, optionally filtered."""
        return [c for c in self._calls.values()
                if (role is None or c.role == role) and (verdict is None or c.verdict == verdict)
                and (device_id is None or c.device_id == device_id)]

    def __len__(self) -> int:
        return len(self._calls)

    def __iter__(self) -> Iterator[PsapCall]:
        return iter(list(self._calls.values()))

    def clear(self) -> None:
        self._calls.clear()


ExpectedLookup = Callable[[str], Mapping[str, Any] | None]
"""device id (the PIDF-LO's `<dm:deviceID>`, e.g. "mac:001565abcdef" or "urn:voiplab:device:42")
→ the registered location as a dict of civic fields (`country`, `a1`, … as in provisioning) plus an
optional `callback_number`; None when the device is unknown. Must not block: read memory."""


class ExpectedLocations:
    """An in-memory `ExpectedLookup` for tests and the standalone simulator.

    The composition root normally passes its own lookup over provisioning's
    read model instead.
    """

    def __init__(self) -> None:
        self._by_device: dict[str, dict[str, Any]] = {}

    def set(self, device_id: str, civic: CivicAddress | Mapping[str, Any], callback: str | None = None) -> None:
        values = dict(civic.elements()) if isinstance(civic, CivicAddress) else {
            k: v for k, v in civic.items() if k in CIVIC_FIELDS or k == "callback_number"}
        if callback is not None:
            values["callback_number"] = callback
        self._by_device[device_id] = values

    def remove(self, device_id: str) -> None:
        self._by_device.pop(device_id, None)

    def get(self, device_id: str) -> Mapping[str, Any] | None:
        return self._by_device.get(device_id)

    __call__ = get

    @classmethod
    def from_json(cls, path: Path) -> ExpectedLocations:
        """`{"mac:00163e5a7c2e": {"country": "US", …, "callback_number": "+1…"}, …}`."""
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a JSON object of device id → location")
        store = cls()
        for device_id, location in data.items():
            if not isinstance(location, dict):
                raise ValueError(f"{path}: {device_id}: a location must be a JSON object")
            store.set(str(device_id), location)
        return store
