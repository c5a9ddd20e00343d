"""Kari's Law notification payload (47 CFR 9.16(b)(2), content per 47 CFR 9.3 "Notification").

Why a payload builder and no sender: the notification must go out *with*
the call and never delay it, so the gateway hands this dict to a background
webhook/email/SMS sender (wired by the composition root) and stores it as
a record; building it is pure and cheap.

What 9.3 asks the notification to carry (re-check against eCFR): that a
911 call was made, a valid callback number, and the location the system
conveyed to the PSAP (omitted only when technically infeasible). The
payload says which of these it could fill and why not, so a compliance
tester can see it call by call.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from e911.civic import CivicAddress, format_address, is_e164
from e911.pidf import format_datetime

EVENT = "emergency_call.started"
PAYLOAD_VERSION = 1


@dataclass(frozen=True, slots=True)
class Caller:
    """Who placed the call, as the account knows them."""

    display_name: str
    extension: str
    sip_username: str
    named_user_id: str | None = None
    device_id: int | None = None
    device_name: str | None = None


def build_notification(*, call_id: str, account_id: int, caller: Caller, callback: str | None,
                       dialled: str, service_urn: str, route: str, started_at: datetime,
                       location: CivicAddress | None, pidf: bytes | None = None,
                       reason: str | None = None, warnings: Sequence[str] = ()) -> dict[str, Any]:
    """The JSON-ready notification for one emergency call.

    `route` is where the call went ("psap" or "national_centre"); `location`
    the civic address conveyed to it (None when none was, e.g. R15 before
    the customer notice: then `location_omitted_reason` says why); `pidf`
    the exact PIDF-LO sent, kept for the record.
    """
    callback_ok = callback is not None and is_e164(callback)
    address = format_address(location) if location is not None else None
    who = f"{caller.display_name} (ext. {caller.extension})"
    where = address or "location not conveyed"
    summary = (f"Emergency call to {dialled} from {who}; callback {callback or 'unknown'}; "
               f"location: {where}; {format_datetime(started_at)}")
    return {
        "event": EVENT,
        "version": PAYLOAD_VERSION,
        "call_id": call_id,
        "account_id": account_id,
        "started_at": format_datetime(started_at),
        "dialled": dialled,
        "service_urn": service_urn,
        "route": route,
        "caller": {
            "display_name": caller.display_name,
            "extension": caller.extension,
            "sip_username": caller.sip_username,
            "named_user_id": caller.named_user_id,
            "device_id": caller.device_id,
            "device_name": caller.device_name,
        },
        "callback_number": callback,
        "callback_valid": callback_ok,
        "location_conveyed": location.elements() if location is not None else None,
        "location_text": address,
        "location_omitted_reason": None if location is not None else (reason or "no location conveyed"),
        "pidf_lo": pidf.decode("utf-8", "replace") if pidf is not None else None,
        "warnings": list(warnings),
        "summary": summary,
        "rule": "Kari's Law, 47 CFR 9.16(b)(2); content per 47 CFR 9.3",
    }


def notification_json(payload: Mapping[str, Any]) -> bytes:
    """The webhook POST body: compact, key-sorted UTF-8 JSON (stable for signatures and diffs)."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
