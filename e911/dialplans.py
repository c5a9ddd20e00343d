"""Emergency dial plans: which dialled strings are emergency (or test) calls in which region (R16).

Why data plus a tiny classifier: the numbers differ per region (911, 112,
999, 000, 933 …) and will grow; the code only decides "is this string, or
this Request-URI, an emergency call here, and which RFC 5031 service URN
does it mean". The table lives in `e911/data/dialplans.toml`.

`classify("sip:911@gw;user=phone", "US")` →
`Classification(kind=EMERGENCY, urn="urn:service:sos", dialled="911", …)`.

Matching is exact after removing visual separators (``9-1-1``, ``(911)``):
``9112`` or ``+1911…`` are ordinary numbers. ``urn:service:sos`` and its
sub-services are emergency calls in every region; ``urn:service:test.sos``
a test call. An unknown region falls back to every region's numbers (an
emergency call must never fail because an account's region is misspelt).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from functools import cache
from pathlib import Path
from urllib.parse import unquote

from e911.civic import DATA_DIR

URN_SOS = "urn:service:sos"
URN_TEST = "urn:service:test.sos"
#: RFC 5031 §4.2 sub-services of urn:service:sos
SOS_SUBSERVICES = frozenset({"ambulance", "animal-control", "fire", "gas", "marine", "mountain",
                             "physician", "poison", "police"})

_VISUAL = re.compile(r"[\s().\-]")
_DIAL_STRING = re.compile(r"\+?[0-9*#]+")
_URN = re.compile(r"urn:service:(test\.)?sos((?:\.[a-z0-9-]+)*)", re.IGNORECASE)


class EmergencyKind(Enum):
    NONE = "none"
    EMERGENCY = "emergency"
    TEST = "test"


@dataclass(frozen=True, slots=True)
class DialRule:
    """One row of the table: a dial string in a region and what it means."""

    region: str
    dial: str
    kind: EmergencyKind
    urn: str
    source: str = ""


@dataclass(frozen=True, slots=True)
class RegionPlan:
    region: str
    name: str
    country: str | None  # the default country of the region (None for EU: per address)
    outside_line_prefix: str | None
    numbers: Mapping[str, DialRule]


@dataclass(frozen=True, slots=True)
class Classification:
    """The answer for one dialled string or Request-URI."""

    kind: EmergencyKind
    urn: str | None  # the RFC 5031 service URN when an emergency or test call
    dialled: str  # the dial string or URN as recognised (visual separators removed)
    region: str
    rule: DialRule | None = None  # the table row, None for a URN dialled directly
    region_known: bool = True

    @property
    def is_emergency(self) -> bool:
        return self.kind is EmergencyKind.EMERGENCY

    @property
    def is_test(self) -> bool:
        return self.kind is EmergencyKind.TEST

    @property
    def legacy(self) -> bool:
        """True when a number was dialled (the URN was mapped here, not sent by the phone)."""
        return self.rule is not None


class DialPlanError(ValueError):
    """The dial plan data file is malformed."""


@dataclass(frozen=True, slots=True)
class DialPlans:
    regions: Mapping[str, RegionPlan]

    def plan(self, region: str) -> RegionPlan | None:
        return self.regions.get(region.upper())

    def rules(self) -> list[DialRule]:
        """Every row of every region, in file order."""
        return [rule for plan in self.regions.values() for rule in plan.numbers.values()]

    def dial_strings(self, kind: EmergencyKind | None = None) -> frozenset[str]:
        """Every dial string of any region (of one kind when given): a PSAP's legacy-mode list."""
        return frozenset(r.dial for r in self.rules() if kind is None or r.kind is kind)

    def classify(self, target: str, region: str) -> Classification:
        return classify(target, region, self)


def load_dialplans(path: Path | None = None) -> DialPlans:
    """Read and check a dial plan TOML file (default: the packaged `data/dialplans.toml`)."""
    source = path or DATA_DIR / "dialplans.toml"
    try:
        raw = tomllib.loads(source.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise DialPlanError(f"{source}: {exc}") from exc
    regions: dict[str, RegionPlan] = {}
    for code, table in raw.get("regions", {}).items():
        where = f"{source.name} [regions.{code}]"
        if not re.fullmatch(r"[A-Z]{2}", code):
            raise DialPlanError(f"{where}: region codes are two upper-case letters")
        numbers: dict[str, DialRule] = {}
        for row in table.get("numbers", []):
            dial = str(row.get("dial", ""))
            if not _DIAL_STRING.fullmatch(dial):
                raise DialPlanError(f"{where}: dial {dial!r} is not a dial string")
            if dial in numbers:
                raise DialPlanError(f"{where}: dial {dial!r} listed twice")
            try:
                kind = EmergencyKind(row.get("kind"))
            except ValueError:
                raise DialPlanError(f"{where}: {dial}: kind must be 'emergency' or 'test'") from None
            if kind is EmergencyKind.NONE:
                raise DialPlanError(f"{where}: {dial}: kind must be 'emergency' or 'test'")
            urn = str(row.get("urn", ""))
            parsed = _URN.fullmatch(urn)
            if parsed is None or bool(parsed.group(1)) != (kind is EmergencyKind.TEST):
                raise DialPlanError(f"{where}: {dial}: urn {urn!r} does not fit kind {kind.value}")
            numbers[dial] = DialRule(code, dial, kind, urn.lower(), str(row.get("source", "")))
        regions[code] = RegionPlan(code, str(table.get("name", code)), table.get("country") or None,
                                   table.get("outside_line_prefix") or None, numbers)
    if not regions:
        raise DialPlanError(f"{source}: no regions")
    return DialPlans(regions)


@cache
def default_dialplans() -> DialPlans:
    """The packaged dial plans, read once (immutable data, not state)."""
    return load_dialplans()


def dialled_string(target: str) -> str:
    """The dialled part of a Request-URI or dial string.

    ``sip:911@gw;user=phone`` → ``911``; ``tel:911;phone-context=+1`` →
    ``911``; ``urn:service:sos`` stays itself; a bare user part is returned
    without its user parameters and %-escapes.
    """
    text = target.strip().strip("<>").strip()
    lower = text.lower()
    if lower.startswith("urn:"):
        return text
    if lower.startswith(("sip:", "sips:")):
        rest = text.split(":", 1)[1]
        text = rest.split("@", 1)[0] if "@" in rest else ""
    elif lower.startswith("tel:"):
        text = text[4:]
    return unquote(text.split(";", 1)[0].split("@", 1)[0])


def classify(target: str, region: str, plans: DialPlans | None = None) -> Classification:
    """Is `target` (dial string or Request-URI) an emergency or test call in `region`, and which URN."""
    plans = plans or default_dialplans()
    region = region.upper()
    raw = dialled_string(target)
    urn = _URN.fullmatch(raw)
    if urn is not None:
        return _classify_urn(raw, urn, region, plans)
    dialled = _VISUAL.sub("", raw)
    plan = plans.plan(region)
    if plan is not None:
        rule = plan.numbers.get(dialled)
        if rule is not None:
            return Classification(rule.kind, rule.urn, dialled, region, rule)
        return Classification(EmergencyKind.NONE, None, dialled, region)
    for candidate in plans.regions.values():  # unknown region: any region's number counts
        rule = candidate.numbers.get(dialled)
        if rule is not None:
            return Classification(rule.kind, rule.urn, dialled, region, rule, region_known=False)
    return Classification(EmergencyKind.NONE, None, dialled, region, region_known=False)


def _classify_urn(raw: str, match: re.Match[str], region: str, plans: DialPlans) -> Classification:
    known = plans.plan(region) is not None
    urn = raw.lower()
    subservices = [s for s in match.group(2).lower().split(".") if s]
    kind = EmergencyKind.TEST if match.group(1) else EmergencyKind.EMERGENCY
    if kind is EmergencyKind.EMERGENCY and subservices and subservices[0] not in SOS_SUBSERVICES:
        # RFC 5031: an unknown sub-service still means the emergency parent service
        urn = URN_SOS
    return Classification(kind, urn, urn, region, None, region_known=known)


def is_sos_urn(uri: str) -> bool:
    """``urn:service:sos`` or one of its sub-services (not the test service)."""
    m = _URN.fullmatch(uri.strip())
    return m is not None and not m.group(1)


def is_test_urn(uri: str) -> bool:
    """``urn:service:test.sos`` or one of its sub-services."""
    m = _URN.fullmatch(uri.strip())
    return m is not None and bool(m.group(1))
