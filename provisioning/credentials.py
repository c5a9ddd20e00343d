"""SIP credentials: generated usernames and passwords, stored as HA1 only.

RFC 8760 lets a UA answer with MD5 or SHA-256 digests, and both need
HA1 = H(username:realm:password) with the matching hash. Storing the two HA1
values (never the password) lets the registrar check either algorithm without
keeping anything that logs in elsewhere. The realm is the SIP domain, so
changing the domain means rotating passwords.
"""

from __future__ import annotations

import hashlib
import secrets
import string
from dataclasses import dataclass

# No look-alike characters, so a password typed from a screen into a phone works.
_PASSWORD_ALPHABET = "".join(c for c in string.ascii_letters + string.digits if c not in "0O1lI")
_SUFFIX_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
PASSWORD_LENGTH = 24  # 24 chars from 57 symbols ≈ 140 bits
USERNAME_SUFFIX_LENGTH = 6


@dataclass(frozen=True, slots=True)
class Ha1:
    md5: str
    sha256: str


def ha1_digests(username: str, realm: str, password: str) -> Ha1:
    """HA1 for both RFC 8760 algorithms (qop=auth, not the -sess variants)."""
    a1 = f"{username}:{realm}:{password}".encode()
    return Ha1(md5=hashlib.md5(a1).hexdigest(), sha256=hashlib.sha256(a1).hexdigest())


def generate_password(length: int = PASSWORD_LENGTH) -> str:
    """A strong random password (returned to the operator once, then forgotten)."""
    while True:
        pw = "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(length))
        # At least one of each class, so phone UIs with "complexity" checks accept it.
        if any(c.islower() for c in pw) and any(c.isupper() for c in pw) and any(c.isdigit() for c in pw):
            return pw


def generate_sip_username(extension: str) -> str:
    """`<extension>-<6 random chars>`: readable, unique platform-wide in practice
    (callers still retry on collision), and not guessable from the extension."""
    suffix = "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(USERNAME_SUFFIX_LENGTH))
    return f"{extension}-{suffix}"


PROVISIONING_REALM = "voiplab-provisioning"


def provisioning_ha1(mac: str | None, password: str | None) -> str | None:
    """HA1 (MD5, RFC 7616) for the optional HTTP digest on a device's config files;
    the digest user name is the device's MAC (12 lowercase hex digits)."""
    if mac is None or password is None:
        return None
    return hashlib.md5(f"{mac}:{PROVISIONING_REALM}:{password}".encode()).hexdigest()
