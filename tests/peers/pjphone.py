"""A headless pjsua2 softphone for tests, driven by pumping events from the caller's thread.

Why this shape (see ../shared/notes/sip-peers.md §3):
- pjsua2 allows **one Endpoint per process**; a second live Endpoint aborts the process. So one
  `PjPhone` owns one Endpoint, `close()` destroys it, and a second phone runs as a subprocess
  (`tests.peers.pjphone_cli`, wrapped by `tests.peers.phone_process.PhoneProcess`).
- `threadCnt=0` everywhere: no pjsua worker thread calls into Python; every callback runs inside
  `pump()`, i.e. in the thread that drives the phone. pjlib's own log goes to a *file* (not a
  Python log writer) because pjmedia's clock thread may log too.
- Everything the phone observes is appended to `events` as plain dicts (the same dicts the CLI
  prints as JSON lines), so in-process and subprocess phones are asserted the same way.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pjsua2 as pj

from tests.peers.accounts import SipAccount
from tests.peers.pjsip_log import sip_messages

Event = dict[str, Any]
EventSink = Callable[[Event], None]

ALGORITHMS: dict[str, int] = {
    "MD5": pj.PJSIP_AUTH_ALGORITHM_MD5,
    "SHA-256": pj.PJSIP_AUTH_ALGORITHM_SHA256,
}

_CALL_STATES = {
    pj.PJSIP_INV_STATE_NULL: "NULL",
    pj.PJSIP_INV_STATE_CALLING: "CALLING",
    pj.PJSIP_INV_STATE_INCOMING: "INCOMING",
    pj.PJSIP_INV_STATE_EARLY: "EARLY",
    pj.PJSIP_INV_STATE_CONNECTING: "CONNECTING",
    pj.PJSIP_INV_STATE_CONFIRMED: "CONFIRMED",
    pj.PJSIP_INV_STATE_DISCONNECTED: "DISCONNECTED",
}


_MEDIA_STATUS = {
    pj.PJSUA_CALL_MEDIA_NONE: "none",
    pj.PJSUA_CALL_MEDIA_ACTIVE: "active",
    pj.PJSUA_CALL_MEDIA_LOCAL_HOLD: "local_hold",
    pj.PJSUA_CALL_MEDIA_REMOTE_HOLD: "remote_hold",
    pj.PJSUA_CALL_MEDIA_ERROR: "error",
}


@dataclass(frozen=True)
class AnswerPolicy:
    """What the phone does with an incoming INVITE.

    `code=None` leaves incoming calls ringing (the test answers them); otherwise the phone sends
    180 at once and `code` after `delay` seconds, then hangs up `hangup_after` seconds after the
    call is confirmed (None: wait for the other side).
    """

    code: int | None = 200
    delay: float = 0.0
    hangup_after: float | None = None


@dataclass
class _PendingAction:
    due: float
    call_id: int
    action: str  # "answer" | "hangup"
    code: int = 200


@dataclass
class PhoneConfig:
    bind_host: str = "127.0.0.1"
    sip_port: int = 0
    transport: str = "udp"
    user_agent: str = "voiplab-test-pjsua2"
    log_file: Path | None = None
    answer: AnswerPolicy = field(default_factory=AnswerPolicy)


class _Call(pj.Call):  # type: ignore[misc]
    """pjsua2 call whose callbacks report into the owning phone."""

    def __init__(self, phone: PjPhone, account: pj.Account, call_id: int = pj.PJSUA_INVALID_ID):
        super().__init__(account, call_id)
        self._phone = phone

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        self._phone._on_call_state(self)

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        self._phone._on_call_media_state(self)


class _Account(pj.Account):  # type: ignore[misc]
    def __init__(self, phone: PjPhone):
        super().__init__()
        self._phone = phone

    def onRegState(self, prm: pj.OnRegStateParam) -> None:
        self._phone.emit(
            {
                "event": "reg",
                "code": int(prm.code),
                "reason": str(prm.reason),
                "expiration": int(prm.expiration),
            }
        )

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
        self._phone._on_incoming(self, prm.callId)


class _LogCollector(pj.LogWriter):  # type: ignore[misc]
    """Keeps pjlib's log lines in memory and appends them, unbuffered, to a file.

    May be called from pjmedia's native threads: list.append and a file write under the GIL.
    Must outlive the Endpoint (pjsua logs during libDestroy), so the phone keeps it.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._lines: list[str] = []
        self._file = path.open("a", encoding="utf-8", errors="replace")

    def write(self, entry: pj.LogEntry) -> None:
        msg = str(entry.msg)
        self._lines.append(msg)
        with contextlib.suppress(ValueError, OSError):
            self._file.write(msg if msg.endswith("\n") else msg + "\n")
            self._file.flush()

    def text(self) -> str:
        return "".join(m if m.endswith("\n") else m + "\n" for m in self._lines).replace("\r\n", "\n")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()


@contextlib.contextmanager
def _stdout_muted() -> Iterator[None]:
    """libCreate() prints pjlib banner lines to fd 1 before log settings apply."""
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


class PjPhone:
    """One pjsua2 Endpoint with at most one account; pump it with `run_until()`."""

    def __init__(self, config: PhoneConfig, sink: EventSink | None = None) -> None:
        self.config = config
        self.events: list[Event] = []
        self._sink = sink
        self._ep: pj.Endpoint | None = None
        self._account: _Account | None = None
        self._calls: dict[int, _Call] = {}
        # pjsua reuses call ids (4 slots in this build): a finished call's Python object must not be
        # dropped when its id is reused, or its destructor hangs up the new call with the same id
        self._retired: list[_Call] = []
        self._pending: list[_PendingAction] = []
        self._confirmed_at: dict[int, float] = {}
        self._log_writer: _LogCollector | None = None
        self.sip_port = 0

    # ----- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        if self._ep is not None:
            raise RuntimeError("phone already started")
        ep = pj.Endpoint()
        with _stdout_muted():
            ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = False
        cfg.uaConfig.userAgent = self.config.user_agent
        cfg.uaConfig.maxCalls = 8
        cfg.medConfig.threadCnt = 0
        cfg.medConfig.hasIoqueue = False
        cfg.medConfig.noVad = True
        cfg.logConfig.consoleLevel = 0
        cfg.logConfig.msgLogging = 1 if self.config.log_file else 0
        cfg.logConfig.level = 5 if self.config.log_file else 0
        if self.config.log_file:
            # pjlib's own log file is stdio-buffered (the last messages appear only at
            # libDestroy); a writer of ours sees every line at once
            self._log_writer = _LogCollector(self.config.log_file)
            cfg.logConfig.writer = self._log_writer  # replaces the console: takes consoleLevel
            cfg.logConfig.consoleLevel = 5
            cfg.logConfig.decor = cfg.logConfig.decor & ~pj.PJ_LOG_HAS_NEWLINE
        with _stdout_muted():
            ep.libInit(cfg)
            tcfg = pj.TransportConfig()
            tcfg.boundAddress = self.config.bind_host.strip("[]")
            tcfg.port = self.config.sip_port
            ttype = _transport_type(self.config.transport, self.config.bind_host)
            tid = ep.transportCreate(ttype, tcfg)
            ep.audDevManager().setNullDev()
            ep.libStart()
        self._ep = ep
        self._transport_id = tid
        self.sip_port = int(ep.transportGetInfo(tid).localName.rsplit(":", 1)[1])
        self.emit({"event": "ready", "sip_port": self.sip_port, "pid": os.getpid()})

    def close(self) -> None:
        """Hang up, unregister, destroy the Endpoint (so a new one may be created later).

        Calls and the registration are ended explicitly, each awaited for at most a second;
        libDestroy then runs with NO_NETWORK, because otherwise pjsua sleeps up to a second
        more waiting for transactions that have nothing left to say.
        """
        if self._ep is None:
            return
        with contextlib.suppress(Exception):
            if self.active_calls():
                self._ep.hangupAllCalls()
                self.run_until(lambda: not self.active_calls(), 1.0)
        if self._account is not None:
            with contextlib.suppress(Exception):
                if self._account.getInfo().regIsActive:
                    seen = len(self.events)
                    self._account.setRegistration(False)
                    self.run_until(
                        lambda: any(e["event"] == "reg" for e in self.events[seen:]), 1.0
                    )
            with contextlib.suppress(Exception):
                self._account.shutdown()
            self._account = None
        self._calls.clear()
        self._retired.clear()
        ep, self._ep = self._ep, None
        with contextlib.suppress(Exception):
            ep.libDestroy(pj.PJSUA_DESTROY_NO_NETWORK)
        del ep
        if self._log_writer is not None:
            self._log_writer.close()

    @property
    def running(self) -> bool:
        return self._ep is not None

    def __enter__(self) -> PjPhone:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- registration ----------------------------------------------------------------------
    def add_account(self, account: SipAccount) -> None:
        """Create the account; with `account.register` the REGISTER goes out at once."""
        if self._ep is None:
            raise RuntimeError("start() the phone first")
        if self._account is not None:
            raise RuntimeError("one account per phone")
        acfg = pj.AccountConfig()
        acfg.idUri = account.aor
        register = account.register and bool(account.registrar)
        acfg.regConfig.registrarUri = account.server_uri() if register else ""
        acfg.regConfig.registerOnAdd = register
        acfg.regConfig.timeoutSec = account.expires
        acfg.regConfig.retryIntervalSec = 0  # a refused REGISTER stays refused: no retry storms
        acfg.regConfig.firstRetryIntervalSec = 0
        acfg.regConfig.unregWaitMsec = 1000
        if account.registrar:
            acfg.sipConfig.proxies.append(account.server_uri() + ";lr")
        acfg.sipConfig.transportId = self._transport_id
        cred = pj.AuthCredInfo("digest", "*", account.username, 0, account.password)
        if account.algorithm is not None:
            cred.algoType = ALGORITHMS[account.algorithm]
        acfg.sipConfig.authCreds.append(cred)
        acfg.natConfig.iceEnabled = False
        acfg.natConfig.sipStunUse = pj.PJSUA_STUN_USE_DISABLED
        acfg.natConfig.mediaStunUse = pj.PJSUA_STUN_USE_DISABLED
        acfg.natConfig.contactRewriteUse = 0
        acfg.natConfig.viaRewriteUse = 0
        acfg.natConfig.sdpNatRewriteUse = 0
        v6 = ":" in self.config.bind_host
        # RTP stays on IPv4 loopback: pjsua_acc_add asserts on ipv6Use together with a bound
        # transportId, and the IPv6 tests are about SIP
        acfg.mediaConfig.transportConfig.boundAddress = (
            "127.0.0.1" if v6 else self.config.bind_host
        )
        acfg.mediaConfig.transportConfig.port = 0
        acfg.mediaConfig.transportConfig.randomizePort = True
        acc = _Account(self)
        acc.create(acfg)
        self._account = acc

    def unregister(self) -> None:
        if self._account is None:
            raise RuntimeError("no account")
        self._account.setRegistration(False)

    def reg_info(self) -> Event:
        if self._account is None:
            raise RuntimeError("no account")
        info = self._account.getInfo()
        return {"active": bool(info.regIsActive), "status": int(info.regStatus)}

    # ----- calls -----------------------------------------------------------------------------
    def call(self, uri: str) -> int:
        """Send an INVITE to `uri`; returns the pjsua call id used in events."""
        if self._account is None:
            raise RuntimeError("add_account() first")
        c = _Call(self, self._account)
        prm = pj.CallOpParam(True)
        c.makeCall(uri, prm)
        cid = int(c.getId())
        self._keep(cid, c)
        self.emit({"event": "calling", "call": cid, "uri": uri})
        return cid

    def answer(self, call_id: int, code: int = 200) -> None:
        prm = pj.CallOpParam()
        prm.statusCode = code
        self._calls[call_id].answer(prm)

    def hangup(self, call_id: int | None = None, code: int = 0) -> None:
        """Hang up one call (BYE/CANCEL, or a final `code` for a ringing incoming call) or all."""
        ids = [call_id] if call_id is not None else list(self._calls)
        for cid in ids:
            c = self._calls.get(cid)
            if c is None or not c.isActive():
                continue
            prm = pj.CallOpParam()
            if code:
                prm.statusCode = code
            c.hangup(prm)

    def hold(self, call_id: int) -> None:
        """re-INVITE with a sendonly offer (in-dialog, routed by the Record-Route set)."""
        self._calls[call_id].setHold(pj.CallOpParam(True))

    def unhold(self, call_id: int) -> None:
        prm = pj.CallOpParam(True)
        prm.opt.flag = pj.PJSUA_CALL_UNHOLD
        self._calls[call_id].reinvite(prm)

    def active_calls(self) -> list[int]:
        return [cid for cid, c in self._calls.items() if c.isActive()]

    # ----- event pump ------------------------------------------------------------------------
    def pump(self, ms: int = 10) -> None:
        if self._ep is None:
            raise RuntimeError("phone not started")
        self._ep.libHandleEvents(ms)
        self._run_pending()

    def run_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Pump events until `predicate()` holds or `timeout` seconds pass; returns the predicate."""
        deadline = time.monotonic() + timeout
        while True:
            if predicate():
                return True
            if time.monotonic() >= deadline:
                return predicate()
            self.pump(10)

    def wait_event(self, timeout: float, **match: Any) -> Event | None:
        """First event (old or new) whose fields equal every `match` item, within `timeout`."""
        found: list[Event] = []

        def hit() -> bool:
            for ev in self.events:
                if all(ev.get(k) == v for k, v in match.items()):
                    found.append(ev)
                    return True
            return False

        self.run_until(hit, timeout)
        return found[0] if found else None

    def sip_log(self) -> str:
        """pjsip's log including every SIP message (only when `config.log_file` is set)."""
        if self._log_writer is None:
            return ""
        return self._log_writer.text()

    def sent_authorizations(self) -> list[str]:
        """Authorization / Proxy-Authorization header lines this phone sent, from the pjsip log."""
        return [
            line
            for direction, msg in sip_messages(self.sip_log())
            if direction == "TX"
            for line in msg.splitlines()
            if re.match(r"(?:Proxy-)?Authorization\s*:", line, flags=re.I)
        ]

    def _keep(self, call_id: int, call: _Call) -> None:
        old = self._calls.get(call_id)
        if old is not None and old is not call:
            self._retired.append(old)
        self._calls[call_id] = call

    # ----- callbacks (run inside pump) ---------------------------------------------------------
    def emit(self, event: Event) -> None:
        event.setdefault("t", round(time.monotonic(), 3))
        self.events.append(event)
        if self._sink is not None:
            self._sink(event)

    def _on_incoming(self, account: pj.Account, call_id: int) -> None:
        c = _Call(self, account, call_id)
        self._keep(call_id, c)
        info = c.getInfo()
        self.emit(
            {
                "event": "incoming",
                "call": call_id,
                "from": str(info.remoteUri),
                "to": str(info.localUri),
                "sip_call_id": str(info.callIdString),
            }
        )
        policy = self.config.answer
        if policy.code is None:
            return
        self.answer(call_id, 180)
        self._pending.append(
            _PendingAction(time.monotonic() + policy.delay, call_id, "answer", policy.code)
        )

    def _on_call_state(self, c: _Call) -> None:
        info = c.getInfo()
        cid = int(info.id)
        state = _CALL_STATES.get(info.state, str(info.state))
        event: Event = {
            "event": "call_state",
            "call": cid,
            "state": state,
            "code": int(info.lastStatusCode),
            "reason": str(info.lastReason),
            "sip_call_id": str(info.callIdString),
            "remote": str(info.remoteUri),
        }
        now = time.monotonic()
        if state == "CONFIRMED":
            self._confirmed_at[cid] = now
            hang = self.config.answer.hangup_after
            if hang is not None and info.role == pj.PJSIP_ROLE_UAS:
                self._pending.append(_PendingAction(now + hang, cid, "hangup"))
        if state == "DISCONNECTED":
            started = self._confirmed_at.pop(cid, None)
            event["duration"] = round(now - started, 3) if started is not None else 0.0
        self.emit(event)

    def _on_call_media_state(self, c: _Call) -> None:
        """Report the audio state (active / local_hold / remote_hold / …) and, when active,
        loop the null sound device through the call so RTP flows both ways."""
        info = c.getInfo()
        for i, media in enumerate(info.media):
            if media.type != pj.PJMEDIA_TYPE_AUDIO:
                continue
            status = _MEDIA_STATUS.get(media.status, str(media.status))
            if media.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                with contextlib.suppress(Exception):
                    aud = c.getAudioMedia(i)
                    assert self._ep is not None
                    self._ep.audDevManager().getCaptureDevMedia().startTransmit(aud)
                    aud.startTransmit(self._ep.audDevManager().getPlaybackDevMedia())
            self.emit(
                {
                    "event": "media",
                    "call": int(info.id),
                    "status": status,
                    "active": status == "active",
                }
            )

    def _run_pending(self) -> None:
        if not self._pending:
            return
        now = time.monotonic()
        due = [p for p in self._pending if p.due <= now]
        self._pending = [p for p in self._pending if p.due > now]
        for p in due:
            c = self._calls.get(p.call_id)
            if c is None or not c.isActive():
                continue
            with contextlib.suppress(pj.Error):
                if p.action == "answer":
                    self.answer(p.call_id, p.code)
                else:
                    self.hangup(p.call_id)


def _transport_type(transport: str, host: str) -> int:
    v6 = ":" in host
    if transport == "tcp":
        return pj.PJSIP_TRANSPORT_TCP6 if v6 else pj.PJSIP_TRANSPORT_TCP
    if transport == "udp":
        return pj.PJSIP_TRANSPORT_UDP6 if v6 else pj.PJSIP_TRANSPORT_UDP
    raise ValueError(f"unsupported transport {transport!r} (udp or tcp)")
