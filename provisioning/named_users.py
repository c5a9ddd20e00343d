"""R1 / R7: named user IDs must name one person (or one meeting room), never a role.

The seed's examples: `johan.smeets@goto.com` is a named user ID,
`gebruiker1@goto.com` (user1) and `trainer@goto.com` are generic. We refuse a
local part made only of role words, each optionally followed by a number, in
any separator style: `user1@`, `trainer@`, `sales-team@`, `meeting.room.2@`,
`info@`. A role word next to a name is fine: `jane.sales@` names Jane.

The list is ours (the seed gives examples, not a list); it covers the seed's
examples, the common role mailboxes (RFC 2142: info, sales, support,
postmaster, webmaster, abuse, noc, security, hostmaster, usenet, news, www,
uucp, ftp, marketing) and their Dutch forms, since the seed is Dutch.
"""

from __future__ import annotations

import re

ROLE_WORDS: frozenset[str] = frozenset({
    # the seed's examples and the list
    "admin", "administrator", "info", "sales", "support", "trainer", "training", "test",
    "testing", "tester", "user", "users", "room", "rooms",
    # RFC 2142 role mailboxes
    "postmaster", "webmaster", "hostmaster", "abuse", "noc", "security", "usenet", "news",
    "www", "uucp", "ftp", "marketing",
    # other shared roles
    "account", "accounts", "accounting", "billing", "finance", "office", "reception",
    "receptionist", "frontdesk", "front", "desk", "helpdesk", "help", "service", "services",
    "contact", "hello", "mail", "noreply", "no", "reply", "team", "staff", "hr", "it", "ops",
    "operator", "operators", "guest", "guests", "demo", "shared", "generic", "conference",
    "meeting", "meetingroom", "boardroom", "phone", "fax", "voicemail", "lobby", "main",
    "default", "temp", "owner", "root", "system", "trainee", "student", "teacher", "agent",
    # Dutch forms (the seed's "gebruiker1")
    "gebruiker", "gebruikers", "beheerder", "verkoop", "receptie", "kantoor", "vergaderruimte",
    "zaal", "balie", "klantenservice", "algemeen",
})

_SEPARATORS = re.compile(r"[._+-]+")
_TRAILING_DIGITS = re.compile(r"\d+$")


def generic_reason(named_user_id: str) -> str | None:
    """Why `named_user_id` is generic (R1), or None when it names someone."""
    local = named_user_id.split("@", 1)[0].lower()
    tokens = [t for t in _SEPARATORS.split(local) if t]
    words = [_TRAILING_DIGITS.sub("", t) for t in tokens]
    words = [w for w in words if w]  # a pure number ("2") carries no name
    if not words:
        return f"{local!r} is only a number, not a person's name"
    if all(w in ROLE_WORDS for w in words):
        return f"{local!r} names a role ({', '.join(sorted(set(words)))}), not a person or a room"
    return None
