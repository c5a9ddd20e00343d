"""Kari's Law notifier against a real HTTP server on 127.0.0.1: the exact payload is POSTed,
retried with backoff on 5xx and network errors, final on 4xx, stored with status and attempts,
and `submit` never waits for the webhook (a held request does not hold the caller or other
notifications)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from e911.civic import CivicAddress
from e911.notify import Caller, build_notification, notification_json
from provisioning.db import init_db, make_engine
from provisioning.models import EmergencyNotification
from provisioning.notifier import Notifier, list_notifications
from tests.conftest_db import ManualClock, sqlite_url  # noqa: F401

PLACE = CivicAddress(country="US", a1="TX", a3="Austin", rd="Congress", sts="AVE", hno="100", pc="78701", flr="3")


@dataclass
class Webhook:
    """Answers each POST with the next scripted status (then 200); can hold requests until released."""

    statuses: list[int] = field(default_factory=list)
    received: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    hold_path: str | None = None
    release: threading.Event = field(default_factory=threading.Event)
    arrived: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def webhook() -> Iterator[tuple[Webhook, str]]:
    hook = Webhook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with hook.lock:
                hook.received.append((self.path, dict(self.headers), body))
                status = hook.statuses.pop(0) if hook.statuses else 200
            if self.path == hook.hold_path:
                hook.arrived.set()
                hook.release.wait(30)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield hook, f"http://127.0.0.1:{server.server_address[1]}"
    hook.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[Engine]:  # noqa: F811
    e = make_engine(sqlite_url)
    init_db(e)
    yield e
    e.dispose()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def payload(call_id: str = "call-1@gw", account_id: int = 7) -> dict[str, Any]:
    return build_notification(
        call_id=call_id, account_id=account_id,
        caller=Caller("Pat Smith", "201", "201-abc", "pat.smith@acme.example", 12, "desk"),
        callback="+15125550100", dialled="911", service_urn="urn:service:sos", route="psap",
        started_at=datetime(2025, 3, 1, 12, 0, tzinfo=UTC), location=PLACE, pidf=b"<presence/>")


def rows(engine: Engine) -> list[EmergencyNotification]:
    with Session(engine) as s:
        return list(reversed(list_notifications(s)))


def test_the_payload_is_posted_and_stored_as_sent(engine: Engine, clock: ManualClock,
                                                  webhook: tuple[Webhook, str]) -> None:
    hook, base = webhook
    notifier = Notifier(engine, now=clock)
    try:
        notifier.submit(payload(), f"{base}/karis-law")
        assert notifier.drain()
    finally:
        notifier.close()
    [(path, headers, body)] = hook.received
    assert path == "/karis-law" and body == notification_json(payload())
    assert headers["Content-Type"] == "application/json"
    sent = json.loads(body)
    assert sent["callback_number"] == "+15125550100" and sent["location_conveyed"]["flr"] == "3"
    [row] = rows(engine)
    assert (row.status, row.attempts, row.last_status_code, row.sent_at) == ("sent", 1, 200, clock())
    assert (row.call_id, row.account_id, row.url, row.payload) == ("call-1@gw", 7, f"{base}/karis-law", payload())


def test_5xx_is_retried_with_backoff_until_it_is_accepted(engine: Engine, clock: ManualClock,
                                                          webhook: tuple[Webhook, str]) -> None:
    hook, base = webhook
    hook.statuses[:] = [503, 500, 429]
    notifier = Notifier(engine, now=clock, backoff=0.01, max_attempts=5)
    try:
        notifier.submit(payload(), base + "/hook")
        assert notifier.drain()
    finally:
        notifier.close()
    assert len(hook.received) == 4 and len({body for _, _, body in hook.received}) == 1
    [row] = rows(engine)
    assert (row.status, row.attempts, row.last_status_code, row.last_error) == ("sent", 4, 200, None)


def test_a_4xx_is_final_and_attempts_are_bounded(engine: Engine, clock: ManualClock,
                                                 webhook: tuple[Webhook, str]) -> None:
    hook, base = webhook
    hook.statuses[:] = [404]
    with socket.socket() as sock:  # a port nobody listens on: connection refused
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    notifier = Notifier(engine, now=clock, backoff=0.01, max_attempts=3, timeout=2.0)
    try:
        notifier.submit(payload("refused"), base + "/gone")
        notifier.submit(payload("dead"), dead)
        assert notifier.drain()
    finally:
        notifier.close()
    by_call = {r.call_id: r for r in rows(engine)}
    assert (by_call["refused"].status, by_call["refused"].attempts, by_call["refused"].last_error) == (
        "failed", 1, "HTTP 404")
    dead_row = by_call["dead"]
    assert (dead_row.status, dead_row.attempts, dead_row.last_status_code) == ("failed", 3, None)
    assert dead_row.last_error is not None and "ConnectError" in dead_row.last_error
    assert len(hook.received) == 1


def test_no_url_is_recorded_as_no_destination(engine: Engine, clock: ManualClock,
                                              webhook: tuple[Webhook, str]) -> None:
    hook, _ = webhook
    notifier = Notifier(engine, now=clock)
    try:
        notifier.submit(payload(), None)
        assert notifier.drain()
    finally:
        notifier.close()
    [row] = rows(engine)
    assert (row.status, row.attempts, row.url) == ("no_destination", 0, None) and hook.received == []


def test_submit_never_waits_for_the_webhook_and_one_held_request_holds_nobody_else(
        engine: Engine, clock: ManualClock, webhook: tuple[Webhook, str]) -> None:
    hook, base = webhook
    hook.hold_path = "/slow"
    notifier = Notifier(engine, now=clock, workers=2)
    try:
        notifier.submit(payload("slow"), base + "/slow")
        assert hook.arrived.wait(10)  # the webhook holds the first request open …
        notifier.submit(payload("fast"), base + "/fast")  # … submit still returns at once
        for _ in range(1000):  # the second one gets through meanwhile
            if any(r.call_id == "fast" and r.status == "sent" for r in rows(engine)):
                break
            threading.Event().wait(0.01)
        states = {r.call_id: r.status for r in rows(engine)}
        assert states == {"slow": "pending", "fast": "sent"} and notifier.pending == 1
        hook.release.set()
        assert notifier.drain()
    finally:
        notifier.close()
    assert {r.call_id: r.status for r in rows(engine)} == {"slow": "sent", "fast": "sent"}
    with pytest.raises(RuntimeError):
        notifier.submit(payload(), base)


def test_bad_settings_are_refused(engine: Engine, clock: ManualClock) -> None:
    for kw in ({"max_attempts": 0}, {"workers": 0}, {"timeout": 0}, {"backoff": -1}):
        with pytest.raises(ValueError):
            Notifier(engine, now=clock, **kw)  # type: ignore[arg-type]
