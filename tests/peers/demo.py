"""Read the softphone settings `voiplab serve --demo` prints (what `make run` shows a human).

The acceptance test registers real phones with exactly what was printed, so the printed text is
parsed here, in one place, tolerant of spacing and column alignment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from tests.peers.accounts import SipAccount


@dataclass(frozen=True)
class DemoLine:
    extension: str
    registrar: str
    domain: str
    username: str
    password: str

    def sip_account(self, **kw: Any) -> SipAccount:
        return SipAccount(self.username, self.password, self.domain, self.registrar, **kw)

    def uri(self) -> str:
        return f"sip:{self.extension}@{self.domain}"


_FIELD = {
    "registrar": re.compile(r"registrar\s*:\s*(\S+)", re.I),
    "domain": re.compile(r"(?:domain|realm)[^:\n]*:\s*(\S+)", re.I),
    "username": re.compile(r"user(?:name)?[^:\n]*:\s*(\S+)", re.I),
    "password": re.compile(r"password\s*:\s*(\S+)", re.I),
}


def parse_demo_settings(text: str) -> list[DemoLine]:
    """Every block that starts with "(extension N)" and names registrar, domain, user, password."""
    out: list[DemoLine] = []
    blocks = re.split(r"(?=\(extension\s+\d+\))", text)
    for block in blocks[1:]:
        ext = re.match(r"\(extension\s+(\d+)\)", block)
        values = {k: rx.search(block) for k, rx in _FIELD.items()}
        if ext is None or not all(values.values()):
            continue
        found = {k: m.group(1) for k, m in values.items() if m is not None}
        out.append(DemoLine(extension=ext.group(1), **found))
    return out
