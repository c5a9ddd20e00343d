"""Service plans as data: `provisioning/plans/<id>.toml`, validated at start.

Why data: the seed's numbers (R10-R31) belong to plans, and the call policy
(#5) must enforce whatever the data says. The code here only parses, checks
and answers small pure questions ("which rate applies to +447…", "is this
prefix blocked for this account"); nothing here keeps state.

Conventions of the data files:
- every parameter is present in every file, so a forgotten key is an error
  rather than a silent "unlimited"; "no limit" / "not offered" is the string
  `"none"`;
- each number that comes from the seed carries its rule id; numbers the seed
  does not give are marked `assumption` in the file's comments;
- E.164 prefixes are written with a leading `+` (e.g. `"+4487"`).
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal, get_args

DEFAULT_PLANS_DIR = Path(__file__).resolve().parent / "plans"

FairUseBasis = Literal["account", "authorised_user", "audio_user"]
FairUseCounts = Literal["all", "pstn", "meeting"]
FairUseOver = Literal["refuse", "overage"]
PremiumPolicy = Literal["refuse", "exclude"]
CallType = Literal["landline", "mobile"]

#: Which rule a top-level plan field comes from (for refusal reasons in #5).
FIELD_RULES: Mapping[str, str] = {
    "emergency_calling": "R10",
    "location_required": "R12",
    "max_concurrent_calls": "R20",
    "voice_max_seconds": "R20",
    "fax_max_seconds": "R20",
    "extension_limit": "R21",
    "blocked_prefixes": "R25",
    "premium_prefixes": "R28",
    "premium": "R28",
    "conference_max": "R30",
}

_ID_RE = re.compile(r"^[a-z][a-z0-9-]{1,39}$")
_RULE_RE = re.compile(r"^R[0-9]{1,3}$")
_PREFIX_RE = re.compile(r"^\+[1-9][0-9]{0,14}$")
_COUNTRY_RE = re.compile(r"^[A-Z]{2}$")
_NUMBER_RE = re.compile(r"^\+[1-9][0-9]{1,14}$")
NONE = "none"


class PlanError(ValueError):
    """A plan file is malformed; names the file and the field."""

    def __init__(self, source: str, field_name: str, message: str) -> None:
        super().__init__(f"{source}: {field_name}: {message}")
        self.source = source
        self.field = field_name
        self.message = message


@dataclass(frozen=True, slots=True)
class FairUse:
    """Monthly fair-use allowance: `minutes` × (1, authorised users, or audio users)."""

    minutes: int
    basis: FairUseBasis
    counts: FairUseCounts
    over: FairUseOver
    rule_id: str

    def monthly_limit(self, *, authorised_users: int = 0, audio_users: int = 0) -> int:
        """Minutes a month the account may use before `over` applies."""
        if self.basis == "account":
            return self.minutes
        if self.basis == "authorised_user":
            return self.minutes * max(authorised_users, 0)
        return self.minutes * max(audio_users, 0)


@dataclass(frozen=True, slots=True)
class Billing:
    """Rated duration = max(minimum_s, duration rounded up to increment_s)."""

    increment_s: int
    minimum_s: int
    rule_id: str

    def billable_seconds(self, duration_s: float) -> int:
        if duration_s <= 0:
            return 0
        return max(self.minimum_s, math.ceil(duration_s / self.increment_s) * self.increment_s)


@dataclass(frozen=True, slots=True)
class International:
    allowed: bool
    deposit_required_usd: int | None
    rule_id: str

    def enabled_for(self, deposit_usd: int) -> bool:
        """International calling is on: allowed, and any required deposit received (R24)."""
        if not self.allowed:
            return False
        return self.deposit_required_usd is None or deposit_usd >= self.deposit_required_usd


@dataclass(frozen=True, slots=True)
class Flex:
    """R5 flex subscription: up to `max_multiplier` × the purchased minimum."""

    max_multiplier: int
    overage_pct: int
    waived_cycles: int
    rule_id: str


@dataclass(frozen=True, slots=True)
class CountryRate:
    """Per-minute USD rates for one country code, split landline / mobile (R28)."""

    country: str
    prefix: str
    landline_per_min: Decimal
    mobile_per_min: Decimal
    mobile_prefixes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Quote:
    """How one destination is rated. `per_min` None means no rate: refuse."""

    destination: str
    scope: Literal["domestic", "international", "premium"]
    call_type: CallType | None
    country: str | None
    included: bool
    per_min: Decimal | None


@dataclass(frozen=True, slots=True)
class RateTable:
    currency: str
    rule_id: str
    domestic_included: bool
    domestic_per_min: Decimal
    premium_per_min: Decimal | None
    international_default_per_min: Decimal | None
    domestic: Mapping[str, tuple[str, ...]]  # account region → home prefixes
    international: tuple[CountryRate, ...]

    def country_for(self, number: str) -> CountryRate | None:
        best: CountryRate | None = None
        for rate in self.international:
            if number.startswith(rate.prefix) and (best is None or len(rate.prefix) > len(best.prefix)):
                best = rate
        return best

    def is_domestic(self, number: str, region: str) -> bool:
        return any(number.startswith(p) for p in self.domestic.get(region, ()))


@dataclass(frozen=True, slots=True)
class Plan:
    id: str
    name: str
    emergency_calling: bool
    location_required: bool
    max_concurrent_calls: int | None
    voice_max_seconds: int | None
    fax_max_seconds: int | None
    fair_use: FairUse | None
    billing: Billing
    extension_limit: int | None
    international: International
    blocked_prefixes: tuple[str, ...]
    premium_prefixes: tuple[str, ...]
    premium: PremiumPolicy
    conference_max: int | None
    rates: RateTable
    flex: Flex | None = None
    description: str = ""
    field_rules: Mapping[str, str] = field(default_factory=lambda: dict(FIELD_RULES))

    def is_premium(self, number: str) -> bool:
        return any(number.startswith(p) for p in self.premium_prefixes)

    def is_blocked(self, number: str, allowed_prefixes: tuple[str, ...] = ()) -> bool:
        """R25: blocked unless the account's allow-list has a prefix at least as
        specific as the blocking one (an allow of `+53` lifts a block on `+53`,
        an allow of `+5399` lifts it only for `+5399…`)."""
        blocking = [p for p in self.blocked_prefixes if number.startswith(p)]
        if not blocking:
            return False
        return not any(number.startswith(a) for a in allowed_prefixes)

    def quote(self, number: str, region: str) -> Quote:
        """Rate one E.164 destination (`+` and digits) for an account in `region`."""
        if not _NUMBER_RE.match(number):
            raise ValueError(f"not an E.164 number: {number!r}")
        r = self.rates
        if self.is_premium(number):
            return Quote(number, "premium", None, None, False, r.premium_per_min)
        if r.is_domestic(number, region):
            rate = r.country_for(number)
            return Quote(number, "domestic", _call_type(rate, number), rate.country if rate else None,
                         r.domestic_included, Decimal(0) if r.domestic_included else r.domestic_per_min)
        rate = r.country_for(number)
        if rate is None:
            return Quote(number, "international", None, None, False, r.international_default_per_min)
        kind = _call_type(rate, number)
        return Quote(number, "international", kind, rate.country, False,
                     rate.mobile_per_min if kind == "mobile" else rate.landline_per_min)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form for the API (Decimal → float, tuples → lists)."""
        data: dict[str, Any] = _jsonable(self)
        return data


def _call_type(rate: CountryRate | None, number: str) -> CallType:
    if rate is not None and any(number.startswith(p) for p in rate.mobile_prefixes):
        return "mobile"
    return "landline"


def _jsonable(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        return {name: _jsonable(getattr(value, name)) for name in value.__dataclass_fields__}
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


@dataclass(frozen=True)
class PlanCatalog:
    """Immutable id → plan map, loaded once and passed in."""

    plans: Mapping[str, Plan]

    def get(self, plan_id: str) -> Plan | None:
        return self.plans.get(plan_id)

    def __contains__(self, plan_id: object) -> bool:
        return plan_id in self.plans

    def __iter__(self) -> Iterator[Plan]:
        return iter(sorted(self.plans.values(), key=lambda p: p.id))

    def __len__(self) -> int:
        return len(self.plans)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(sorted(self.plans))


# --- parsing ---------------------------------------------------------------------------------

class _Reader:
    """Typed access to one TOML table; every error names file and dotted field."""

    def __init__(self, data: Mapping[str, Any], source: str, prefix: str = "") -> None:
        self.data = data
        self.source = source
        self.prefix = prefix
        self.used: set[str] = set()

    def _name(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def fail(self, key: str, message: str) -> PlanError:
        return PlanError(self.source, self._name(key), message)

    def raw(self, key: str) -> Any:
        if key not in self.data:
            raise self.fail(key, "required (write \"none\" where the plan has no such limit)")
        self.used.add(key)
        return self.data[key]

    def string(self, key: str) -> str:
        value = self.raw(key)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, "required non-empty string")
        return value.strip()

    def boolean(self, key: str) -> bool:
        value = self.raw(key)
        if not isinstance(value, bool):
            raise self.fail(key, "must be true or false")
        return value

    def integer(self, key: str, *, minimum: int = 0) -> int:
        value = self.raw(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise self.fail(key, f"must be an integer ≥ {minimum}")
        return value

    def optional_int(self, key: str, *, minimum: int = 1) -> int | None:
        if self.raw(key) == NONE:
            return None
        return self.integer(key, minimum=minimum)

    def money(self, key: str) -> Decimal:
        value = self.raw(key)
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise self.fail(key, "must be a number (USD)")
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            raise self.fail(key, "must be a number (USD)") from None
        if not amount.is_finite() or amount < 0:
            raise self.fail(key, "must be a non-negative number (USD)")
        return amount

    def optional_money(self, key: str) -> Decimal | None:
        return None if self.raw(key) == NONE else self.money(key)

    def choice(self, key: str, options: tuple[str, ...]) -> str:
        value = self.string(key)
        if value not in options:
            raise self.fail(key, f"one of {', '.join(options)}")
        return value

    def rule(self, key: str = "rule_id") -> str:
        value = self.string(key)
        if not _RULE_RE.match(value):
            raise self.fail(key, "a rule id like R24")
        return value

    def prefixes(self, key: str) -> tuple[str, ...]:
        value = self.raw(key)
        if not isinstance(value, list):
            raise self.fail(key, "must be a list of E.164 prefixes like \"+53\"")
        for p in value:
            if not isinstance(p, str) or not _PREFIX_RE.match(p):
                raise self.fail(key, f"not an E.164 prefix: {p!r} (write it as \"+<digits>\")")
        if len(set(value)) != len(value):
            raise self.fail(key, "duplicate prefix")
        return tuple(value)

    def table(self, key: str) -> _Reader | None:
        """A sub-table, or None for "none"."""
        value = self.raw(key)
        if value == NONE:
            return None
        if not isinstance(value, dict):
            raise self.fail(key, "must be a table or \"none\"")
        return _Reader(value, self.source, f"{self._name(key)}.")

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise self.fail(unknown[0], "unknown field")


def _required_table(r: _Reader, key: str) -> _Reader:
    sub = r.table(key)
    if sub is None:
        raise r.fail(key, "required table")
    return sub


def _fair_use(r: _Reader | None) -> FairUse | None:
    if r is None:
        return None
    fu = FairUse(minutes=r.integer("minutes", minimum=1),
                 basis=r.choice("basis", get_args(FairUseBasis)),  # type: ignore[arg-type]
                 counts=r.choice("counts", get_args(FairUseCounts)),  # type: ignore[arg-type]
                 over=r.choice("over", get_args(FairUseOver)),  # type: ignore[arg-type]
                 rule_id=r.rule())
    r.done()
    return fu


def _billing(r: _Reader) -> Billing:
    b = Billing(increment_s=r.integer("increment_s", minimum=1),
                minimum_s=r.integer("minimum_s", minimum=0), rule_id=r.rule())
    r.done()
    return b


def _international(r: _Reader) -> International:
    allowed = r.boolean("allowed")
    deposit = r.optional_int("deposit_required_usd", minimum=1)
    if deposit is not None and not allowed:
        raise r.fail("deposit_required_usd", "a deposit for international calling that is not allowed")
    i = International(allowed=allowed, deposit_required_usd=deposit, rule_id=r.rule())
    r.done()
    return i


def _flex(r: _Reader | None) -> Flex | None:
    if r is None:
        return None
    f = Flex(max_multiplier=r.integer("max_multiplier", minimum=1),
             overage_pct=r.integer("overage_pct", minimum=0),
             waived_cycles=r.integer("waived_cycles", minimum=0), rule_id=r.rule())
    r.done()
    return f


def _rates(r: _Reader) -> RateTable:
    currency = r.string("currency")
    if currency != "USD":
        raise r.fail("currency", "only USD is supported")
    domestic_raw = _required_table(r, "domestic")
    domestic: dict[str, tuple[str, ...]] = {}
    for region in list(domestic_raw.data):
        domestic[region] = domestic_raw.prefixes(region)
    domestic_raw.done()
    countries_raw = r.raw("international")
    if not isinstance(countries_raw, list):
        raise r.fail("international", "must be an array of tables ([[rates.international]])")
    countries: list[CountryRate] = []
    seen: set[str] = set()
    for i, entry in enumerate(countries_raw):
        if not isinstance(entry, dict):
            raise r.fail(f"international[{i}]", "must be a table")
        c = _Reader(entry, r.source, f"{r.prefix}international[{i}].")
        country = c.string("country")
        if not _COUNTRY_RE.match(country):
            raise c.fail("country", "ISO 3166-1 alpha-2 code, upper case")
        prefix_value = c.string("prefix")
        if not _PREFIX_RE.match(prefix_value):
            raise c.fail("prefix", f"not an E.164 prefix: {prefix_value!r}")
        if prefix_value in seen:
            raise c.fail("prefix", f"{prefix_value} listed twice")
        seen.add(prefix_value)
        mobile = c.prefixes("mobile_prefixes")
        bad = [m for m in mobile if not m.startswith(prefix_value)]
        if bad:
            raise c.fail("mobile_prefixes", f"{bad[0]} is not inside {prefix_value}")
        countries.append(CountryRate(country=country, prefix=prefix_value,
                                     landline_per_min=c.money("landline_per_min"),
                                     mobile_per_min=c.money("mobile_per_min"),
                                     mobile_prefixes=mobile))
        c.done()
    table = RateTable(currency=currency, rule_id=r.rule(),
                      domestic_included=r.boolean("domestic_included"),
                      domestic_per_min=r.money("domestic_per_min"),
                      premium_per_min=r.optional_money("premium_per_min"),
                      international_default_per_min=r.optional_money("international_default_per_min"),
                      domestic=domestic, international=tuple(countries))
    r.done()
    return table


def parse_plan(data: Mapping[str, Any], source: str) -> Plan:
    """Validate one decoded TOML document; raise PlanError naming the bad field."""
    r = _Reader(data, source)
    plan_id = r.string("id")
    if not _ID_RE.match(plan_id):
        raise r.fail("id", "lowercase letters, digits and '-' (2-40 chars, starting with a letter)")
    plan = Plan(
        id=plan_id,
        name=r.string("name"),
        description=r.string("description"),
        emergency_calling=r.boolean("emergency_calling"),
        location_required=r.boolean("location_required"),
        max_concurrent_calls=r.optional_int("max_concurrent_calls"),
        voice_max_seconds=r.optional_int("voice_max_seconds"),
        fax_max_seconds=r.optional_int("fax_max_seconds"),
        fair_use=_fair_use(r.table("fair_use")),
        billing=_billing(_required_table(r, "billing")),
        extension_limit=r.optional_int("extension_limit"),
        international=_international(_required_table(r, "international")),
        blocked_prefixes=r.prefixes("blocked_prefixes"),
        premium_prefixes=r.prefixes("premium_prefixes"),
        premium=r.choice("premium", get_args(PremiumPolicy)),  # type: ignore[arg-type]
        conference_max=r.optional_int("conference_max"),
        rates=_rates(_required_table(r, "rates")),
        flex=_flex(r.table("flex")),
    )
    r.done()
    if plan.emergency_calling is False and plan.location_required:
        # Not contradictory in law, but in this product R12 exists for emergency calls.
        raise PlanError(source, "location_required", "only plans with emergency calling require a location")
    return plan


def load_plans(plans_dir: Path | None = None) -> PlanCatalog:
    """Load every `<id>.toml` in `plans_dir`; the file name must equal the plan id."""
    directory = plans_dir or DEFAULT_PLANS_DIR
    plans: dict[str, Plan] = {}
    for path in sorted(directory.glob("*.toml")):
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise PlanError(path.name, "-", f"invalid TOML: {exc}") from exc
        plan = parse_plan(data, path.name)
        if plan.id != path.stem:
            raise PlanError(path.name, "id", f"must match the file name {path.stem!r}")
        plans[plan.id] = plan
    if not plans:
        raise PlanError(str(directory), "-", "no plans found")
    return PlanCatalog(plans=plans)
