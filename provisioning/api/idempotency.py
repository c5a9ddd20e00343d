"""`Idempotency-Key` on POST: a retried request gets the first answer again.

Ops scripts retry on timeouts; without this a retried "create device" makes
two devices. Semantics (as Stripe's and the IETF draft
draft-ietf-httpapi-idempotency-key-header):
- same key, same request (method, path, body) → the stored status and body,
  with `Idempotency-Replayed: true`;
- same key, another request → 409 (`rule`: `idempotency.key_reused`);
- same key while the first is still running → 409 (`idempotency.in_progress`);
- 5xx and 401 answers are not kept, so the request can be retried for real.

A pure ASGI middleware: it buffers the request body, reserves the key with a
placeholder row (the primary key makes concurrent twins lose), runs the app,
stores what it answered and only then sends it (so an immediate retry finds
the stored answer). Database work runs in a worker thread, never on
the event loop the SIP gateway shares.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from provisioning.api.context import ProvisioningContext
from provisioning.models import IdempotencyRecord

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

HEADER = b"idempotency-key"
MAX_KEY = 255
IN_PROGRESS = -1  # status_code of a reserved, unfinished record


def _fingerprint(method: str, path: str, body: bytes) -> str:
    h = hashlib.sha256()
    for part in (method.encode(), path.encode(), body):
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()


async def _send_json(send: Send, status: int, payload: dict[str, Any] | bytes,
                     extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *(extra or [])]})
    await send({"type": "http.response.body", "body": body})


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp, ctx: ProvisioningContext, prefix: str = "/api/v1") -> None:
        self.app = app
        self.ctx = ctx
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        key_raw = dict(scope["headers"]).get(HEADER)
        if key_raw is None:
            await self.app(scope, receive, send)
            return
        key = key_raw.decode("latin-1").strip()
        if not key or len(key) > MAX_KEY:
            await _send_json(send, 400, {"detail": f"Idempotency-Key must be 1 to {MAX_KEY} characters"})
            return
        body = await self._read_body(receive)
        fingerprint = _fingerprint(scope["method"], scope["path"], body)
        verdict = await asyncio.to_thread(self._reserve, key, fingerprint)
        if verdict is not None:
            status, payload, replay = verdict
            await _send_json(send, status, payload, [(b"idempotency-replayed", b"true")] if replay else None)
            return
        await self._run_and_store(scope, body, send, key)

    @staticmethod
    async def _read_body(receive: Receive) -> bytes:
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                return b"".join(chunks)

    def _reserve(self, key: str, fingerprint: str) -> tuple[int, dict[str, Any] | bytes, bool] | None:
        """None: the key is ours now, run the request. Else (status, body, is_replay)."""
        with Session(self.ctx.engine) as s:
            record = s.get(IdempotencyRecord, key)
            if record is None:
                s.add(IdempotencyRecord(key=key, fingerprint=fingerprint, status_code=IN_PROGRESS, body="",
                                        created_at=self.ctx.now()))
                try:
                    s.commit()
                    return None
                except IntegrityError:
                    s.rollback()
                    record = s.get(IdempotencyRecord, key)
                    if record is None:  # reserved and released meanwhile: let the client retry
                        return 409, {"detail": "a request with this Idempotency-Key is in progress",
                                     "rule": "idempotency.in_progress"}, False
            if record.fingerprint != fingerprint:
                return 409, {"detail": "Idempotency-Key already used for another request",
                             "rule": "idempotency.key_reused"}, False
            if record.status_code == IN_PROGRESS:
                return 409, {"detail": "a request with this Idempotency-Key is in progress",
                             "rule": "idempotency.in_progress"}, False
            return record.status_code, record.body.encode(), True

    async def _run_and_store(self, scope: Scope, body: bytes, send: Send, key: str) -> None:
        sent_body = False

        async def replay_receive() -> Message:
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": body, "more_body": False}
            return {"type": "http.disconnect"}

        status = 500
        chunks: list[bytes] = []
        held: list[Message] = []

        async def hold(message: Message) -> None:
            # Held back until the answer is stored: a client that retries the moment it
            # reads the response must find the record finished, not "in progress".
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            held.append(message)

        try:
            await self.app(scope, replay_receive, hold)
        finally:
            await asyncio.to_thread(self._finish, key, status, b"".join(chunks))
        for message in held:
            await send(message)

    def _finish(self, key: str, status: int, body: bytes) -> None:
        with Session(self.ctx.engine) as s:
            record = s.get(IdempotencyRecord, key)
            if record is None:
                return
            if status >= 500 or status == 401:
                s.delete(record)  # not an answer worth keeping: the client may retry for real
            else:
                record.status_code = status
                record.body = body.decode("utf-8", "replace")
                s.add(record)
            s.commit()
