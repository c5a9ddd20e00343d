"""The PSAP simulator: a SIP user agent that answers emergency calls and judges what they carried.

- `PsapServer.start(host, port, lookup=…, clock=…)` runs it (in-process);
  ``python -m gateway.psap --listen 127.0.0.1:5070`` runs it alone.
- `lookup(device_id) -> civic dict | None` gives the registered location it
  compares against (`ExpectedLocations` is an in-memory one).
- `server.log` (`PsapLog`) holds one `PsapCall` per INVITE: role, verdict,
  every check, the exact PIDF-LO received, differences, the 933 read-back.
- `checks.inspect_invite` is the pure judgement; `uas.PsapUas` the sans-IO
  user agent server; `server` the asyncio glue.
"""

from gateway.psap.checks import Inspection, PsapConfig, Role, inspect_invite
from gateway.psap.log import Check, ExpectedLocations, ExpectedLookup, PsapCall, PsapLog
from gateway.psap.server import PsapServer
from gateway.psap.uas import PsapUas

__all__ = [
    "Check",
    "ExpectedLocations",
    "ExpectedLookup",
    "Inspection",
    "PsapCall",
    "PsapConfig",
    "PsapLog",
    "PsapServer",
    "PsapUas",
    "Role",
    "inspect_invite",
]
