"""HTTP Digest authentication for SIP (RFC 2617, RFC 7616, RFC 8760), sans-IO.

What a registrar or proxy needs and nothing more: parse the ``Authorization`` /
``Proxy-Authorization`` value a phone sends, build the ``WWW-Authenticate`` /
``Proxy-Authenticate`` challenge, recompute the expected ``response`` and compare
it in constant time; plus stateless server nonces (:class:`NonceManager`) and
the nonce-count replay guard.

Supported: algorithms MD5 and SHA-256 (RFC 8760), ``qop=auth`` (and
``auth-int`` when the caller passes the body), and the RFC 2069 form without
``qop`` that some phones still send.  The ``-sess`` variants are refused: a
registrar stores HA1 per user, which ``-sess`` would make per nonce.

The parser is written for the real-world spellings seen on the wire (see
``shared/notes/sip-peers.md`` §6): commas inside quoted strings
(``realm="a, b"``, ``qop="auth,auth-int"``), ``qop=auth`` quoted or not,
no space after commas (SIPp), double spaces (linphone), empty list elements.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from gateway.sip.errors import ParseError

__all__ = [
    "Algorithm",
    "Challenge",
    "Credentials",
    "NonceManager",
    "NonceState",
    "build_challenge",
    "build_credentials",
    "expected_response",
    "ha1",
    "parse_challenge",
    "parse_credentials",
    "verify",
]


class Algorithm(Enum):
    """Digest hash algorithms we implement (RFC 8760 §2)."""

    MD5 = "MD5"
    SHA256 = "SHA-256"


_HASHERS: dict[Algorithm, Callable[[bytes], str]] = {
    # usedforsecurity=False keeps MD5 available on FIPS builds: the protocol
    # mandates it, it is not our choice of primitive.
    Algorithm.MD5: lambda data: hashlib.md5(data, usedforsecurity=False).hexdigest(),
    Algorithm.SHA256: lambda data: hashlib.sha256(data).hexdigest(),
}

_ALGORITHM_NAMES: dict[str, Algorithm] = {"MD5": Algorithm.MD5, "SHA-256": Algorithm.SHA256}

_HEX_LEN = {Algorithm.MD5: 32, Algorithm.SHA256: 64}


def _enc(text: str) -> bytes:
    # Header values are str decoded with surrogateescape (see sip-api.md):
    # re-encoding this way hashes exactly the octets the client hashed.
    return text.encode("utf-8", "surrogateescape")


def _algorithm(value: str | None) -> Algorithm | None:
    """Map an ``algorithm`` parameter to :class:`Algorithm`; absent means MD5."""
    if value is None:
        return Algorithm.MD5
    return _ALGORITHM_NAMES.get(value.upper())


def ha1(alg: Algorithm, username: str, realm: str, password: str) -> str:
    """HA1 = H(username:realm:password), the value a registrar may store instead of the password."""
    return _HASHERS[alg](_enc(f"{username}:{realm}:{password}"))


def expected_response(
    alg: Algorithm,
    ha1: str,
    method: str,
    uri: str,
    nonce: str,
    nc: int | str | None,
    cnonce: str | None,
    qop: str | None,
    *,
    body: bytes = b"",
) -> str:
    """The ``response`` a client holding ``ha1`` must send (RFC 2617 §3.2.2.1, RFC 7616 §3.4.1).

    ``nc`` is hashed as sent: pass the client's literal 8-hex-digit string when
    you have it; an int is formatted as ``%08x``.  Without ``qop`` the RFC 2069
    form ``H(HA1:nonce:HA2)`` is used.  ``body`` only matters for ``auth-int``.
    """
    h = _HASHERS[alg]
    if qop is None:
        return h(_enc(f"{ha1}:{nonce}:{h(_enc(f'{method}:{uri}'))}"))
    if qop == "auth-int":
        ha2 = h(_enc(f"{method}:{uri}:") + h(body).encode("ascii"))
    else:
        ha2 = h(_enc(f"{method}:{uri}"))
    nc_text = f"{nc:08x}" if isinstance(nc, int) else (nc or "")
    return h(_enc(f"{ha1}:{nonce}:{nc_text}:{cnonce or ''}:{qop}:{ha2}"))


# --------------------------------------------------------------------------
# auth-param lists


# One `name = value` element followed by a comma or the end.  The value is a
# quoted-string (backslash escapes allowed) or a token-ish run without spaces,
# commas or quotes.  Matching from a position with re.match keeps this linear.
_PARAM_RE = re.compile(
    r"[\s,]*([!#$%&\'*+\-.^_`|~0-9A-Za-z]+)[ \t]*=[ \t]*"
    r'(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))[ \t]*(?:,|$)',
    re.DOTALL,
)
_TRAILER_RE = re.compile(r"[\s,]*")
_ESCAPE_RE = re.compile(r"\\(.)", re.DOTALL)
_HEX_RE = re.compile(r"[0-9A-Fa-f]+")
_SCHEME_RE = re.compile(r"\s*([!#$%&'*+\-.^_`|~0-9A-Za-z]+)(?:\s+|$)")


def _split_scheme(value: str, what: str) -> tuple[str, str]:
    m = _SCHEME_RE.match(value)
    if m is None:
        raise ParseError(f"Malformed {what}: missing scheme")
    return m.group(1), value[m.end() :]


def _parse_params(text: str, what: str) -> dict[str, str]:
    """Parse ``a=b, c="d, e"`` into a dict with lower-cased names.

    Duplicate names are an error (a client that sends two ``nonce``s is either
    broken or probing which one we check).
    """
    params: dict[str, str] = {}
    pos = 0
    end = len(text)
    # Anchored matches only (re.match at pos): finditer would retry from every
    # offset after a failure, which is quadratic on a hostile 16 KB header.
    while True:
        m = _PARAM_RE.match(text, pos)
        if m is None:
            break
        name, quoted, token = m.groups()
        name = name.lower()
        if quoted is not None:
            value = _ESCAPE_RE.sub(r"\1", quoted) if "\\" in quoted else quoted
        else:
            value = token
        if name in params:
            raise ParseError(f"Malformed {what}: duplicate {name}")
        params[name] = value
        pos = m.end()
        if pos == end:
            return params
    tail = _TRAILER_RE.match(text, pos)
    if tail is None or tail.end() != end:
        raise ParseError(f"Malformed {what} parameters")
    return params


# --------------------------------------------------------------------------
# credentials (client → server)


@dataclass(slots=True)
class Credentials:
    """A parsed ``Authorization`` / ``Proxy-Authorization`` Digest value.

    ``nc`` is the nonce count as an int (0 when absent, i.e. RFC 2069 clients);
    ``nc_raw`` is the literal text, which is what the response hashes.
    ``response`` is lower-cased hex.  ``params`` holds every parameter as sent
    (names lower-cased), including ones we do not interpret.
    """

    scheme: str
    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: Algorithm
    cnonce: str | None
    qop: str | None
    nc: int
    opaque: str | None
    nc_raw: str | None = None
    params: dict[str, str] = field(default_factory=dict)


_REQUIRED = ("username", "realm", "nonce", "uri", "response")


def parse_credentials(value: str) -> Credentials:
    """Parse a Digest credentials header value; :class:`ParseError` (400) when malformed.

    An algorithm other than MD5 / SHA-256 is reported as a ParseError too: the
    registrar cannot check it and must not pretend the user is unknown.
    """
    scheme, rest = _split_scheme(value, "Authorization")
    if scheme.lower() != "digest":
        raise ParseError("Unsupported authorization scheme")
    p = _parse_params(rest, "Authorization")
    for name in _REQUIRED:
        if name not in p:
            raise ParseError(f"Malformed Authorization: missing {name}")
    alg = _algorithm(p.get("algorithm"))
    if alg is None:
        raise ParseError("Unsupported digest algorithm")
    response = p["response"]
    if _HEX_RE.fullmatch(response) is None:
        raise ParseError("Malformed Authorization: response is not hex")
    qop = p.get("qop")
    nc = 0
    nc_raw = p.get("nc")
    cnonce = p.get("cnonce")
    if qop is not None:
        qop = qop.lower()
        if qop not in ("auth", "auth-int"):
            raise ParseError("Unsupported digest qop")
        if nc_raw is None or cnonce is None:
            raise ParseError("Malformed Authorization: qop without nc/cnonce")
    if nc_raw is not None:
        if len(nc_raw) != 8 or _HEX_RE.fullmatch(nc_raw) is None:
            raise ParseError("Malformed Authorization: nc must be 8 hex digits")
        nc = int(nc_raw, 16)
    return Credentials(
        scheme=scheme,
        username=p["username"],
        realm=p["realm"],
        nonce=p["nonce"],
        uri=p["uri"],
        response=response.lower(),
        algorithm=alg,
        cnonce=cnonce,
        qop=qop,
        nc=nc,
        opaque=p.get("opaque"),
        nc_raw=nc_raw,
        params=p,
    )


def verify(creds: Credentials, ha1: str, method: str, *, body: bytes = b"") -> bool:
    """True when ``creds.response`` matches; compared in constant time.

    ``ha1`` must have been computed with ``creds.algorithm``.  The caller still
    checks what this function cannot know: the nonce (:class:`NonceManager`),
    the realm, and that ``creds.uri`` is the Request-URI.
    """
    if len(creds.response) != _HEX_LEN[creds.algorithm]:
        return False
    expected = expected_response(
        creds.algorithm,
        ha1,
        method,
        creds.uri,
        creds.nonce,
        creds.nc_raw,
        creds.cnonce,
        creds.qop,
        body=body,
    )
    # response was checked to be hex at parse time, so it is ASCII.
    return hmac.compare_digest(expected.encode("ascii"), creds.response.encode("ascii"))


# --------------------------------------------------------------------------
# challenges (server → client)


@dataclass(slots=True)
class Challenge:
    """A parsed ``WWW-Authenticate`` / ``Proxy-Authenticate`` Digest value.

    ``algorithm`` is None when the server asks for one we do not implement
    (the raw name stays in ``params``).  ``qop`` lists the offered options in
    order, lower-cased; empty for an RFC 2069 challenge.
    """

    scheme: str
    realm: str
    nonce: str
    algorithm: Algorithm | None
    qop: tuple[str, ...]
    stale: bool
    opaque: str | None
    domain: str | None
    params: dict[str, str] = field(default_factory=dict)


def parse_challenge(value: str) -> Challenge:
    """Parse a Digest challenge header value; :class:`ParseError` when malformed."""
    scheme, rest = _split_scheme(value, "challenge")
    if scheme.lower() != "digest":
        raise ParseError("Unsupported authentication scheme")
    p = _parse_params(rest, "challenge")
    for name in ("realm", "nonce"):
        if name not in p:
            raise ParseError(f"Malformed challenge: missing {name}")
    qop_text = p.get("qop")
    qop: tuple[str, ...] = ()
    if qop_text is not None:
        qop = tuple(q.strip().lower() for q in qop_text.split(",") if q.strip())
    return Challenge(
        scheme=scheme,
        realm=p["realm"],
        nonce=p["nonce"],
        algorithm=_algorithm(p.get("algorithm")),
        qop=qop,
        stale=p.get("stale", "").lower() == "true",
        opaque=p.get("opaque"),
        domain=p.get("domain"),
        params=p,
    )


def _quote(text: str) -> str:
    if '"' in text or "\\" in text:
        text = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def build_challenge(
    realm: str,
    nonce: str,
    *,
    algorithm: Algorithm = Algorithm.MD5,
    stale: bool = False,
    opaque: str | None = None,
    qop: str | None = "auth",
) -> str:
    """Header value for ``WWW-Authenticate`` / ``Proxy-Authenticate``.

    ``qop=None`` produces an RFC 2069 challenge (no qop offered).
    """
    parts = [f"Digest realm={_quote(realm)}", f"nonce={_quote(nonce)}"]
    if opaque is not None:
        parts.append(f"opaque={_quote(opaque)}")
    if stale:
        parts.append("stale=true")
    parts.append(f"algorithm={algorithm.value}")
    if qop is not None:
        parts.append(f"qop={_quote(qop)}")
    return ", ".join(parts)


def build_credentials(
    challenge: Challenge,
    username: str,
    password: str,
    method: str,
    uri: str,
    *,
    cnonce: str,
    nc: int = 1,
    body: bytes = b"",
) -> str:
    """Answer ``challenge`` as a client would: the ``Authorization`` header value.

    Picks ``auth`` when offered (else ``auth-int``, else RFC 2069 form).  Used
    when the gateway itself authenticates upstream, and by tests.
    """
    alg = challenge.algorithm
    if alg is None:
        raise ParseError("Unsupported digest algorithm")
    qop: str | None = None
    if "auth" in challenge.qop:
        qop = "auth"
    elif "auth-int" in challenge.qop:
        qop = "auth-int"
    elif challenge.qop:
        raise ParseError("Unsupported digest qop")
    key = ha1(alg, username, challenge.realm, password)
    nc_text = f"{nc:08x}"
    resp = expected_response(
        alg, key, method, uri, challenge.nonce, nc_text, cnonce, qop, body=body
    )
    parts = [
        f"Digest username={_quote(username)}",
        f"realm={_quote(challenge.realm)}",
        f"nonce={_quote(challenge.nonce)}",
        f"uri={_quote(uri)}",
        f"response={_quote(resp)}",
        f"algorithm={alg.value}",
    ]
    if qop is not None:
        parts += [f"cnonce={_quote(cnonce)}", f"qop={qop}", f"nc={nc_text}"]
    if challenge.opaque is not None:
        parts.append(f"opaque={_quote(challenge.opaque)}")
    return ", ".join(parts)


# --------------------------------------------------------------------------
# server nonces


class NonceState(Enum):
    """Verdict on a nonce presented by a client."""

    VALID = "valid"
    STALE = "stale"  # ours and intact, but expired: answer with stale=true
    INVALID = "invalid"  # not ours, tampered with, or garbage


_STAMP = struct.Struct(">d")
_RAND_LEN = 9  # 8 + 9 + 16 = 33 bytes -> 44 base64 chars, no padding
_MAC_LEN = 16
_RAW_LEN = _STAMP.size + _RAND_LEN + _MAC_LEN
_B64_LEN = (_RAW_LEN * 4) // 3


class NonceManager:
    """Stateless, HMAC-signed server nonces plus a bounded nonce-count replay guard.

    ``nonce = base64url(issue_time || random || HMAC-SHA256(secret, issue_time || random)[:16])``.
    Any worker holding ``secret`` can verify a nonce another worker issued, so
    nothing needs sharing except the secret; the issue time comes from the
    injected clock (``now`` on every call), never from ``time.time()``.

    The replay guard (:meth:`check_nc`) remembers, per nonce, the highest
    nonce-count accepted.  Its table is bounded: entries whose nonce has
    expired are dropped, and when ``max_entries`` is still reached the oldest
    entries are evicted *and* every nonce issued no later than an evicted one is
    refused from then on (the client is re-challenged), so eviction can never
    let a replay through.

    ``check`` tolerates nonces stamped up to ``max_skew`` seconds in the future
    (another worker's clock may run slightly ahead).
    """

    __slots__ = ("_floor", "_key", "_last", "_lifetime", "_max_entries", "_max_skew", "_random", "_seen")

    def __init__(
        self,
        secret: bytes,
        lifetime: float,
        *,
        max_entries: int = 100_000,
        max_skew: float = 5.0,
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if not secret:
            raise ValueError("NonceManager needs a non-empty secret")
        if lifetime <= 0:
            raise ValueError("nonce lifetime must be positive")
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._key = secret
        self._lifetime = lifetime
        self._max_entries = max_entries
        self._max_skew = max_skew
        self._random = random
        # nonce -> (issue time, highest nc accepted); insertion order ~ first use.
        self._seen: dict[str, tuple[float, int]] = {}
        self._floor = float("-inf")
        # the last nonce whose MAC was checked: check() then check_nc() verify one nonce twice
        self._last: tuple[str, float | None] = ("", None)

    @property
    def lifetime(self) -> float:
        return self._lifetime

    def __len__(self) -> int:
        """Number of nonces currently tracked by the replay guard."""
        return len(self._seen)

    def _mac(self, payload: bytes) -> bytes:
        return hmac.digest(self._key, payload, "sha256")[:_MAC_LEN]

    def issue(self, now: float) -> str:
        payload = _STAMP.pack(now) + self._random(_RAND_LEN)
        return base64.urlsafe_b64encode(payload + self._mac(payload)).decode("ascii")

    def _issued_at(self, nonce: str) -> float | None:
        """Issue time of an intact nonce of ours, else None."""
        last = self._last
        if last[0] == nonce:
            return last[1]
        issued = self._verify_mac(nonce)
        self._last = (nonce, issued)
        return issued

    def _verify_mac(self, nonce: str) -> float | None:
        if len(nonce) != _B64_LEN:
            return None
        try:
            raw = base64.urlsafe_b64decode(nonce.encode("ascii"))
        except (UnicodeEncodeError, binascii.Error, ValueError):
            return None
        if len(raw) != _RAW_LEN:
            return None
        payload, mac = raw[:-_MAC_LEN], raw[-_MAC_LEN:]
        if not hmac.compare_digest(mac, self._mac(payload)):
            return None
        (issued,) = _STAMP.unpack_from(payload)
        if issued != issued:  # NaN cannot come from issue(); refuse it anyway
            return None
        return float(issued)

    def _state(self, issued: float | None, now: float) -> NonceState:
        if issued is None or issued > now + self._max_skew:
            return NonceState.INVALID
        if now - issued > self._lifetime:
            return NonceState.STALE
        return NonceState.VALID

    def check(self, nonce: str, now: float) -> NonceState:
        """VALID, STALE (ours but expired) or INVALID."""
        return self._state(self._issued_at(nonce), now)

    def check_nc(self, nonce: str, nc: int, now: float) -> bool:
        """Accept ``nc`` for ``nonce`` only if it is higher than any accepted before.

        Returns False for a replay (same or lower count), for a nonce that is
        not VALID, and for a nonce older than the eviction floor.  Call it only
        after :func:`verify` succeeded, so an attacker cannot burn a client's
        counts with forged responses.
        """
        entry = self._seen.get(nonce)
        if entry is not None:
            issued, highest = entry
            if now - issued > self._lifetime:
                del self._seen[nonce]
                return False
            if nc <= highest:
                return False
            self._seen[nonce] = (issued, nc)
            return True
        issued_at = self._issued_at(nonce)
        if issued_at is None or self._state(issued_at, now) is not NonceState.VALID:
            return False
        if issued_at <= self._floor or nc < 1:
            return False
        self._make_room(now)
        self._seen[nonce] = (issued_at, nc)
        return True

    def sweep(self, now: float) -> int:
        """Forget the counts of nonces that have expired (they are refused as stale anyway);
        returns how many. Without it an idle registrar kept one entry (~220 B) per nonce until
        the table filled: 100,000 phones registered once held 22 MB of dead counts.

        Entries sit in first-use order, which follows issue order to within a round trip, so
        the scan stops at the first live nonce: the cost is the number dropped, not the table.
        An expired entry behind a live one goes on a later sweep (or `_make_room`)."""
        horizon = now - self._lifetime
        expired = []
        for key, (issued, _nc) in self._seen.items():
            if issued >= horizon:
                break
            expired.append(key)
        for key in expired:
            del self._seen[key]
        return len(expired)

    def _make_room(self, now: float) -> None:
        seen = self._seen
        if len(seen) < self._max_entries:
            return
        horizon = now - self._lifetime
        for key in [k for k, (issued, _) in seen.items() if issued < horizon]:
            del seen[key]
        # Still full: evict the quarter issued earliest and raise the floor to
        # the newest of them (rare, so the sort does not matter).
        if len(seen) >= self._max_entries:
            drop = max(1, self._max_entries // 4)
            oldest = sorted(seen.items(), key=lambda kv: kv[1][0])[:drop]
            for key, _entry in oldest:
                del seen[key]
            self._floor = max(self._floor, oldest[-1][1][0])
