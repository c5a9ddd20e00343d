"""Service plans as data: the shipped files carry the seed's numbers, the loader
refuses malformed files naming file and field, and the small pure helpers
(billing, fair use, rating, R25 blocking) behave at their boundaries."""

from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from provisioning.plans import (
    DEFAULT_PLANS_DIR,
    FIELD_RULES,
    Billing,
    FairUse,
    International,
    PlanError,
    load_plans,
    parse_plan,
)

PLANS = load_plans()


def raw(plan_id: str) -> dict[str, Any]:
    return tomllib.loads((DEFAULT_PLANS_DIR / f"{plan_id}.toml").read_text())


def test_the_four_plans_load() -> None:
    assert PLANS.ids == ("connect", "grasshopper", "meeting", "openvoice")


def test_seed_numbers_with_their_rule_ids() -> None:
    connect, grass = PLANS.get("connect"), PLANS.get("grasshopper")
    openvoice, meeting = PLANS.get("openvoice"), PLANS.get("meeting")
    assert connect and grass and openvoice and meeting
    # R10/R12: only Connect has emergency calling, and only it needs a location first.
    assert [p.emergency_calling for p in (connect, grass, openvoice, meeting)] == [True, False, False, False]
    assert [p.location_required for p in (connect, grass, openvoice, meeting)] == [True, False, False, False]
    # R20: 50 calls, 50,000 min, 6 h voice, 3 h fax (Grasshopper)
    assert grass.max_concurrent_calls == 50
    assert grass.voice_max_seconds == 6 * 3600 and grass.fax_max_seconds == 3 * 3600
    assert grass.fair_use == FairUse(50_000, "account", "all", "refuse", "R20")
    # R21, R24
    assert grass.extension_limit == 1000
    assert grass.billing == Billing(6, 18, "R24")
    assert grass.international == International(True, 500, "R24")
    # R26: 2,500 PSTN minutes × authorised users
    assert connect.fair_use == FairUse(2500, "authorised_user", "pstn", "overage", "R26")
    # R30, R31
    assert openvoice.conference_max == 500
    for p in (openvoice, meeting):
        assert p.fair_use == FairUse(3000, "audio_user", "meeting", "overage", "R31")
    # R28: Connect includes domestic calls but not information services
    assert connect.rates.domestic_included and connect.premium == "exclude"
    # R5 flex
    assert connect.flex is not None and connect.flex.max_multiplier == 7 and connect.flex.rule_id == "R5"
    assert grass.flex is None


def test_no_limit_is_written_none_and_every_plan_states_every_parameter() -> None:
    for plan in PLANS:
        data = raw(plan.id)
        for key in ("max_concurrent_calls", "voice_max_seconds", "fax_max_seconds",
                    "extension_limit", "conference_max", "fair_use", "flex"):
            assert key in data, (plan.id, key)
            assert (getattr(plan, key) is None) == (data[key] == "none")
    assert set(FIELD_RULES) <= set(PLANS.get("connect").__dataclass_fields__)  # type: ignore[union-attr]


def test_the_data_files_mark_assumptions() -> None:
    for plan in PLANS:
        assert "ASSUMPTION" in (DEFAULT_PLANS_DIR / f"{plan.id}.toml").read_text(), plan.id


@pytest.mark.parametrize(("duration", "billed"), [
    (0, 0), (0.4, 18), (1, 18), (18, 18), (18.01, 24), (24, 24), (25, 30), (3600, 3600),
])
def test_grasshopper_billing_6s_increments_18s_minimum(duration: float, billed: int) -> None:
    assert Billing(6, 18, "R24").billable_seconds(duration) == billed


def test_fair_use_formulas() -> None:
    assert FairUse(50_000, "account", "all", "refuse", "R20").monthly_limit(authorised_users=9) == 50_000
    assert FairUse(2500, "authorised_user", "pstn", "overage", "R26").monthly_limit(authorised_users=4) == 10_000
    assert FairUse(3000, "audio_user", "meeting", "overage", "R31").monthly_limit(
        authorised_users=10, audio_users=3) == 9000
    assert FairUse(3000, "audio_user", "meeting", "overage", "R31").monthly_limit() == 0


def test_international_needs_the_deposit_r24() -> None:
    grass = PLANS.get("grasshopper")
    assert grass is not None
    assert not grass.international.enabled_for(0)
    assert not grass.international.enabled_for(499)
    assert grass.international.enabled_for(500)
    assert International(False, None, "R24").enabled_for(10_000) is False
    assert International(True, None, "R28").enabled_for(0)


def test_blocked_prefixes_and_the_allow_list_r25() -> None:
    grass = PLANS.get("grasshopper")
    assert grass is not None
    assert grass.is_blocked("+5371234567")
    assert not grass.is_blocked("+31201234567")
    assert not grass.is_blocked("+5371234567", ("+53",))
    assert grass.is_blocked("+5371234567", ("+5399",))  # a narrower allow only lifts its own range
    assert grass.is_blocked("+18765550100")             # a blocked NANP area code inside +1
    assert not grass.is_blocked("+15125550100")


def test_rating_per_country_and_call_type_r28() -> None:
    connect = PLANS.get("connect")
    assert connect is not None
    dom = connect.quote("+15125550100", "US")
    assert (dom.scope, dom.included, dom.per_min) == ("domestic", True, Decimal(0))
    uk_mobile = connect.quote("+447700900123", "US")
    assert (uk_mobile.scope, uk_mobile.country, uk_mobile.call_type) == ("international", "GB", "mobile")
    uk_land = connect.quote("+442079460000", "US")
    assert uk_land.call_type == "landline" and uk_land.per_min is not None
    assert uk_land.per_min < uk_mobile.per_min  # type: ignore[operator]
    assert connect.quote("+442079460000", "UK").scope == "domestic"
    premium = connect.quote("+19005550100", "US")
    assert premium.scope == "premium" and not premium.included and premium.per_min is not None
    unknown = connect.quote("+34911234567", "US")  # not in the table: the default rate
    assert unknown.country is None and unknown.per_min == connect.rates.international_default_per_min
    openvoice = PLANS.get("openvoice")
    assert openvoice is not None and not openvoice.quote("+15125550100", "US").included
    with pytest.raises(ValueError, match=r"E\.164"):
        connect.quote("0044207946", "US")


def test_to_dict_is_json_friendly() -> None:
    import json

    data = PLANS.get("grasshopper").to_dict()  # type: ignore[union-attr]
    text = json.dumps(data)
    assert data["billing"] == {"increment_s": 6, "minimum_s": 18, "rule_id": "R24"}
    assert data["rates"]["international"][1]["country"] == "GB"
    assert "Decimal" not in text


# --- the loader refuses bad files -------------------------------------------------------------

def good() -> dict[str, Any]:
    return raw("grasshopper")


def with_(path: str, value: Any) -> dict[str, Any]:
    data = good()
    *parents, last = path.split(".")
    target = data
    for p in parents:
        target = target[p]
    if value is KeyError:
        del target[last]
    else:
        target[last] = value
    return data


@pytest.mark.parametrize(("path", "value", "field"), [
    ("max_concurrent_calls", KeyError, "max_concurrent_calls"),   # forgotten key is not "unlimited"
    ("max_concurrent_calls", 0, "max_concurrent_calls"),
    ("max_concurrent_calls", "unlimited", "max_concurrent_calls"),
    ("emergency_calling", "yes", "emergency_calling"),
    ("id", "Grass Hopper", "id"),
    ("premium", "maybe", "premium"),
    ("colour", "green", "colour"),
    ("fair_use.basis", "planet", "fair_use.basis"),
    ("fair_use.rule_id", "rule 20", "fair_use.rule_id"),
    ("fair_use.extra", 1, "fair_use.extra"),
    ("billing.increment_s", 0, "billing.increment_s"),
    ("billing", "none", "billing"),
    ("international.deposit_required_usd", -5, "international.deposit_required_usd"),
    ("blocked_prefixes", ["53"], "blocked_prefixes"),
    ("blocked_prefixes", ["+53", "+53"], "blocked_prefixes"),
    ("rates.currency", "EUR", "rates.currency"),
    ("rates.domestic_per_min", -1, "rates.domestic_per_min"),
    ("rates.domestic.US", ["1"], "rates.domestic.US"),
    ("location_required", True, "location_required"),   # no emergency calling, yet a location?
])
def test_bad_plan_names_file_and_field(path: str, value: Any, field: str) -> None:
    with pytest.raises(PlanError) as err:
        parse_plan(with_(path, value), "grasshopper.toml")
    assert err.value.field == field and err.value.source == "grasshopper.toml"


def test_bad_country_rates_are_refused() -> None:
    data = good()
    data["rates"]["international"][1]["mobile_prefixes"] = ["+337"]  # FR mobile under GB
    with pytest.raises(PlanError, match=r"international\[1\]\.mobile_prefixes"):
        parse_plan(data, "x.toml")
    data = good()
    data["rates"]["international"][2]["prefix"] = "+44"
    with pytest.raises(PlanError, match="listed twice"):
        parse_plan(data, "x.toml")
    data = good()
    data["international"]["allowed"] = False
    with pytest.raises(PlanError, match="deposit"):
        parse_plan(data, "x.toml")


def test_loader_checks_file_name_toml_and_emptiness(tmp_path: Path) -> None:
    source = (DEFAULT_PLANS_DIR / "grasshopper.toml").read_text()
    (tmp_path / "hopper.toml").write_text(source)
    with pytest.raises(PlanError, match="must match the file name"):
        load_plans(tmp_path)
    (tmp_path / "hopper.toml").write_text("id = [")
    with pytest.raises(PlanError, match="invalid TOML"):
        load_plans(tmp_path)
    (tmp_path / "hopper.toml").unlink()
    with pytest.raises(PlanError, match="no plans"):
        load_plans(tmp_path)
    (tmp_path / "grasshopper.toml").write_text(source)
    assert load_plans(tmp_path).ids == ("grasshopper",)
