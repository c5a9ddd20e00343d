"""Read SIP messages out of a pjsip log (level >= 4, message logging on).

pjsua logs each message as a line "TX|RX <n> bytes Request|Response msg …:" followed by the
message text and a line "--end msg--". No pjsua2 import here: logs of subprocess phones are read
by the test process as plain files.
"""

from __future__ import annotations

import re

_LOGGED_MSG = re.compile(
    r"\b(TX|RX) \d+ bytes (?:Request|Response) msg [^\n]*:\n(.*?)\n--end msg--", re.S
)


def sip_messages(log: str) -> list[tuple[str, str]]:
    """(direction "TX"/"RX", message text) for every SIP message in a pjsip log at level ≥ 4."""
    return [(m.group(1), m.group(2)) for m in _LOGGED_MSG.finditer(log)]
