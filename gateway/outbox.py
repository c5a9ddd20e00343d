"""What the gateway writes leaves the SIP loop through a queue and reaches the DB from a thread.

Call records, emergency-call records, PSAP verdicts and registration
fingerprints all go this way: ``submit`` is called on the event loop and only
appends to a deque; a writer thread wakes up, takes everything queued and
writes it in one transaction.  A slow or locked database therefore delays
records, never SIP.  ``close`` drains what is left, so a clean shutdown
loses nothing.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

log = logging.getLogger("voiplab.outbox")


class BatchWriter:
    def __init__(self, write_many: Callable[[list[dict[str, Any]]], object], *, name: str = "cdr-writer",
                 batch_max: int = 500, idle_wait: float = 0.2, linger: float = 0.0) -> None:
        """`linger`: seconds to wait after the first record of a quiet spell for more to
        join its batch. A transaction costs milliseconds however few records it writes, so a
        writer fed a steady trickle (phones registering for the first time, one R13 record per
        device) would otherwise spend a transaction per record."""
        self._write_many = write_many
        self._queue: deque[dict[str, Any]] = deque()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._stop = False
        self._batch_max = batch_max
        self._idle_wait = idle_wait
        self._linger = linger
        self.written = 0
        self.failed_batches = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, record: dict[str, Any]) -> None:
        self._queue.append(record)  # deque.append is atomic: no lock on the hot path
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._queue)

    def _take(self) -> list[dict[str, Any]]:
        batch: list[dict[str, Any]] = []
        queue = self._queue
        while queue and len(batch) < self._batch_max:
            batch.append(queue.popleft())
        return batch

    def _run(self) -> None:
        while True:
            self._wake.wait(self._idle_wait)
            self._wake.clear()
            if self._linger and 0 < len(self._queue) < self._batch_max:
                self._closing.wait(self._linger)  # close() cuts it short
            while batch := self._take():
                self._write(batch)
            if self._stop and not self._queue:
                return

    def _write(self, batch: list[dict[str, Any]]) -> None:
        for attempt in range(5):
            try:
                self._write_many(batch)
                self.written += len(batch)
                return
            except ValueError:
                # A record the store refuses (pydantic's ValidationError is a ValueError) must not
                # take the rest of the batch with it: write them one by one, drop only the bad ones.
                if len(batch) > 1:
                    for record in batch:
                        self._write([record])
                else:
                    self.failed_batches += 1
                    log.error("dropping an invalid record: %r", batch[0], exc_info=True)
                return
            except Exception:
                log.exception("writing %d records failed (attempt %d)", len(batch), attempt + 1)
                threading.Event().wait(0.2 * (attempt + 1))
        self.failed_batches += 1
        log.error("gave up on %d records: %s", len(batch), [r.get("call_id") for r in batch])

    def close(self, timeout: float = 30.0) -> None:
        """Stop after everything queued so far is written."""
        self._stop = True
        self._closing.set()
        self._wake.set()
        self._thread.join(timeout)
