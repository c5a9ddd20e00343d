"""HTTP Digest (RFC 7616, MD5, qop=auth) for the optional per-device protection
of configuration files.

Phones support digest on their provisioning fetches (notes §1.3: Poly URL
credentials, Cisco `--uid/--pwd`, Grandstream P1360/P1361). The server keeps
only HA1 per device. Nonces are stateless, `<timestamp>.<hmac>`, so any worker
can check them and nothing is stored; the key is per process (passed in).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field

from provisioning.credentials import PROVISIONING_REALM

NONCE_LIFETIME_S = 300
_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*,?')


def parse_authorization(header: str) -> dict[str, str] | None:
    """The parameters of a `Digest` Authorization header, or None."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "digest":
        return None
    params: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        m = _PARAM.match(rest, pos)
        if m is None or m.end() == pos:
            return None
        value = m.group(2)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params[m.group(1).lower()] = value
        pos = m.end()
    return params


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


@dataclass(frozen=True)
class DigestGuard:
    key: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    def nonce(self, now: float) -> str:
        stamp = str(int(now))
        mac = hmac.new(self.key, stamp.encode(), hashlib.sha256).hexdigest()[:32]
        return f"{stamp}.{mac}"

    def _nonce_ok(self, nonce: str, now: float) -> bool:
        stamp, _, mac = nonce.partition(".")
        if not stamp.isdigit():
            return False
        good = hmac.new(self.key, stamp.encode(), hashlib.sha256).hexdigest()[:32]
        return hmac.compare_digest(good, mac) and 0 <= now - int(stamp) <= NONCE_LIFETIME_S

    def challenge(self, now: float) -> str:
        return (f'Digest realm="{PROVISIONING_REALM}", qop="auth", algorithm=MD5, '
                f'nonce="{self.nonce(now)}"')

    def check(self, header: str | None, *, method: str, uri: str, username: str, ha1: str,
              now: float) -> bool:
        """True when `header` proves knowledge of the password behind `ha1`."""
        if not header:
            return False
        p = parse_authorization(header)
        if p is None or p.get("username") != username or p.get("realm") != PROVISIONING_REALM:
            return False
        if p.get("uri") != uri or p.get("algorithm", "MD5").upper() != "MD5":
            return False
        if p.get("qop") != "auth" or not self._nonce_ok(p.get("nonce", ""), now):
            return False
        ha2 = _md5(f"{method}:{uri}")
        expected = _md5(f"{ha1}:{p['nonce']}:{p.get('nc', '')}:{p.get('cnonce', '')}:auth:{ha2}")
        return hmac.compare_digest(expected, p.get("response", ""))
