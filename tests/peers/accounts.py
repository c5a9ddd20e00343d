"""SIP account settings shared by the phones, the API helpers and the tests.

Kept free of pjsua2 so that modules which only *describe* accounts import even where pjsua2
cannot be loaded (the phone tests then skip with the reason instead of breaking collection).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SipAccount:
    """Credentials and where to register; `registrar` is `host:port` (`[::1]:port` for IPv6)."""

    username: str
    password: str
    domain: str
    registrar: str = ""  # empty: no registrar and no outbound proxy (direct calls)
    transport: str = "udp"
    algorithm: str | None = None  # "MD5" | "SHA-256"; None lets pjsip take what it is offered
    register: bool = True
    expires: int = 300

    @property
    def aor(self) -> str:
        return f"sip:{self.username}@{self.domain}"

    def server_uri(self) -> str:
        suffix = ";transport=tcp" if self.transport == "tcp" else ""
        return f"sip:{self.registrar}{suffix}"
