"""The bench population: the same users for both servers, and SIPp injection files.

A `BenchUser` is what we ask a server to create (name, password, extension); a
`SipAccount` is what the server hands back: Kamailio keeps our name and password,
voiplab generates its own SIP username and password per device line. The SIPp
scenarios only ever see `SipAccount`s, through CSV injection files (`-inf`).
"""

from __future__ import annotations

import random
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# SIPp splits injection lines on ';' and ends the [authentication ...] keyword at ']' or
# a blank; keep credentials to characters that survive both.
_SAFE = set(string.ascii_letters + string.digits + "-_.+")


@dataclass(frozen=True, slots=True)
class BenchUser:
    name: str  # e.g. u0001: Kamailio's SIP username, voiplab's named user id local part
    password: str  # Kamailio only; voiplab generates its own
    extension: str  # 4+ digits, unique
    role: str = ""  # "register", "caller", "callee" or "probe" (voiplab packs registrants on desk phones)


@dataclass(frozen=True, slots=True)
class SipAccount:
    """Credentials a SIP client uses, and what a caller puts in the Request-URI to reach it."""

    username: str
    password: str
    dial: str

    def __post_init__(self) -> None:
        for label, value in (("username", self.username), ("password", self.password),
                             ("dial", self.dial)):
            if not value or not set(value) <= _SAFE:
                raise ValueError(
                    f"SIP {label} {value!r} has characters SIPp injection files cannot carry "
                    "(allowed: letters, digits, - _ . +)"
                )
        if _sipp_reads_as_hex(self.password):
            raise ValueError(f"SIP password {self.password!r} starts with 0x: SIPp would take it "
                             "for a hex key and answer every challenge wrongly")


def _sipp_reads_as_hex(password: str) -> bool:
    """SIPp treats an [authentication] password starting with "0x" as hex-encoded bytes
    (seen: Kamailio refused exactly the one bench user whose password began "0x")."""
    return password[:2].lower() == "0x"


@dataclass(frozen=True, slots=True)
class Population:
    """Users by role. Register users and call users are disjoint, so the REGISTER run's
    bindings (Contacts at SIPp client ports that are gone afterwards) never become fork
    targets of the call run."""

    registrants: tuple[BenchUser, ...]
    callers: tuple[BenchUser, ...]
    callees: tuple[BenchUser, ...]
    probe: BenchUser  # the latency probe's own line (bench/probe.py), used by nothing else

    @property
    def everyone(self) -> tuple[BenchUser, ...]:
        return self.registrants + self.callers + self.callees + (self.probe,)


def make_population(registrants: int, call_pairs: int, seed: int = 5060) -> Population:
    """Deterministic names and extensions; passwords from a seeded RNG (lab values only)."""
    if registrants < 1 or call_pairs < 1:
        raise ValueError("need at least one registrant and one call pair")
    rng = random.Random(seed)
    alphabet = string.ascii_letters + string.digits

    def role(i: int) -> str:
        if i <= registrants:
            return "register"
        if i <= registrants + call_pairs:
            return "caller"
        return "callee" if i <= registrants + 2 * call_pairs else "probe"

    def user(i: int) -> BenchUser:
        pw = "".join(rng.choice(alphabet) for _ in range(16))
        while _sipp_reads_as_hex(pw):  # 1 in ~3,800: a few of 10,000 users
            pw = "".join(rng.choice(alphabet) for _ in range(16))
        return BenchUser(name=f"u{i:05d}", password=pw, extension=str(20000 + i), role=role(i))

    users = [user(i) for i in range(1, registrants + 2 * call_pairs + 2)]
    return Population(
        registrants=tuple(users[:registrants]),
        callers=tuple(users[registrants:registrants + call_pairs]),
        callees=tuple(users[registrants + call_pairs:registrants + 2 * call_pairs]),
        probe=users[-1],
    )


def _auth(acc: SipAccount) -> str:
    return f"[authentication username={acc.username} password={acc.password}]"


def _write(path: Path, lines: Sequence[str]) -> Path:
    path.write_text("SEQUENTIAL\n" + "".join(line + "\n" for line in lines))
    return path


def write_register_csv(path: Path, accounts: Sequence[SipAccount], domain: str,
                       expires: int = 120) -> Path:
    """bench/sipp/register.xml: user;domain;[authentication];expires"""
    return _write(path, [f"{a.username};{domain};{_auth(a)};{expires}" for a in accounts])


def write_callee_csv(path: Path, callees: Sequence[SipAccount], domain: str,
                     uas_addresses: Sequence[str]) -> Path:
    """bench/sipp/register_callee.xml: user;domain;[authentication];uas host:port.
    Callee i is bound to UAS instance i mod len(uas_addresses)."""
    return _write(path, [
        f"{a.username};{domain};{_auth(a)};{uas_addresses[i % len(uas_addresses)]}"
        for i, a in enumerate(callees)
    ])


def write_calls_csv(path: Path, callers: Sequence[SipAccount], callees: Sequence[SipAccount],
                    domain: str) -> Path:
    """bench/sipp/uac_call.xml: caller;domain;[authentication of caller];callee dial string.
    Caller i calls callee i."""
    if len(callers) != len(callees):
        raise ValueError("callers and callees must pair up")
    return _write(path, [
        f"{c.username};{domain};{_auth(c)};{e.dial}" for c, e in zip(callers, callees, strict=True)
    ])
