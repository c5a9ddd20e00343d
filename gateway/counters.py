"""Counters behind one interface: concurrent calls, minutes per month, flood-guard hits.

Policy reads them (as plain numbers handed to the pure ``decide``) and the
proxy changes them when a call is admitted, answered and ended.  Each live
call holds a *lease* on a set of keys (account, line, licence, conference), so
release is by call, never by guessing which keys to decrement: a forked call
holds one lease whatever its branches do, and every ending path releases it
once.  The in-memory implementation serves one process; a Redis one with the
same interface (atomic increments, leases with expiry so a dead worker's
calls drain) lets several workers share the counts.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol


class Counters(Protocol):
    def active(self, key: str) -> int: ...

    def acquire(self, lease: str, keys: Iterable[str]) -> None: ...

    def release(self, lease: str) -> None: ...

    def add_usage(self, key: str, seconds: float) -> None: ...

    def usage(self, key: str) -> float: ...

    def hit(self, key: str, now: float, window: float) -> int: ...

    def ban(self, key: str, until: float) -> None: ...

    def banned_until(self, key: str, now: float) -> float | None: ...

    def unban(self, key: str) -> bool: ...

    def bans(self, now: float) -> dict[str, float]: ...


@dataclass
class MemoryCounters:
    """Single-process counters (the default)."""

    _active: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    _leases: dict[str, tuple[str, ...]] = field(default_factory=dict)
    _usage: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    _hits: dict[str, deque[float]] = field(default_factory=dict)
    _bans: dict[str, float] = field(default_factory=dict)

    def active(self, key: str) -> int:
        return self._active.get(key, 0)

    def acquire(self, lease: str, keys: Iterable[str]) -> None:
        if lease in self._leases:
            return  # idempotent: a retransmission or a second branch never counts twice
        held = tuple(keys)
        self._leases[lease] = held
        for key in held:
            self._active[key] += 1

    def release(self, lease: str) -> None:
        held = self._leases.pop(lease, None)
        if held is None:
            return  # already released: every ending path may call this
        for key in held:
            left = self._active[key] - 1
            if left > 0:
                self._active[key] = left
            else:
                del self._active[key]

    def holds(self, lease: str) -> bool:
        return lease in self._leases

    def add_usage(self, key: str, seconds: float) -> None:
        self._usage[key] += seconds

    def usage(self, key: str) -> float:
        return self._usage.get(key, 0.0)

    def hit(self, key: str, now: float, window: float) -> int:
        """Record one event for ``key``; return how many fell within the last ``window`` seconds."""
        q = self._hits.get(key)
        if q is None:
            q = self._hits[key] = deque()
        q.append(now)
        cutoff = now - window
        while q and q[0] <= cutoff:
            q.popleft()
        return len(q)

    def ban(self, key: str, until: float) -> None:
        self._bans[key] = max(until, self._bans.get(key, 0.0))

    def banned_until(self, key: str, now: float) -> float | None:
        until = self._bans.get(key)
        if until is None:
            return None
        if until <= now:
            del self._bans[key]
            return None
        return until

    def unban(self, key: str) -> bool:
        """Lift a ban and forget the attempts that caused it (or the next call would trip it again)."""
        self._hits.pop(key, None)
        return self._bans.pop(key, None) is not None

    def bans(self, now: float) -> dict[str, float]:
        return {k: v for k, v in self._bans.items() if v > now}

    def prune(self, now: float, window: float) -> None:
        """Forget flood-guard history older than ``window`` (housekeeping, off the request path)."""
        cutoff = now - window
        for key in [k for k, q in self._hits.items() if not q or q[-1] <= cutoff]:
            del self._hits[key]
        for key in [k for k, until in self._bans.items() if until <= now]:
            del self._bans[key]


# Key builders: one place, so every component spells them alike.
def account_key(account_id: int) -> str:
    return f"acct:{account_id}"


def line_key(sip_username: str) -> str:
    return f"line:{sip_username}"


def licence_key(licence_id: int) -> str:
    return f"lic:{licence_id}"


def conference_key(room: str) -> str:
    return f"conf:{room}"


def usage_key(account_id: int, month: str, category: str) -> str:
    return f"use:{account_id}:{month}:{category}"
