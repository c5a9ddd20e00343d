"""Live calls and the one call record each INVITE attempt leaves behind.

The proxy reports what it sees (attempt admitted, a final answer, a CANCEL,
a BYE); this tracker turns that into call state for ``GET /calls`` and, when
the call ends, exactly one record for the CDR writer.  Durations come from
the simulated clock (so a time-scaled test reads simulated seconds); the
start/answer/end stamps are the clock's wall time.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.clock import TimerHandle
    from gateway.dialogs import DialogInfo


@dataclass(slots=True)
class Call:
    call_id: str
    account_id: int
    caller: str  # caller's SIP username (the authenticated line)
    callee: str  # what was dialled (Request-URI user)
    caller_user_id: int | None
    callee_user_id: int | None
    started: float
    start_wall: datetime
    state: str = "trying"  # trying → ringing → confirmed → ended
    answered: float | None = None
    answer_wall: datetime | None = None
    cancelled: bool = False
    rule_id: str | None = None
    from_tag: str | None = None  # the caller's tag
    to_tag: str | None = None  # the answering callee's tag: with Call-ID and from_tag, the dialog
    call_type: str = "on-net"
    destination: str | None = None  # E.164 for PSTN calls
    region: str = "US"  # the account's region (what "domestic" means when rating)
    plan_id: str | None = None
    usage_key: str | None = None  # fair-use counter this call's minutes go to (None: not counted)
    overage: bool = False  # admitted past the fair-use allowance
    fax_line: bool = False  # the caller's line is an ATA port whose purpose is fax (R20 fax cap)
    dialog: DialogInfo | None = None  # what the gateway needs to end the call itself
    timers: list[TimerHandle] = field(default_factory=list)  # duration cap, session timer
    emergency: dict[str, Any] | None = None  # the emergency record, for its answer/end update
    end_code: int | None = None  # the status the call ended with (200 for an answered call)

    def as_dict(self, now: float) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "account_id": self.account_id,
            "caller": self.caller,
            "callee": self.callee,
            "state": self.state,
            "start": self.start_wall.isoformat(),
            "answer": self.answer_wall.isoformat() if self.answer_wall else None,
            "duration_s": round(now - self.answered, 3) if self.answered is not None else 0.0,
        }


_RULE_IN_REASON = re.compile(r"\((R\d{1,2})\)\s*$")


def rule_in_reason(reason: str) -> str | None:
    """The rule a refusal names at the end of its reason phrase ("… (R30)"), wherever it came from
    (our policy, or a built-in peer such as the conference bridge), so the record carries it too."""
    m = _RULE_IN_REASON.search(reason)
    return m.group(1) if m else None


def disposition_for(code: int, cancelled: bool) -> str:
    """Map a final status to the record's disposition (cancelled wins over 487)."""
    if 200 <= code < 300:
        return "answered"
    if cancelled or code == 487:
        return "cancelled"
    if code in (486, 600):
        return "busy"
    if code in (408, 480):
        return "no-answer"
    return "rejected"


class CallTracker:
    def __init__(self, now: Callable[[], float], wall: Callable[[], datetime],
                 emit: Callable[[dict[str, Any]], None], node: str = "gw1") -> None:
        self._now = now
        self._wall = wall
        self._emit = emit
        self._node = node
        self.calls: dict[str, Call] = {}
        #: called once per ended call with its billable duration, before the record is emitted
        #: (the proxy releases counters and timers here; every ending path goes through it)
        self.on_end: Callable[[Call, float], None] | None = None
        #: rating: extra record fields (call type, billable seconds, rate, charge…) for an ended call
        self.rate: Callable[[Call, float], dict[str, Any]] | None = None

    def start(self, call_id: str, account_id: int, caller: str, callee: str,
              caller_user_id: int | None, callee_user_id: int | None,
              from_tag: str | None = None) -> Call | None:
        """Open a call for an admitted INVITE; None when this Call-ID is already live (a retry after 407)."""
        if call_id in self.calls:
            return None
        call = Call(call_id, account_id, caller, callee, caller_user_id, callee_user_id,
                    self._now(), self._wall(), from_tag=from_tag)
        self.calls[call_id] = call
        return call

    def refused(self, call_id: str, account_id: int, caller: str, callee: str, code: int,
                reason: str, rule_id: str | None = None, caller_user_id: int | None = None, *,
                call_type: str = "on-net", destination: str | None = None, plan: str | None = None) -> None:
        """An authenticated attempt refused before any forwarding (404, 480, 403 R12…)."""
        if call_id in self.calls:
            return
        wall = self._wall()
        record = self._record(call_id, account_id, caller, callee, caller_user_id, None, wall, None,
                              wall, 0.0, disposition_for(code, False), code, reason,
                              rule_id or rule_in_reason(reason))
        record.update(call_type=call_type, destination=destination, plan=plan)
        self._emit(record)

    def ringing(self, call_id: str) -> None:
        call = self.calls.get(call_id)
        if call is not None and call.state == "trying":
            call.state = "ringing"

    def cancel(self, call_id: str) -> None:
        call = self.calls.get(call_id)
        if call is not None and call.state in ("trying", "ringing"):
            call.cancelled = True

    def final(self, call_id: str, code: int, reason: str, to_tag: str | None = None) -> None:
        """The proxy forwarded a final answer to the INVITE upstream (the first 2xx names the dialog)."""
        call = self.calls.get(call_id)
        if call is None or call.state in ("confirmed", "ended"):
            return
        if 200 <= code < 300:
            call.to_tag = to_tag
            call.state = "confirmed"
            call.answered = self._now()
            call.answer_wall = self._wall()
            return
        self._end(call, code, reason)

    def bye(self, call_id: str, from_tag: str | None, to_tag: str | None, reason: str = "BYE") -> None:
        """A BYE crossed the proxy along our route: it ends the call if it belongs to the kept dialog.

        Either side may hang up, so the tags match in either order; the BYE of a
        second 2xx dialog (forking) has the other callee's tag and is ignored.
        """
        call = self.calls.get(call_id)
        if call is None or call.state != "confirmed":
            return
        if {from_tag, to_tag} != {call.from_tag, call.to_tag}:
            return
        self._end(call, 200, reason)

    def expire(self, max_call: float, max_setup: float) -> int:
        """End calls nobody will end: confirmed longer than ``max_call`` (lost BYE, crashed phone)
        or still setting up after ``max_setup``.  Returns how many ended."""
        now = self._now()
        stale = [c for c in self.calls.values()
                 if (c.answered is not None and now - c.answered > max_call)
                 or (c.answered is None and now - c.started > max_setup)]
        for call in stale:
            self._end(call, 200 if call.answered is not None else 408, "Dialog timeout")
        return len(stale)

    def end(self, call_id: str, reason: str, rule_id: str | None) -> Call | None:
        """The gateway itself ended a confirmed call (duration cap, session expiry)."""
        call = self.calls.get(call_id)
        if call is None or call.state != "confirmed":
            return None
        call.rule_id = rule_id
        self._end(call, 200, reason)
        return call

    def shutdown(self) -> None:
        """End every live call (clean shutdown): their records must not be lost."""
        for call in list(self.calls.values()):
            self._end(call, 200 if call.state == "confirmed" else 503, "Gateway shutdown")

    def _end(self, call: Call, code: int, reason: str) -> None:
        self.calls.pop(call.call_id, None)
        call.state = "ended"
        now, wall = self._now(), self._wall()
        duration = now - call.answered if call.answered is not None else 0.0
        for handle in call.timers:
            handle.cancel()
        call.timers.clear()
        call.end_code = 200 if call.answered is not None else code
        if self.on_end is not None:
            self.on_end(call, duration)
        disposition = "answered" if call.answered is not None else disposition_for(code, call.cancelled)
        record = self._record(call.call_id, call.account_id, call.caller, call.callee,
                              call.caller_user_id, call.callee_user_id, call.start_wall,
                              call.answer_wall, wall, duration, disposition, code, reason,
                              call.rule_id or rule_in_reason(reason))
        record["call_type"] = call.call_type
        record["destination"] = call.destination
        record["overage"] = call.overage
        record["plan"] = call.plan_id
        if self.rate is not None:
            record.update(self.rate(call, duration))
        self._emit(record)

    def _record(self, call_id: str, account_id: int, caller: str, callee: str,
                caller_user_id: int | None, callee_user_id: int | None, start: datetime,
                answer: datetime | None, end: datetime, duration: float, disposition: str, code: int,
                reason: str, rule_id: str | None) -> dict[str, Any]:
        return {
            "account_id": account_id, "call_id": call_id, "caller": caller, "callee": callee,
            "caller_user": caller_user_id, "callee_user": callee_user_id,
            "start": start, "answer": answer, "end": end, "duration_s": round(duration, 3),
            "disposition": disposition, "sip_code": code, "reason": reason, "rule_id": rule_id,
            "gateway_node": self._node,
        }
