"""What the simulated PSTN remembers: one `PstnCall` per INVITE, in a bounded `PstnLog`.

Why a log of its own: a lab asks "did my call reach the PSTN, which rule
did it meet, how did it end, did audio flow" (`GET /api/v1/pstn/calls`),
and the answer must outlive the call. In memory and bounded; the
composition root may pass `on_change` to persist records off the SIP path.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.media import MediaCounts

Address = tuple[str, int]
MediaLookup = Callable[[Address], MediaCounts]


@dataclass(slots=True, eq=False)
class PstnCall:
    """One call the simulated PSTN received (mutable while the call lives)."""

    id: int
    call_id: str
    number: str  # as dialled (the Request-URI user part)
    caller: str  # the From URI
    source: str  # "host:port" the INVITE came from
    rule: str | None  # the pattern that matched; None: the fallback
    rule_source: str | None  # "api" | "default" | None
    behaviour: str  # what was applied, described
    received_at: datetime
    state: str = "received"  # then the agent's: ringing, answered, confirmed, ended, rejected, cancelled, no_ack
    status: int | None = None  # the final status answered
    reason: str | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    ended_by: str | None = None  # bye (the caller) | hangup (us) | cancel | no_ack | timeout | closed
    bye_status: int | None = None  # the answer to our BYE
    media: Address | None = None  # where the caller said it receives RTP (its SDP)

    @property
    def duration(self) -> float | None:
        if self.answered_at is None or self.ended_at is None:
            return None
        return (self.ended_at - self.answered_at).total_seconds()

    def to_dict(self, media: MediaLookup | None = None) -> dict[str, Any]:
        """JSON-ready form; with `media`, the RTP packets seen from the caller's media address."""
        out: dict[str, Any] = {
            "id": self.id, "call_id": self.call_id, "number": self.number, "caller": self.caller,
            "source": self.source, "rule": self.rule, "rule_source": self.rule_source,
            "behaviour": self.behaviour, "received_at": self.received_at.isoformat(), "state": self.state,
            "status": self.status, "reason": self.reason,
            "answered_at": self.answered_at.isoformat() if self.answered_at else None,
            "ended_at": self.ended_at.isoformat() if self.ended_at else None, "ended_by": self.ended_by,
            "bye_status": self.bye_status, "duration": self.duration,
            "media": f"{self.media[0]}:{self.media[1]}" if self.media else None,
        }
        if media is not None:
            out["rtp"] = media(self.media).to_dict() if self.media else None
        return out


class PstnLog:
    """Bounded, ordered store of `PstnCall`s (the oldest drop out first)."""

    def __init__(self, limit: int = 10_000, on_change: Callable[[PstnCall], None] | None = None) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.on_change = on_change
        self.media: MediaLookup | None = None  # set by the server: RTP counters of its echo
        self._calls: OrderedDict[int, PstnCall] = OrderedDict()
        self._ids = itertools.count(1)

    def next_id(self) -> int:
        return next(self._ids)

    def add(self, call: PstnCall) -> None:
        self._calls[call.id] = call
        while len(self._calls) > self.limit:
            self._calls.popitem(last=False)
        self.changed(call)

    def changed(self, call: PstnCall) -> None:
        if self.on_change is not None:
            self.on_change(call)

    def get(self, call_id: str) -> PstnCall | None:
        """The latest record with this SIP Call-ID."""
        return next((c for c in reversed(self._calls.values()) if c.call_id == call_id), None)

    def calls(self, *, number: str | None = None, state: str | None = None,
              limit: int | None = None) -> list[PstnCall]:
        """Oldest first, optionally filtered; `limit` keeps the newest."""
        out = [c for c in self._calls.values()
               if (number is None or c.number == number) and (state is None or c.state == state)]
        return out[-limit:] if limit else out

    def to_dicts(self, **filters: Any) -> list[dict[str, Any]]:
        return [c.to_dict(self.media) for c in self.calls(**filters)]

    def __len__(self) -> int:
        return len(self._calls)

    def __iter__(self) -> Iterator[PstnCall]:
        return iter(list(self._calls.values()))

    def clear(self) -> None:
        self._calls.clear()
