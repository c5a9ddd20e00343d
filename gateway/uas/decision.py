"""What a built-in user agent server does with one INVITE: the answer of its `decide` callback.

Why data and not callbacks: a decision is chosen from a rule table (the
PSTN simulator), a room lookup (the conference bridge) or a judgement (the
PSAP simulator); as a frozen value it can sit in a table, be shown in the API
(`describe()`) and be carried out by one state machine that owns every timer.

Four shapes cover what the lab needs:

====================================  ===========================================
``Answer()``                          100, 200 with SDP
``Answer(ring=5)``                    100, 180, five seconds later 200
``Answer(hang_up_after=5)``           answered, and five seconds later a BYE of ours
``Reject(486, "Busy Here")``          100, 486
``Reject(480, "…", ring=30)``         100, 180, thirty seconds later 480
``Ring()``                            100, 180 until the caller gives up (CANCEL)
====================================  ===========================================

`context` is the caller's own (a log record, a conference participant); the
agent stores it on the call and hands it back in every change notification.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Headers = tuple[tuple[str, str], ...]


def _check_seconds(name: str, value: float | None, *, allow_zero: bool) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number of seconds, not {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'} seconds, not {value!r}")


def _check_headers(headers: Headers) -> None:
    for item in headers:
        if len(item) != 2:
            raise ValueError(f"a header is a (name, value) pair, not {item!r}")
        name, value = item
        if not name or any(c in name for c in ": \t\r\n") or "\r" in value or "\n" in value:
            raise ValueError(f"invalid header {name!r}: {value!r}")


def _check_reason(reason: str) -> None:
    if not reason or "\r" in reason or "\n" in reason or len(reason) > 200:
        raise ValueError(f"a reason phrase is one line of at most 200 characters, not {reason!r}")


def _secs(value: float) -> str:
    return f"{value:g} s"


@dataclass(frozen=True, slots=True)
class Answer:
    """Answer the call (after `ring` seconds of 180), optionally hang up `hang_up_after` seconds later.

    `sdp` replaces the agent's own SDP answer (it is also reused for
    re-INVITEs); `body` + `content_type` replace the first 2xx body only
    (the PSAP's 933 read-back is SDP + text in multipart/mixed).
    """

    ring: float = 0.0
    hang_up_after: float | None = None
    sdp: bytes | None = None
    body: bytes | None = None
    content_type: str | None = None
    headers: Headers = ()
    context: object = None

    def __post_init__(self) -> None:
        _check_seconds("ring", self.ring, allow_zero=True)
        _check_seconds("hang_up_after", self.hang_up_after, allow_zero=False)
        if (self.body is None) != (self.content_type is None):
            raise ValueError("body and content_type go together")
        _check_headers(self.headers)

    def describe(self) -> str:
        text = f"ring {_secs(self.ring)} then answer" if self.ring else "answer"
        if self.hang_up_after is not None:
            text += f", hang up after {_secs(self.hang_up_after)}"
        return text


@dataclass(frozen=True, slots=True)
class Reject:
    """Refuse the call with `status` (300–699) and `reason`, after `ring` seconds of 180."""

    status: int
    reason: str
    ring: float = 0.0
    headers: Headers = ()
    context: object = None

    def __post_init__(self) -> None:
        if isinstance(self.status, bool) or not isinstance(self.status, int) or not 300 <= self.status <= 699:
            raise ValueError(f"a rejection status is 300–699, not {self.status!r}")
        _check_reason(self.reason)
        _check_seconds("ring", self.ring, allow_zero=True)
        _check_headers(self.headers)

    def describe(self) -> str:
        final = f"{self.status} {self.reason}"
        return f"ring {_secs(self.ring)} then {final}" if self.ring else final


@dataclass(frozen=True, slots=True)
class Ring:
    """Ring until the caller gives up: 180 (refreshed every minute, RFC 3261 §13.3.1.1), never a final."""

    headers: Headers = ()
    context: object = None

    def __post_init__(self) -> None:
        _check_headers(self.headers)

    def describe(self) -> str:
        return "ring until cancelled"


Decision = Answer | Reject | Ring
