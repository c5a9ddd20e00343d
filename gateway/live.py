"""What the HTTP API shows of the gateway's live state (``GET /registrations``, ``GET /calls``).

The API calls these from its worker threads while the SIP loop mutates the
same dicts, so each method first takes a C-level snapshot (``list(...)``),
which the GIL makes atomic, and then formats from that copy.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.core import SipCore


class GatewayLiveView:
    def __init__(self, core: SipCore) -> None:
        self._core = core

    def registrations(self) -> list[dict[str, Any]]:
        core = self._core
        now = core.clock.now()
        snapshot = core.directory.snapshot
        out = []
        for b in list(core.location):
            if b.expires_at <= now:
                continue
            line = snapshot.lines.get(b.aor)
            out.append({
                "aor": b.aor,
                "account_id": line.account_id if line else None,
                "device_id": line.device_id if line else None,
                "extension": line.extension if line else None,
                "contact": b.contact,
                "source": f"{b.peer.proto}:{b.peer.host}:{b.peer.port}",
                "expires_in": int(b.expires_at - now),
                "instance": b.instance,
                "user_agent": b.user_agent,
                "registered_at": datetime.fromtimestamp(b.wall_registered_at, UTC).isoformat(),
                "registrar": b.registrar or "main",  # which process took the REGISTER
            })
        return out

    def calls(self) -> list[dict[str, Any]]:
        now = self._core.business_clock.now()  # calls are timed on the scaled clock
        return [call.as_dict(now) for call in list(self._core.calls.calls.values())]
