"""Change events and the in-process change bus.

Services publish a `Change` after their transaction commits; subscribers (the
directory snapshot, the gateway) react without polling the database.

Threading: `publish` calls every subscriber synchronously on the publishing
thread, which is usually an API worker thread (FastAPI runs sync endpoints in
a threadpool). Subscribers must therefore be thread-safe and must not block
for long. The gateway, whose state lives on its asyncio loop, hops there with
`loop.call_soon_threadsafe(...)`. `Directory.apply` is written to be called
on such a worker thread (it reads the DB, which must never happen on the loop).

Transport-ready: a `Change` is plain JSON (kind + ids), so a PostgreSQL
LISTEN/NOTIFY or Redis pub/sub relay can carry it between processes later:
publish `change.to_json()`, and on the far side `bus.publish(Change.from_json(s))`.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

log = logging.getLogger(__name__)

ENTITIES = ("account", "user", "location", "device", "line", "licence", "room_kit", "order",
            "outage")  # outage: R11 simulated site outages (issue #4)

#: Device changes that touch only the device's R13 state (its E911 row: last network
#: fingerprint, stale flag, open prompt). Its lines, state and location are as they were, so
#: the directory refreshes the device entry alone and no binding can be affected. They come
#: in bursts: a lab's phones registering for the first time each record a fingerprint.
R13_ONLY = frozenset({"device.fingerprint_recorded", "device.location_stale", "device.location_prompted"})


@dataclass(frozen=True, slots=True)
class Change:
    """Something changed: `kind` is `<entity>.<verb>` (e.g. `device.activated`),
    `entity_id` the changed row, `account_id` its tenant. Receivers re-read
    what they need; the event carries ids, never data or secrets."""

    kind: str
    entity_id: int
    account_id: int

    def __post_init__(self) -> None:
        if self.entity not in ENTITIES or "." not in self.kind:
            raise ValueError(f"bad change kind {self.kind!r}")

    @property
    def entity(self) -> str:
        return self.kind.split(".", 1)[0]

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Change:
        data = json.loads(text)
        return cls(kind=str(data["kind"]), entity_id=int(data["entity_id"]),
                   account_id=int(data["account_id"]))


Subscriber = Callable[[Change], object]
BatchSubscriber = Callable[[Sequence[Change]], object]


class ChangeBus:
    """In-process pub/sub. Subscribers are plain callables, called in
    subscription order; one failing subscriber is logged and does not stop
    the others (the change is already committed, so there is nothing to undo).

    Every subscriber is held as a batch callable: `subscribe(fn)` wraps `fn` to be called
    once per change, `subscribe_many(fn)` takes the batch whole (the directory folds a
    batch under one lock and one session), and `publish(change)` is a batch of one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: tuple[BatchSubscriber, ...] = ()

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        """Add `fn`, called once per change; returns a function that removes it again."""
        return self.subscribe_many(functools.partial(_each, fn))

    def subscribe_many(self, fn: BatchSubscriber) -> Callable[[], None]:
        """Add `fn`, called once per published batch; returns a function that removes it."""
        with self._lock:
            self._subscribers = (*self._subscribers, fn)

        def unsubscribe() -> None:
            with self._lock:
                subs = list(self._subscribers)
                if fn in subs:
                    subs.remove(fn)
                self._subscribers = tuple(subs)

        return unsubscribe

    def publish(self, change: Change) -> None:
        self.publish_many((change,))

    def publish_many(self, changes: Sequence[Change]) -> None:
        """Publish changes committed together, in order (the R13 writer's batch)."""
        if not changes:
            return
        for fn in self._subscribers:  # tuple read once: safe against concurrent (un)subscribe
            try:
                fn(changes)
            except Exception:
                log.exception("change subscriber %r failed on a batch of %d", fn, len(changes))


def _each(fn: Subscriber, changes: Sequence[Change]) -> None:
    """A per-change subscriber fed a batch: one failing change does not stop the rest."""
    for change in changes:
        try:
            fn(change)
        except Exception:
            log.exception("change subscriber %r failed on %s", fn, change)
