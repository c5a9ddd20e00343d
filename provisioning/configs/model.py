"""The neutral configuration every renderer reads (notes/provisioning.md §4 #3)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class RenderError(ValueError):
    """The config cannot be rendered (unknown file, missing renderer …)."""


def clean(text: str) -> str:
    """No control characters in a rendered value (a newline would inject keys into
    line-based formats such as Yealink's `key = value`)."""
    return _CONTROL.sub(" ", text)


@dataclass(frozen=True, slots=True)
class LineConfig:
    index: int  # 1-based line (account) number on the device
    user: str  # SIP user (= auth user in voiplab)
    auth_user: str
    password: str
    display_name: str
    label: str  # what the phone shows on the line key: the extension
    port: int | None = None  # ATA FXS port (1-based)
    purpose: str = "voice"  # "fax": T.38 on this port


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    mac: str  # 12 lowercase hex digits
    sip_server: str
    sip_port: int
    transport: str  # udp | tcp | tls
    codecs: tuple[str, ...]  # preference order (catalog codec names)
    lines: tuple[LineConfig, ...]
    provisioning_url: str  # base URL of /provision, for bootstrap files and later boots

    def line_on_port(self, port: int) -> LineConfig | None:
        return next((ln for ln in self.lines if ln.port == port), None)
