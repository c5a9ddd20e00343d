"""Where the gateway's emergency-call side effects go, off the SIP hot path.

The proxy hands each emergency record to ``EmergencyOutbox.on_emergency`` (on
the loop); this queues it for the E911 store (audit with the exact PIDF-LO)
and, for a call that connected, queues the Kari's Law notification for the
account's webhook.  Both are threads: the call is never delayed by either.
The registrar hands REGISTER fingerprints here too (R13 move detection).
"""

from __future__ import annotations

import logging
from typing import Any

from e911.civic import CivicAddress
from e911.notify import Caller, build_notification
from gateway.outbox import BatchWriter
from provisioning.directory import Directory
from provisioning.notifier import Notifier

log = logging.getLogger("voiplab.e911")


class EmergencyOutbox:
    def __init__(self, directory: Directory, calls: BatchWriter, notifier: Notifier | None) -> None:
        self._directory = directory
        self._calls = calls
        self._notifier = notifier

    def on_emergency(self, record: dict[str, Any]) -> None:
        self._calls.submit(record)
        if record.get("ended_at") is not None:
            return  # the end-of-call update of a record already notified
        if self._notifier is None or record["route_kind"] == "refuse" or record["is_test"]:
            return
        snapshot = self._directory.snapshot
        account = snapshot.accounts.get(record["account_id"])
        url = account.notification_url if account is not None else None
        if not url:
            return
        line = snapshot.lines.get(record["caller"])
        location = snapshot.locations.get(record["location_id"]) if record["location_id"] else None
        caller = Caller(display_name=line.display_name if line else record["caller"],
                        extension=line.extension if line else "", sip_username=record["caller"],
                        named_user_id=line.named_user_id if line else None, device_id=record["device_id"])
        try:
            payload = build_notification(
                call_id=record["call_id"], account_id=record["account_id"], caller=caller,
                callback=record["callback"] or (location.callback_number if location else None),
                dialled=record["dialled"], service_urn=record["service_urn"], route=record["route_kind"],
                started_at=record["started_at"],
                location=CivicAddress.from_mapping(location.civic) if location and record["with_location"] else None,
                pidf=record["pidf"].encode() if record["pidf"] else None, reason=record["reason"],
                warnings=record["warnings"])
        except ValueError:
            log.exception("could not build the Kari's Law notification for %s", record["call_id"])
            return
        self._notifier.submit(payload, url)
