"""The one clock every timer in voiplab reads.

Call duration caps, dialog lifetimes, fair-use months and (through the
`wall` callable handed to provisioning) warranty and order windows read *this*
clock, so that ``--time-scale 3600`` makes a six-hour cap fire after six real
seconds and a test can step time by hand.

Simulated time runs ``scale`` times faster than real time from the moment the
clock is created.  ``now()`` is a monotonic float of simulated seconds (for
timers); ``wall()`` is the simulated UTC datetime (for records people read).

Protocol timers negotiated with real peers are the exception, and
``protocol_view`` gives them the same clock in real seconds: a phone
retransmits, refreshes its registration and its session timer on its own real
clock, so the gateway's SIP transaction timers (T1…), binding expiry, nonce
lifetime, Timer C and RFC 4028 session expiry must agree with it, or a time
scale of 3600 would expire every registration in a tenth of a second.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """What the gateway needs from a clock; both implementations below satisfy it."""

    scale: float

    def now(self) -> float: ...

    def wall(self) -> datetime: ...

    def call_at(self, when: float, callback: Callable[[], object]) -> TimerHandle: ...

    def call_later(self, delay: float, callback: Callable[[], object]) -> TimerHandle: ...


class LoopClock:
    """Simulated time on top of an asyncio loop's monotonic clock.

    Deadlines are in simulated seconds and converted to real loop time by
    dividing by the scale, so the loop keeps a single timer heap.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, scale: float = 1.0) -> None:
        if scale <= 0:
            raise ValueError("time scale must be positive")
        self.scale = scale
        self._loop = loop
        self._real0 = loop.time()
        self._wall0 = datetime.now(UTC)

    def now(self) -> float:
        return (self._loop.time() - self._real0) * self.scale

    def wall(self) -> datetime:
        return self._wall0 + timedelta(seconds=self.now())

    def to_real(self, when: float) -> float:
        """Loop time at which simulated instant ``when`` happens."""
        return self._real0 + when / self.scale

    def call_at(self, when: float, callback: Callable[[], object]) -> TimerHandle:
        return self._loop.call_at(self.to_real(when), callback)

    def call_later(self, delay: float, callback: Callable[[], object]) -> TimerHandle:
        return self._loop.call_later(max(0.0, delay) / self.scale, callback)


class ProtocolView:
    """The same clock counted in real seconds (``now() == clock.now() / clock.scale``).

    Deadlines convert back to the underlying clock, so there is still one timer
    source, one ``ManualClock`` to step in tests, and scale 1 changes nothing.
    """

    scale = 1.0

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._factor = clock.scale

    def now(self) -> float:
        return self._clock.now() / self._factor

    def wall(self) -> datetime:
        return self._clock.wall()

    def call_at(self, when: float, callback: Callable[[], object]) -> TimerHandle:
        return self._clock.call_at(when * self._factor, callback)

    def call_later(self, delay: float, callback: Callable[[], object]) -> TimerHandle:
        return self._clock.call_later(delay * self._factor, callback)


def protocol_view(clock: Clock) -> Clock:
    """``clock`` itself at scale 1, else a view of it in real seconds (see the module docstring)."""
    return clock if clock.scale == 1.0 else ProtocolView(clock)


class _ManualHandle:
    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], object]) -> None:
        self.when = when
        self.callback: Callable[[], object] | None = callback
        self.cancelled = False

    def cancel(self) -> None:
        # like asyncio's TimerHandle: let go of the callback at once, the heap entry stays till due
        self.cancelled = True
        self.callback = None


class ManualClock:
    """A clock tests step by hand: nothing happens until ``advance`` is called."""

    def __init__(self, start: float = 0.0, wall0: datetime | None = None) -> None:
        self.scale = 1.0
        self._now = start
        self._wall0 = wall0 or datetime(2026, 1, 1, tzinfo=UTC)
        self._heap: list[tuple[float, int, _ManualHandle]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def wall(self) -> datetime:
        return self._wall0 + timedelta(seconds=self._now)

    def call_at(self, when: float, callback: Callable[[], object]) -> TimerHandle:
        handle = _ManualHandle(when, callback)
        heapq.heappush(self._heap, (when, next(self._seq), handle))
        return handle

    def call_later(self, delay: float, callback: Callable[[], object]) -> TimerHandle:
        return self.call_at(self._now + max(0.0, delay), callback)

    def advance(self, seconds: float) -> None:
        """Move time forward, firing due callbacks in deadline order."""
        target = self._now + seconds
        while self._heap and self._heap[0][0] <= target:
            when, _, handle = heapq.heappop(self._heap)
            self._now = max(self._now, when)
            if handle.callback is not None:
                handle.callback()
        self._now = target


def real_monotonic() -> float:
    """Process-wide monotonic seconds, for measurements only (never for timers)."""
    return time.monotonic()
