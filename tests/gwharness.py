"""An in-process gateway for tests: the real SipCore on a ManualClock, sends captured.

No sockets, no asyncio: a test injects bytes as if they came from a peer and
reads what the gateway sent, and moves time by hand.  The directory is real
(SQLite file, provisioning services), so R12 and friends are the real thing.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlmodel import Session

from gateway.auth import Authenticator
from gateway.calls import CallTracker
from gateway.clock import ManualClock
from gateway.core import Identity, SipCore
from gateway.location import LocationService
from gateway.policy import FloodGuard
from gateway.proxy import BuiltinRoutes, Proxy
from gateway.registrar import Registrar, RegistrarConfig
from gateway.sip.digest import Algorithm, NonceManager, build_credentials, parse_challenge
from gateway.sip.message import Request, Response
from gateway.sip.parser import parse_message
from gateway.transport import Peer
from hardware_profiles.catalog import load_catalog
from provisioning import services
from provisioning.db import init_db, make_engine
from provisioning.directory import Directory
from provisioning.events import ChangeBus
from provisioning.plans import PlanCatalog
from provisioning.schemas import AccountCreate, DeviceCreate, LineSpec, LocationCreate, UserCreate

DOMAIN = "lab.test"
GW = Peer("udp", "127.0.0.1", 5060)
PSTN = Peer("udp", "127.0.0.1", 5090)  # where the harness pretends the simulated PSTN trunk listens
CONFERENCE = Peer("udp", "127.0.0.1", 5091)
PSAP = Peer("udp", "127.0.0.1", 5092)


def builtin_routes(rooms: tuple[str, ...] = ("7001",)) -> BuiltinRoutes:
    """Routes to fake built-in peers: the tests read what the gateway sends to those addresses."""
    return BuiltinRoutes(
        pstn=lambda e164: f"sip:{e164}@{PSTN.host}:{PSTN.port}", pstn_peer=PSTN,
        conference=lambda d: f"sip:{d}@{CONFERENCE.host}:{CONFERENCE.port}" if d.split("*")[0] in rooms else None,
        conference_peer=CONFERENCE,
        psap_peer=PSAP, national_centre=f"sip:ecrc@{PSAP.host}:{PSAP.port}",
    )


@dataclass
class Phone:
    """A provisioned line and the fake UA that uses it."""

    username: str
    password: str
    extension: str
    device_id: int
    peer: Peer
    cseq: int = 1
    nc: int = 0
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def contact(self) -> str:
        return f"sip:{self.username}@{self.peer.host}:{self.peer.port}"


class Gateway:
    def __init__(self, tmp: Path, *, algorithms: tuple[Algorithm, ...] = (Algorithm.MD5, Algorithm.SHA256),
                 nonce_lifetime: float = 300.0, plan: str = "connect", guard: FloodGuard | None = None,
                 routes: BuiltinRoutes | None = None, plans: PlanCatalog | None = None) -> None:
        self.clock = ManualClock()
        self.engine = make_engine(f"sqlite:///{tmp / 'gw.db'}")
        init_db(self.engine)
        self.bus = ChangeBus()
        self.directory = Directory(self.engine)
        self.directory.load_all()
        self.bus.subscribe_many(self.directory.apply_many)
        self.catalog = load_catalog()
        self.records: list[dict[str, Any]] = []
        self.sent: list[tuple[bytes, Peer]] = []
        self.location = LocationService()
        self.auth = Authenticator(DOMAIN, NonceManager(secrets.token_bytes(16), nonce_lifetime), algorithms)
        self.registrar = Registrar(RegistrarConfig(), self.location, self.auth)
        self.calls = CallTracker(self.clock.now, self.clock.wall, self.records.append)
        ident = Identity(domain=DOMAIN, hosts={DOMAIN, "127.0.0.1"}, ports={"udp": 5060, "tcp": 5060},
                         advertise="127.0.0.1")
        self.core = SipCore(identity=ident, clock=self.clock, directory=self.directory,
                            registrar=self.registrar, location=self.location, calls=self.calls,
                            send=lambda data, peer: self.sent.append((data, peer)),
                            proxy_factory=lambda c: Proxy(c, self.auth, guard=guard, routes=routes, plans=plans))
        with Session(self.engine) as s:
            env = self._env(s)
            acc = services.create_account(env, AccountCreate(name="Lab", plan=plan, region="US"))
            assert acc.id is not None
            self.account_id = acc.id
            loc = services.create_location(env, acc.id, LocationCreate(
                country="US", a1="CA", a3="San Jose", rd="Main", hno="1", pc="95113",
                callback_number="+14085550100"))
            assert loc.id is not None
            self.location_id = loc.id
        self._port = 40000

    def _env(self, session: Session) -> services.ServiceEnv:
        return services.ServiceEnv(session=session, now=self.clock.wall, sip_domain=DOMAIN,
                                   catalog=self.catalog, bus=self.bus)

    def phone(self, extension: str, *, activate: bool = True, user_id: int | None = None) -> Phone:
        """Provision a user (unless given) and a softphone with one line; activate it by default."""
        with Session(self.engine) as s:
            env = self._env(s)
            if user_id is None:
                user = services.create_user(env, self.account_id, UserCreate(
                    named_user_id=f"person.{extension}@lab.test", display_name=f"Person {extension}",
                    extension=extension))
                assert user.id is not None
                user_id = user.id
            made = services.create_device(env, self.account_id, DeviceCreate(
                hardware_profile="softphone-desktop", name=f"phone {extension}",
                lines=[LineSpec(user_id=user_id)]))
            device_id = made.device.id
            assert device_id is not None
            if activate:
                services.bind_location(env, device_id, self.location_id)
                services.activate_device(env, device_id)
            line = made.lines[0]
            assert line.id is not None
            password = made.passwords[line.id]
        self._port += 2
        return Phone(line.sip_username, password, extension, device_id, Peer("udp", "127.0.0.1", self._port))

    # -- wire ------------------------------------------------------------------------------
    def inject(self, data: bytes | str, peer: Peer) -> None:
        self.core.on_message(data.encode() if isinstance(data, str) else data, peer)

    def take(self, peer: Peer | None = None) -> list[Request | Response]:
        """Messages sent (to ``peer`` if given) since the last take, parsed."""
        keep, out = [], []
        for data, to in self.sent:
            if peer is None or (to.host, to.port) == (peer.host, peer.port):
                out.append(parse_message(data))
            else:
                keep.append((data, to))
        self.sent = keep
        return out

    def one(self, peer: Peer) -> Request | Response:
        msgs = self.take(peer)
        assert len(msgs) == 1, f"expected one message to {peer}, got {msgs!r}"
        return msgs[0]


def request(method: str, uri: str, phone: Phone, *, to: str | None = None, call_id: str | None = None,
            cseq: int | None = None, branch: str | None = None, extra: list[str] | None = None,
            body: str = "", to_tag: str | None = None, from_tag: str | None = None) -> str:
    """A request as a phone would send it (CRLF, Content-Length)."""
    host, port = phone.peer.host, phone.peer.port
    to = to or f"<sip:{phone.username}@{DOMAIN}>"
    seq = cseq if cseq is not None else phone.cseq
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: SIP/2.0/UDP {host}:{port};branch={branch or 'z9hG4bK' + secrets.token_hex(6)};rport",
        "Max-Forwards: 70",
        f"From: <sip:{phone.username}@{DOMAIN}>;tag={from_tag or phone.tags.setdefault('from', secrets.token_hex(4))}",
        f"To: {to}" + (f";tag={to_tag}" if to_tag else ""),
        f"Call-ID: {call_id or secrets.token_hex(8)}@{host}",
        f"CSeq: {seq} {method}",
        f"Contact: <{phone.contact}>",
        *(extra or []),
        f"Content-Length: {len(body.encode())}",
        "",
        body,
    ]
    return "\r\n".join(lines)


SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"


def answer(req: Request, phone: Phone, status: int, reason: str, *, tag: str = "callee1", body: str = "") -> str:
    """A UAS answer to a forwarded request (Via, Record-Route, From, To+tag, Call-ID, CSeq copied)."""
    lines = [f"SIP/2.0 {status} {reason}", *(f"Via: {v}" for v in req.values("via")),
             *(f"Record-Route: {v}" for v in req.values("record-route")),
             f"From: {req.get('from')}", f"To: {req.get('to')};tag={tag}", f"Call-ID: {req.call_id}",
             f"CSeq: {req.cseq.seq} {req.cseq.method}", f"Contact: <{phone.contact}>",
             f"Content-Length: {len(body)}", "", body]
    return "\r\n".join(lines)


def answer_challenge(resp: Response, phone: Phone, method: str, uri: str, header: str) -> str:
    """The Authorization/Proxy-Authorization line answering the first challenge we support."""
    phone.nc += 1
    value = resp.get(header)
    assert value is not None, f"no {header} in {resp!r}"
    challenge = parse_challenge(value)
    creds = build_credentials(challenge, phone.username, phone.password, method, uri,
                              cnonce=secrets.token_hex(4), nc=1)
    return creds


def register(gw: Gateway, phone: Phone, *, expires: int = 600, contact: str | None = None) -> Response:
    """REGISTER → 401 → REGISTER with credentials; returns the final response."""
    call_id = f"reg-{phone.username}"
    uri = f"sip:{DOMAIN}"
    extra = [f"Expires: {expires}"]
    data = request("REGISTER", uri, phone, call_id=call_id, cseq=phone.cseq, extra=extra)
    if contact:
        data = data.replace(f"Contact: <{phone.contact}>", f"Contact: {contact}")
    phone.cseq += 1
    gw.inject(data, phone.peer)
    challenge = gw.one(phone.peer)
    assert isinstance(challenge, Response)
    if challenge.status != 401:
        return challenge
    auth = answer_challenge(challenge, phone, "REGISTER", uri, "www-authenticate")
    data = request("REGISTER", uri, phone, call_id=call_id, cseq=phone.cseq,
                   extra=[*extra, f"Authorization: {auth}"])
    if contact:
        data = data.replace(f"Contact: <{phone.contact}>", f"Contact: {contact}")
    phone.cseq += 1
    gw.inject(data, phone.peer)
    final = gw.one(phone.peer)
    assert isinstance(final, Response)
    return final
