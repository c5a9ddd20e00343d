"""What the simulated PSTN does with a dialled number: number patterns → behaviours, as data.

Why a rule book: a lab test wants "this number is busy", "that one rings
out", "this one answers and hangs up after five seconds" without touching
code, both from a default table everyone knows by heart (below) and at run
time through the API (`RuleBook.set_rule`).

Patterns are matched against the whole dialled number as it arrives in the
Request-URI user part (``+14155550486``): digits and ``+`` match
themselves, ``*`` matches any run (also empty), ``X`` or ``?`` one digit.
``*0486`` is "every number ending 0486", ``+44*`` "every UK number",
``+1415555XXXX`` a block of ten thousand.

Precedence: rules set through the API before the default table; within
each, the most specific pattern (most literal characters) first, and among
equals the one set last. No match: the fallback behaviour (answer).

Default table (numbers ending …):

=======  ==========================================================
…0100    answer
…0101    answer, hang up after 5 s (our BYE)
…0102    ring 5 s, then answer
…0180    ring until the caller gives up (CANCEL)
…0404    404 Not Found (unknown number)
…0480    ring 30 s, then 480 Temporarily Unavailable (no answer)
…0486    486 Busy Here
…0503    503 Service Unavailable (network congestion)
…0603    603 Decline
other    answer (the fallback)
=======  ==========================================================

Durations are seconds on the clock the trunk is given. In ``voiplab serve``
that is the protocol (real-second) view of the gateway clock: the trunk is a
SIP user agent like the phones, so ``--time-scale`` does not shorten its ring
or hang-up delays (see ``gateway/clock.py``).

Behaviours are `gateway.uas` decisions; `parse_behaviour` reads the API's
forms: a preset name (``"busy"``) or a mapping
(``{"action": "answer", "ring": 2, "hang_up_after": 10}``,
``{"action": "reject", "status": 486}``, ``{"action": "no-answer", "ring": 10}``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.uas.decision import Answer, Decision, Reject, Ring

#: reason phrases for the statuses a lab asks for by number (RFC 3261 §21 and friends)
REASONS: dict[int, str] = {
    300: "Multiple Choices", 301: "Moved Permanently", 302: "Moved Temporarily", 380: "Alternative Service",
    400: "Bad Request", 402: "Payment Required", 403: "Forbidden", 404: "Not Found", 408: "Request Timeout",
    410: "Gone", 480: "Temporarily Unavailable", 484: "Address Incomplete", 486: "Busy Here",
    487: "Request Terminated", 488: "Not Acceptable Here", 500: "Server Internal Error",
    502: "Bad Gateway", 503: "Service Unavailable", 504: "Server Time-out", 600: "Busy Everywhere",
    603: "Decline", 604: "Does Not Exist Anywhere", 606: "Not Acceptable",
}

#: named behaviours (the API's shorthand)
PRESETS: dict[str, Decision] = {
    "answer": Answer(),
    "answer-hangup": Answer(hang_up_after=5.0),
    "ring-answer": Answer(ring=5.0),
    "ring": Ring(),
    "not-found": Reject(404, REASONS[404]),
    "no-answer": Reject(480, REASONS[480], ring=30.0),
    "busy": Reject(486, REASONS[486]),
    "congestion": Reject(503, REASONS[503]),
    "decline": Reject(603, REASONS[603]),
}

_PATTERN = re.compile(r"\+?[0-9*?Xx]+")
_MAX_PATTERN = 32


@dataclass(frozen=True, slots=True)
class Rule:
    """One pattern and what a number matching it gets. `source` is "api" or "default"."""

    pattern: str
    behaviour: Decision
    source: str = "api"
    note: str = ""
    seq: int = 0  # order of setting, newest wins among equals
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)
    specificity: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        regex, specificity = compile_pattern(self.pattern)
        object.__setattr__(self, "regex", regex)
        object.__setattr__(self, "specificity", specificity)

    def matches(self, number: str) -> bool:
        return self.regex.fullmatch(number) is not None

    def to_dict(self) -> dict[str, Any]:
        return {"pattern": self.pattern, "source": self.source, "note": self.note,
                "behaviour": behaviour_to_dict(self.behaviour)}


def compile_pattern(pattern: str) -> tuple[re.Pattern[str], int]:
    """(regex, specificity) of a number pattern; ValueError naming the fault."""
    if not isinstance(pattern, str) or not pattern:
        raise ValueError("a number pattern is a non-empty string such as *0486 or +44*")
    if len(pattern) > _MAX_PATTERN or _PATTERN.fullmatch(pattern) is None:
        raise ValueError(f"bad number pattern {pattern!r}: use digits, a leading +, * (any run) and "
                         f"X or ? (one digit), at most {_MAX_PATTERN} characters")
    parts = []
    for ch in pattern:
        if ch == "*":
            parts.append(".*")
        elif ch in "?Xx":
            parts.append(r"\d")
        else:
            parts.append(re.escape(ch))
    return re.compile("".join(parts)), sum(1 for ch in pattern if ch not in "*?Xx")


def parse_behaviour(value: Decision | str | Mapping[str, Any]) -> Decision:
    """A decision from a preset name or the API's mapping form; ValueError naming the fault."""
    if isinstance(value, Answer | Reject | Ring):
        return value
    if isinstance(value, str):
        preset = PRESETS.get(value.strip().lower())
        if preset is None:
            raise ValueError(f"unknown behaviour {value!r}: one of {', '.join(sorted(PRESETS))} "
                             "or a mapping with an action")
        return preset
    if not isinstance(value, Mapping):
        raise ValueError(f"a behaviour is a preset name or a mapping, not {type(value).__name__}")
    known = {"action", "ring", "hang_up_after", "status", "reason"}
    unknown = set(value) - known
    if unknown:
        raise ValueError(f"unknown behaviour field(s) {', '.join(sorted(map(str, unknown)))}; "
                         f"known: {', '.join(sorted(known))}")
    action = str(value.get("action", "")).strip().lower()
    base: Decision | None = PRESETS.get(action) if action not in ("answer", "reject", "ring") else None
    if action == "answer" or isinstance(base, Answer):
        if "status" in value or "reason" in value:
            raise ValueError("an answer has no status or reason")
        default = base if isinstance(base, Answer) else Answer()
        return Answer(ring=_seconds(value, "ring", default.ring),
                      hang_up_after=_seconds(value, "hang_up_after", default.hang_up_after, allow_none=True))
    if action == "reject" or isinstance(base, Reject):
        if "hang_up_after" in value:
            raise ValueError("a rejection has no hang_up_after")
        default_status = base.status if isinstance(base, Reject) else None
        status = value.get("status", default_status)
        if status is None:
            raise ValueError("a rejection needs a status (300–699)")
        if isinstance(status, bool) or not isinstance(status, int):
            raise ValueError(f"status must be an integer 300–699, not {status!r}")
        reason = value.get("reason") or (base.reason if isinstance(base, Reject) and base.status == status
                                         else REASONS.get(status, "Rejected"))
        if not isinstance(reason, str):
            raise ValueError("reason must be a string")
        ring = _seconds(value, "ring", base.ring if isinstance(base, Reject) else 0.0)
        assert ring is not None
        return Reject(status, reason, ring=ring)
    if action == "ring":
        if set(value) - {"action"}:
            raise ValueError("ring (until cancelled) takes no other field")
        return Ring()
    raise ValueError(f"unknown action {value.get('action')!r}: answer, reject, ring or a preset "
                     f"({', '.join(sorted(PRESETS))})")


def _seconds(value: Mapping[str, Any], key: str, default: float | None, *, allow_none: bool = False) -> Any:
    raw = value.get(key, default)
    if raw is None:
        if allow_none:
            return None
        raise ValueError(f"{key} must be a number of seconds")
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise ValueError(f"{key} must be a number of seconds, not {raw!r}")
    return float(raw)


def behaviour_to_dict(decision: Decision) -> dict[str, Any]:
    """The mapping form `parse_behaviour` reads back, plus a human description."""
    if isinstance(decision, Answer):
        return {"action": "answer", "ring": decision.ring, "hang_up_after": decision.hang_up_after,
                "description": decision.describe()}
    if isinstance(decision, Reject):
        return {"action": "reject", "status": decision.status, "reason": decision.reason, "ring": decision.ring,
                "description": decision.describe()}
    return {"action": "ring", "description": decision.describe()}


def _defaults() -> tuple[Rule, ...]:
    table = [
        ("*0100", PRESETS["answer"]), ("*0101", PRESETS["answer-hangup"]), ("*0102", PRESETS["ring-answer"]),
        ("*0180", PRESETS["ring"]), ("*0404", PRESETS["not-found"]), ("*0480", PRESETS["no-answer"]),
        ("*0486", PRESETS["busy"]), ("*0503", PRESETS["congestion"]), ("*0603", PRESETS["decline"]),
    ]
    return tuple(Rule(p, b, source="default") for p, b in table)


DEFAULT_RULES: tuple[Rule, ...] = _defaults()


class RuleBook:
    """The rules in force: the default table plus those set at run time (the API-facing object)."""

    def __init__(self, defaults: Iterable[Rule] = DEFAULT_RULES, fallback: Decision | None = None) -> None:
        self.defaults = tuple(defaults)
        self.fallback: Decision = fallback if fallback is not None else Answer()
        self._api: dict[str, Rule] = {}
        self._seq = 0
        self._ordered: list[Rule] = []
        self._sort()

    def set_rule(self, pattern: str, behaviour: Decision | str | Mapping[str, Any], note: str = "") -> Rule:
        """Add or replace the run-time rule for `pattern`; ValueError on a bad pattern or behaviour."""
        decision = parse_behaviour(behaviour)
        if not isinstance(note, str) or len(note) > 200:
            raise ValueError("note must be a string of at most 200 characters")
        self._seq += 1
        rule = Rule(pattern, decision, source="api", note=note, seq=self._seq)
        self._api[pattern] = rule
        self._sort()
        return rule

    def remove_rule(self, pattern: str) -> bool:
        """Drop the run-time rule for `pattern` (defaults stay); False when there was none."""
        if self._api.pop(pattern, None) is None:
            return False
        self._sort()
        return True

    def clear(self) -> int:
        """Drop every run-time rule, back to the default table; how many were dropped."""
        count = len(self._api)
        self._api.clear()
        self._sort()
        return count

    def rules(self) -> list[Rule]:
        """Every rule in the order they are tried."""
        return list(self._ordered)

    def match(self, number: str) -> tuple[Rule | None, Decision]:
        """The rule for `number` and its behaviour (None and the fallback when none matches)."""
        for rule in self._ordered:
            if rule.matches(number):
                return rule, rule.behaviour
        return None, self.fallback

    def _sort(self) -> None:
        api = sorted(self._api.values(), key=lambda r: (-r.specificity, -r.seq))
        defaults = sorted(self.defaults, key=lambda r: -r.specificity)  # stable: table order among equals
        self._ordered = api + defaults
