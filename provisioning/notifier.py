"""Kari's Law notifications: POST the `e911.notify` payload to the account's webhook, off the call path.

Why a background sender: 47 CFR 9.16(b)(2) wants the notification to go out
*with* the emergency call and never delay it. `submit()` is what the gateway
calls when an emergency call starts (on its event loop): it only appends to
a queue. Worker threads then store the notification (table
`emergency_notification`), POST it with a timeout, and retry with
exponential backoff on network errors, 5xx, 408 and 429; other answers are
final. Every attempt updates the stored row (status, attempts, last status
code or error), listed by `GET /api/v1/emergency/notifications`.

Statuses: `pending` (stored, first attempt not made yet), `retrying`,
`sent` (2xx), `failed` (a final refusal, or attempts exhausted),
`no_destination` (the account has no `notification_url`: recorded, so a
tester sees that nobody was told).

Retries are scheduled on a heap by due time, so one slow or dead webhook
delays only its own notifications (at most `workers` are in flight at once).
Timing uses the real monotonic clock (network back-off is real time even
when the lab clock is scaled); stored timestamps use the injected clock.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from e911.notify import notification_json
from provisioning.models import EmergencyNotification

log = logging.getLogger("voiplab.notifier")

Clock = Callable[[], datetime]
#: POST(url, body, headers, timeout) → HTTP status; raises on network errors
Poster = Callable[[str, bytes, Mapping[str, str], float], int]

RETRY_STATUSES = frozenset({408, 425, 429})
USER_AGENT = "voiplab-karis-law-notifier/1"


@dataclass(order=True)
class _Job:
    due: float
    seq: int
    notification_id: int | None = field(compare=False)  # None: could not be stored
    url: str = field(compare=False)
    body: bytes = field(compare=False)
    attempt: int = field(default=0, compare=False)


def httpx_poster() -> Poster:
    """A poster on one shared httpx client (connection reuse; no redirects, no proxies from env)."""
    client = httpx.Client(follow_redirects=False, trust_env=False)

    def post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> int:
        return client.post(url, content=body, headers=dict(headers), timeout=timeout).status_code

    post.client = client  # type: ignore[attr-defined]  # closed by Notifier.close
    return post


class Notifier:
    """Background Kari's Law webhook sender; see the module docstring."""

    def __init__(self, engine: Engine, *, now: Clock, poster: Poster | None = None, timeout: float = 5.0,
                 max_attempts: int = 5, backoff: float = 0.5, max_backoff: float = 30.0, workers: int = 2) -> None:
        if max_attempts < 1 or workers < 1 or timeout <= 0 or backoff < 0:
            raise ValueError("max_attempts and workers must be >= 1, timeout > 0, backoff >= 0")
        self._engine = engine
        self._now = now
        self._poster = poster or httpx_poster()
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._cond = threading.Condition()
        self._incoming: list[tuple[dict[str, Any], str | None]] = []
        self._heap: list[_Job] = []
        self._seq = itertools.count()
        self._busy = 0
        self._stop = False
        self._threads = [threading.Thread(target=self._run, name=f"karis-law-{i}", daemon=True)
                         for i in range(workers)]
        for t in self._threads:
            t.start()

    # --- the caller's side (event loop) -----------------------------------------------------------

    def submit(self, payload: Mapping[str, Any], url: str | None) -> None:
        """Queue one notification (the `e911.notify.build_notification` dict) for `url`
        (the account's `notification_url`; None records `no_destination`). Never blocks on I/O."""
        with self._cond:
            if self._stop:
                raise RuntimeError("notifier is closed")
            self._incoming.append((dict(payload), url))
            self._cond.notify()

    @property
    def pending(self) -> int:
        """Notifications queued, waiting for a retry, or being sent."""
        with self._cond:
            return len(self._incoming) + len(self._heap) + self._busy

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until nothing is pending (tests, shutdown); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._incoming or self._heap or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
            return True

    def close(self, timeout: float = 10.0) -> None:
        """Stop after what is queued now has been tried (retries still waiting are given up and
        stay stored as `retrying`)."""
        self.drain(timeout)
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout)
        client = getattr(self._poster, "client", None)
        if client is not None:
            client.close()

    # --- worker threads -----------------------------------------------------------------------------

    def _next(self) -> tuple[str, Any] | None:
        """Block until there is work: ("new", (payload, url)) or ("job", _Job); None to stop."""
        with self._cond:
            while True:
                if self._stop:
                    return None
                if self._incoming:
                    self._busy += 1
                    return "new", self._incoming.pop(0)
                if self._heap:
                    wait = self._heap[0].due - time.monotonic()
                    if wait <= 0:
                        self._busy += 1
                        return "job", heapq.heappop(self._heap)
                    self._cond.wait(wait)
                else:
                    self._cond.wait()

    def _done(self, retry: _Job | None = None) -> None:
        with self._cond:
            self._busy -= 1
            if retry is not None:
                heapq.heappush(self._heap, retry)
            self._cond.notify_all()

    def _run(self) -> None:
        while (item := self._next()) is not None:
            kind, value = item
            retry: _Job | None = None
            try:
                if kind == "new":
                    payload, url = value
                    job = self._store(payload, url)
                    if job is not None:
                        retry = self._attempt(job)
                else:
                    retry = self._attempt(value)
            except Exception:
                log.exception("Kari's Law notification: unexpected failure")
            finally:
                self._done(retry)

    def _store(self, payload: dict[str, Any], url: str | None) -> _Job | None:
        now = self._now()
        row = EmergencyNotification(call_id=str(payload.get("call_id", ""))[:255],
                                    account_id=payload.get("account_id") if isinstance(payload.get("account_id"), int)
                                    else None, channel="webhook", url=url,
                                    status="pending" if url else "no_destination",
                                    payload=payload, created_at=now, updated_at=now)
        row_id: int | None = None
        try:
            with Session(self._engine) as s:
                s.add(row)
                s.commit()
                s.refresh(row)
                row_id = row.id
        except Exception:  # the people on site matter more than our record: send anyway
            log.exception("could not store the Kari's Law notification of call %s; sending it anyway",
                          row.call_id)
        if not url:
            log.warning("emergency call %s: account %s has no notification_url; notification stored only",
                        row.call_id, row.account_id)
            return None
        return _Job(0.0, next(self._seq), row_id, url, notification_json(payload))

    def _attempt(self, job: _Job) -> _Job | None:
        """POST once; store the outcome; the job again (later) when it should be retried."""
        job.attempt += 1
        status: int | None = None
        error: str | None = None
        try:
            status = self._poster(job.url, job.body, {"Content-Type": "application/json",
                                                      "User-Agent": USER_AGENT}, self.timeout)
        except Exception as exc:  # network error, timeout, bad URL: the sender never crashes
            error = f"{type(exc).__name__}: {exc}"[:500]
        ok = status is not None and 200 <= status < 300
        retriable = not ok and (status is None or status >= 500 or status in RETRY_STATUSES)
        final = ok or not retriable or job.attempt >= self.max_attempts
        outcome = "sent" if ok else ("failed" if final else "retrying")
        if status is not None and not ok:
            error = f"HTTP {status}"
        self._update(job, outcome, status, error)
        if final:
            if not ok:
                log.error("Kari's Law notification %s to %s failed after %d attempt(s): %s",
                          job.notification_id, job.url, job.attempt, error)
            return None
        delay = min(self.max_backoff, self.backoff * (2 ** (job.attempt - 1)))
        job.due = time.monotonic() + delay
        job.seq = next(self._seq)
        return job

    def _update(self, job: _Job, status: str, code: int | None, error: str | None) -> None:
        if job.notification_id is None:
            return
        now = self._now()
        with Session(self._engine) as s:
            row = s.get(EmergencyNotification, job.notification_id)
            if row is None:
                return
            row.status = status
            row.attempts = job.attempt
            row.last_status_code = code
            row.last_error = error
            row.updated_at = now
            if status == "sent":
                row.sent_at = now
            s.add(row)
            s.commit()


def list_notifications(session: Session, *, account_id: int | None = None, call_id: str | None = None,
                       status: str | None = None, limit: int = 100, offset: int = 0) -> list[EmergencyNotification]:
    """Newest first."""
    stmt = select(EmergencyNotification)
    if account_id is not None:
        stmt = stmt.where(EmergencyNotification.account_id == account_id)
    if call_id is not None:
        stmt = stmt.where(EmergencyNotification.call_id == call_id)
    if status is not None:
        stmt = stmt.where(EmergencyNotification.status == status)
    stmt = stmt.order_by(col(EmergencyNotification.created_at).desc(), col(EmergencyNotification.id).desc())
    return list(session.exec(stmt.offset(offset).limit(limit)))
