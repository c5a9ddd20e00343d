"""Send the RFC 4475 torture messages to a gateway and judge its answers.

Only ever run this inside a loopback-only network namespace (see `tests.peers.rfc4475_run`):
the messages carry foreign Via/Request-URI addresses that a buggy gateway might follow.

How replies are attributed: a gateway answers to the Via sent-by port (5060 when absent, 5050 for
`quotbal`) or, with `rport`, to the source port. The sender therefore listens on 127.0.0.1:5060
(which it also sends from), :5050 and :5070, and files each reply under the message with the same
Call-ID (a late retransmission of an earlier 400 lands on the earlier message), or the current one
when the Call-ID matches nothing. Non-2xx finals to INVITEs are ACKed, as a real UAC would, so the
gateway's INVITE server transactions end instead of retransmitting for 32 s.
"""

from __future__ import annotations

import re
import secrets
import select
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

INDEX_FILES = ("INDEX.tsv", "INDEX-extra.tsv")
LISTEN_PORTS = (5060, 5050, 5070)


@dataclass(frozen=True)
class TortureMessage:
    name: str
    section: str
    expected: str  # "valid" | "invalid"
    note: str
    data: bytes

    @property
    def is_response(self) -> bool:
        return self.data.startswith(b"SIP/")

    @property
    def method(self) -> str:
        return "" if self.is_response else self.data.split(b" ", 1)[0].decode("latin-1")

    @property
    def call_id(self) -> str | None:
        return _header(self.data, ("call-id", "i"))

    def transaction_key(self) -> tuple[str, str, str] | None:
        """(branch, sent-by, method) of the top Via (RFC 3261 §17.2.3), for requests only.

        Several RFC 4475 messages reuse one branch and sent-by (cparam01/cparam02,
        regescrt/escnull, unkscm/novelsc): a correct gateway absorbs the later one as a
        retransmission of the earlier transaction, so the table says so.
        """
        if self.is_response:
            return None
        via = _header(self.data, ("via", "v")) or ""
        sent_by = re.search(r"SIP\s*/\s*2\.0\s*/\s*[\w-]+\s+([^;,\s]+)", via, flags=re.I)
        branch = re.search(r";\s*branch\s*=\s*([^;,\s]+)", via, flags=re.I)
        if not (sent_by and branch and branch.group(1).startswith("z9hG4bK")):
            return None
        method = "INVITE" if self.method == "ACK" else self.method
        return (branch.group(1), sent_by.group(1).lower(), method)


@dataclass(frozen=True)
class Reply:
    port: int  # which of our sockets received it
    start_line: str
    call_id: str | None
    raw: bytes
    proto: str = "udp"

    @property
    def status(self) -> int | None:
        m = re.match(r"SIP/2\.0 (\d{3})", self.start_line)
        return int(m.group(1)) if m else None


@dataclass
class Outcome:
    message: TortureMessage
    replies: list[Reply] = field(default_factory=list)
    retransmission_of: str | None = None  # same transaction key as this earlier message

    def codes(self) -> list[int]:
        """Distinct status codes received, in order of first arrival (requests ignored)."""
        seen: list[int] = []
        for r in self.replies:
            if r.status is not None and r.status not in seen:
                seen.append(r.status)
        return seen

    def requests(self) -> list[str]:
        return [r.start_line for r in self.replies if r.status is None]


# --- expected verdicts -----------------------------------------------------------------------
# Source: ../shared/kit/README.md "Expected verdicts" and RFC 4475 §3. A valid message must never
# get a 400; an invalid one must get 400 unless listed here. DROP means "no answer at all" is
# allowed; ANY means the RFC lets a liberal element tolerate the message (answer or not), as long
# as the gateway survives. Responses must never be answered.
DROP = -1
ANY = -2
INVALID_ALLOWED: dict[str, frozenset[int]] = {
    "clerr": frozenset({400, DROP}),  # §3.1.2.2: UDP framing error, 400 or discard
    "insuf": frozenset({400, DROP}),  # §3.3.1: no Call-ID/From/To to build a 400 with
    "ncl": frozenset({400, DROP}),  # §3.1.2.3: negative Content-Length over UDP
    "trws": frozenset({ANY}),  # §3.1.2.10: "a liberal element may tolerate"
    "baddate": frozenset({ANY}),  # §3.1.2.12: 400, or process as if Date were absent
    "badvers": frozenset({505, 400}),  # §3.1.2.16: 505 Version Not Supported
    "mismatch02": frozenset({501, 400}),  # §3.1.2.18: unknown method, CSeq mismatch
}
# The code RFC 4475 / the kit names for some messages: shown in the table as advice, not enforced
# (a proxy may legitimately answer differently, e.g. forward instead of acting as the UAS).
ADVISED: dict[str, str] = {
    "esc02": "501",
    "unkscm": "416",
    "novelsc": "416",
    "invut": "415 (UAS) or forwarded",
    "badvers": "505",
    "cparam01": "200 (401 first)",
    "regescrt": "200 (401 first)",
    "intmeth": "501/405",
    "zeromf": "483",
    "noreason": "drop",
    "bcast": "drop",
    "bigcode": "drop",
}


@dataclass(frozen=True)
class Verdict:
    ok: bool
    why: str


def judge(outcome: Outcome) -> Verdict:
    msg = outcome.message
    codes = outcome.codes()
    if msg.is_response:
        if outcome.replies:
            return Verdict(False, "a response was answered (must be dropped or absorbed)")
        return Verdict(True, "dropped")
    if msg.expected == "valid":
        if 400 in codes:
            return Verdict(False, "valid message answered 400")
        return Verdict(True, "not rejected as malformed")
    allowed = INVALID_ALLOWED.get(msg.name, frozenset({400}))
    if ANY in allowed:
        return Verdict(True, "tolerated or rejected (both allowed)")
    finals = [c for c in codes if c >= 200]
    if not finals:
        if DROP in allowed:
            return Verdict(True, "dropped (allowed)")
        return Verdict(False, f"no final answer; expected {_fmt(allowed)}")
    if finals[0] in allowed:
        return Verdict(True, f"answered {finals[0]}")
    return Verdict(False, f"answered {finals[0]}; expected {_fmt(allowed)}")


def _fmt(allowed: Iterable[int]) -> str:
    names = {DROP: "drop", ANY: "any"}
    return " or ".join(names.get(c, str(c)) for c in sorted(allowed, key=lambda c: (c < 0, c)))


# --- loading -----------------------------------------------------------------------------------
def load_messages(directory: Path) -> list[TortureMessage]:
    """Every message listed in INDEX.tsv and, if present, INDEX-extra.tsv (same columns)."""
    out: list[TortureMessage] = []
    seen: set[str] = set()
    for index_name in INDEX_FILES:
        index = directory / index_name
        if not index.is_file():
            continue
        for line in index.read_text().splitlines()[1:]:
            if not line.strip():
                continue
            cols = line.split("\t", 3)
            if len(cols) < 3:
                raise ValueError(f"{index}: malformed row {line!r}")
            name, section, expected = cols[0], cols[1], cols[2]
            if expected not in ("valid", "invalid"):
                raise ValueError(f"{index}: {name}: expected must be valid/invalid")
            if name in seen:
                raise ValueError(f"{index}: {name} listed twice")
            seen.add(name)
            data = (directory / f"{name}.dat").read_bytes()
            out.append(TortureMessage(name, section, expected, cols[3] if len(cols) > 3 else "", data))
    if not out:
        raise FileNotFoundError(f"no INDEX.tsv with messages in {directory}")
    for msg in list(out):
        for suffix, derive in DERIVED.get(msg.name, ()):
            out.append(
                TortureMessage(f"{msg.name}{suffix}", msg.section, msg.expected, msg.note, derive(msg.data))
            )
    return out


# The kit README: baddn's archive bytes lack the message's final empty line (sipping list
# msg06711); "test both forms". The derived form is sent right after the list.
DERIVED: dict[str, tuple[tuple[str, Callable[[bytes], bytes]], ...]] = {
    "baddn": (("+crlf", lambda data: data + b"\r\n"),),
}


# --- wire helpers ------------------------------------------------------------------------------
_HEADER_END = re.compile(rb"\r?\n\r?\n")


def _header(data: bytes, names: tuple[str, ...]) -> str | None:
    """First value of a header (any of `names`, case-insensitive), unfolded; None if absent."""
    head = _HEADER_END.split(data, 1)[0].decode("latin-1")
    lines = re.split(r"\r?\n", head)[1:]
    for i, line in enumerate(lines):
        m = re.match(r"([!-9;-~]+)\s*:(.*)$", line)
        if m and m.group(1).lower() in names:
            value = m.group(2)
            for cont in lines[i + 1 :]:
                if cont[:1] in (" ", "\t"):
                    value += " " + cont.strip()
                else:
                    break
            return value.strip()
    return None


def _header_lines(data: bytes, name: str) -> list[str]:
    head = _HEADER_END.split(data, 1)[0].decode("latin-1")
    return [
        ln
        for ln in re.split(r"\r?\n", head)[1:]
        if re.match(rf"{re.escape(name)}\s*:", ln, flags=re.I)
    ]


def ack_for(request: bytes, response: bytes) -> bytes | None:
    """The ACK a UAC sends for a non-2xx final answer to its INVITE (RFC 3261 §17.1.1.3)."""
    first = request.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
    vias = _header_lines(response, "via") or _header_lines(response, "v")
    frm = _header_lines(response, "from") or _header_lines(response, "f")
    to = _header_lines(response, "to") or _header_lines(response, "t")
    cid = _header_lines(response, "call-id") or _header_lines(response, "i")
    cseq = _header(response, ("cseq",))
    if len(first) < 3 or not (vias and frm and to and cid and cseq):
        return None
    seq = cseq.split()[0]
    lines = [
        f"ACK {first[1]} SIP/2.0",
        vias[0],
        frm[0],
        to[0],
        cid[0],
        f"CSeq: {seq} ACK",
        "Max-Forwards: 70",
        "Content-Length: 0",
        "",
        "",
    ]
    return "\r\n".join(lines).encode("latin-1")


def options_request(gateway: tuple[str, int], local: tuple[str, int], uri: str | None = None) -> bytes:
    """A well-formed OPTIONS addressed to the gateway itself (the keep-alive phones send)."""
    host = f"[{gateway[0]}]" if ":" in gateway[0] else gateway[0]
    lhost = f"[{local[0]}]" if ":" in local[0] else local[0]
    target = uri or f"sip:{host}:{gateway[1]}"
    tag = secrets.token_hex(4)
    lines = [
        f"OPTIONS {target} SIP/2.0",
        f"Via: SIP/2.0/UDP {lhost}:{local[1]};branch=z9hG4bK-probe-{secrets.token_hex(6)};rport",
        "Max-Forwards: 70",
        f"From: <sip:probe@{lhost}>;tag={tag}",
        f"To: <{target}>",
        f"Call-ID: probe-{secrets.token_hex(8)}@{lhost}",
        "CSeq: 1 OPTIONS",
        "Accept: application/sdp",
        "User-Agent: voiplab-rfc4475-sender",
        "Content-Length: 0",
        "",
        "",
    ]
    return "\r\n".join(lines).encode()


# --- the sender --------------------------------------------------------------------------------
class TortureSender:
    """Owns the listening sockets; `run()` sends a message list and returns the outcomes."""

    def __init__(
        self,
        gateway: tuple[str, int],
        *,
        host: str = "127.0.0.1",
        ports: Iterable[int] = LISTEN_PORTS,
        max_wait: float = 1.0,
        settle: float = 0.15,
    ) -> None:
        self.gateway = gateway
        self.max_wait = max_wait
        self.settle = settle
        self.socks: dict[int, socket.socket] = {}
        # TCP too: some Vias claim TCP, and a gateway that answers over the Via's transport
        # instead of the one the request came on shows up as a "tcp" reply in the table
        self.listeners: list[socket.socket] = []
        self.conns: list[socket.socket] = []
        for port in ports:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            s.bind((host, port))
            self.socks[port] = s
            t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            t.bind((host, port))
            t.listen(8)
            self.listeners.append(t)
        self.main = next(iter(self.socks.values()))
        self.local = self.main.getsockname()

    def close(self) -> None:
        for s in [*self.socks.values(), *self.listeners, *self.conns]:
            s.close()

    def __enter__(self) -> TortureSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _receive(self, timeout: float) -> list[Reply]:
        watched = [*self.socks.values(), *self.listeners, *self.conns]
        ready, _, _ = select.select(watched, [], [], max(timeout, 0))
        out: list[Reply] = []
        for s in ready:
            if s in self.listeners:
                conn, _ = s.accept()
                self.conns.append(conn)
                continue
            data = s.recv(65535)
            if s in self.conns:
                if not data:
                    self.conns.remove(s)
                    s.close()
                    continue
                proto = "tcp"  # one recv taken as one message: enough to show where it went
            else:
                proto = "udp"
            line = data.split(b"\r\n", 1)[0].decode("latin-1")
            port = int(s.getsockname()[1])
            out.append(Reply(port, line, _header(data, ("call-id", "i")), data, proto))
        return out

    def probe(self, uri: str | None = None, timeout: float = 2.0) -> Reply | None:
        """Send one OPTIONS to the gateway; return its final answer (or None)."""
        req = options_request(self.gateway, self.local, uri)
        cid = _header(req, ("call-id",))
        for attempt in range(3):  # UDP: retransmit like Timer E would
            self.main.sendto(req, self.gateway)
            deadline = time.monotonic() + timeout / 3 * (attempt + 1)
            while time.monotonic() < deadline:
                for r in self._receive(deadline - time.monotonic()):
                    if r.call_id == cid and (r.status or 0) >= 200:
                        return r
        return None

    def run(self, messages: list[TortureMessage]) -> list[Outcome]:
        outcomes = [Outcome(m) for m in messages]
        by_call_id: dict[str, Outcome] = {}  # Call-ID → latest message sent with it
        by_key: dict[tuple[str, str, str], str] = {}
        for outcome in outcomes:
            key = outcome.message.transaction_key()
            if key is not None:
                outcome.retransmission_of = by_key.get(key)
                by_key.setdefault(key, outcome.message.name)
            if outcome.message.call_id:
                by_call_id[outcome.message.call_id] = outcome
            self.main.sendto(outcome.message.data, self.gateway)
            start = time.monotonic()
            final_at: float | None = None
            while True:
                now = time.monotonic()
                limit = start + self.max_wait
                if final_at is not None:
                    limit = min(limit, final_at + self.settle)
                if now >= limit:
                    break
                for reply in self._receive(limit - now):
                    owner = by_call_id.get(reply.call_id or "", outcome)
                    owner.replies.append(reply)
                    status = reply.status
                    if owner is outcome and status is not None and status >= 200:
                        final_at = final_at or time.monotonic()
                    if (
                        status is not None
                        and status >= 300
                        and owner.message.method == "INVITE"
                        and b"INVITE" in (_header(reply.raw, ("cseq",)) or "").encode()
                    ):
                        ack = ack_for(owner.message.data, reply.raw)
                        if ack is not None:
                            self.main.sendto(ack, self.gateway)
        # late arrivals (e.g. a 400 retransmitted after the last window)
        for reply in self._receive(self.settle):
            owner = by_call_id.get(reply.call_id or "", outcomes[-1])
            owner.replies.append(reply)
        return outcomes


def format_table(outcomes: list[Outcome]) -> str:
    """One row per message: name, section, expected, what came back, verdict, advice."""
    rows = [("name", "section", "expected", "answers", "verdict", "why", "kit advises", "note")]
    for o in outcomes:
        v = judge(o)
        answers = ",".join(str(c) for c in o.codes()) or "-"
        if any(r.proto == "tcp" for r in o.replies):
            answers += " (tcp!)"
        if o.requests():
            answers += " +req:" + ";".join(r.split(" ", 1)[0] for r in o.requests())
        note = ""
        if o.retransmission_of:
            note = f"same branch/sent-by/method as {o.retransmission_of} (may be absorbed as its retransmission)"
        elif not o.message.is_response and not [c for c in o.codes() if c >= 200]:
            note = "no final answer within the wait"
        rows.append(
            (
                o.message.name,
                o.message.section,
                o.message.expected,
                answers,
                "ok" if v.ok else "FAIL",
                v.why,
                ADVISED.get(o.message.name, ""),
                note,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)
