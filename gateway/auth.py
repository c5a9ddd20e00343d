"""Digest authentication of REGISTER and INVITE against the directory snapshot.

The registrar (401/WWW-Authenticate) and the proxy (407/Proxy-Authenticate)
share this: one nonce manager, one realm, the same answer for an unknown user
and a wrong password (403 ``Forbidden``, after the same hash work) so nobody
can enumerate accounts by probing.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from gateway.sip import digest
from gateway.sip.digest import Algorithm, NonceManager, NonceState
from gateway.sip.errors import ParseError
from gateway.sip.uri import SipURI, parse_uri

if TYPE_CHECKING:
    from gateway.sip.message import Request
    from provisioning.directory import DirectorySnapshot, LineEntry


class Verdict(Enum):
    OK = "ok"
    BAD_URI = "bad-uri"  # digest-uri is not the Request-URI: 400 (RFC 2617 §3.2.2.5)
    CHALLENGE = "challenge"  # no (usable) credentials: answer 401/407 with a fresh nonce
    STALE = "stale"  # right password, expired nonce: challenge again with stale=true
    FORBIDDEN = "forbidden"  # wrong password, unknown user, replayed nonce-count


@dataclass(slots=True)
class AuthResult:
    verdict: Verdict
    line: LineEntry | None = None
    username: str | None = None


# A fixed HA1 to hash against when the user is unknown, so the work (and time) matches a real check.
_DUMMY_HA1 = {Algorithm.MD5: "0" * 32, Algorithm.SHA256: "0" * 64}


class Authenticator:
    def __init__(self, realm: str, nonces: NonceManager, algorithms: tuple[Algorithm, ...]) -> None:
        self.realm = realm
        self.nonces = nonces
        self.algorithms = algorithms

    def challenges(self, now: float, stale: bool = False) -> list[str]:
        """Header values, one per algorithm in preference order (RFC 8760 §2.4)."""
        nonce = self.nonces.issue(now)
        return [digest.build_challenge(self.realm, nonce, algorithm=alg, stale=stale) for alg in self.algorithms]

    def check(self, req: Request, header_key: str, snapshot: DirectorySnapshot, now: float) -> AuthResult:
        creds = None
        for value in req.get_all(header_key):
            try:
                candidate = digest.parse_credentials(value)
            except ParseError:
                continue
            if candidate.realm == self.realm:
                creds = candidate
                break
        if creds is None:
            return AuthResult(Verdict.CHALLENGE)
        if creds.algorithm not in self.algorithms or not creds.qop:
            # only what we offered: our algorithms, always with qop=auth (RFC 2069 answers carry no
            # nonce-count, so they could be replayed for the nonce's whole life)
            return AuthResult(Verdict.CHALLENGE)
        if not _same_uri(creds.uri, req):
            return AuthResult(Verdict.BAD_URI, username=creds.username)  # credentials for another target
        state = self.nonces.check(creds.nonce, now)
        if state is NonceState.INVALID:
            return AuthResult(Verdict.CHALLENGE)
        line = snapshot.lines.get(creds.username)
        if line is not None and line.realm == self.realm:
            ha1 = line.ha1_sha256 if creds.algorithm is Algorithm.SHA256 else line.ha1_md5
        else:
            ha1, line = _DUMMY_HA1[creds.algorithm], None
        good = digest.verify(creds, ha1, req.method)
        if not good or line is None:
            return AuthResult(Verdict.FORBIDDEN, username=creds.username)
        if state is NonceState.STALE or not self.nonces.check_nc(creds.nonce, creds.nc, now):
            # expired nonce, or a nonce-count already used (a replay, or a client that lost count):
            # challenge again with stale=true so an honest client retries without asking its user
            return AuthResult(Verdict.STALE, line=line, username=creds.username)
        return AuthResult(Verdict.OK, line=line, username=creds.username)


def _same_uri(digest_uri: str, req: Request) -> bool:
    """RFC 3261 §22.4 / RFC 2617 §3.2.2.5: the digest-uri must name the Request-URI.

    Equal strings are the common case; otherwise compare the parsed URIs' scheme,
    user, host and port, since some phones re-serialise (case, default port).
    """
    if digest_uri == req.uri:
        return True
    try:
        a, b = parse_uri(digest_uri), req.ruri
    except ParseError:
        return False
    if not isinstance(a, SipURI) or not isinstance(b, SipURI):
        return False
    return (a.scheme, a.user, a.host, a.port or 5060) == (b.scheme, b.user, b.host, b.port or 5060)
