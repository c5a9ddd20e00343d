"""Plans over HTTP, accounts on any plan, the R24 deposit and the R25 allow-list,
and the directory snapshot fields the call policy (#5) reads. SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from provisioning.plans import load_plans
from tests import conftest_db
from tests.conftest_db import Api, loc

db_url, prov = conftest_db.db_url, conftest_db.prov


def test_plans_listed_with_their_parameters(prov: Api) -> None:
    plans = prov.get("/plans").json()
    assert [p["id"] for p in plans] == ["connect", "grasshopper", "meeting", "openvoice"]
    grass = prov.get("/plans/grasshopper").json()
    assert grass == load_plans().get("grasshopper").to_dict()  # type: ignore[union-attr]
    assert grass["max_concurrent_calls"] == 50 and grass["extension_limit"] == 1000
    assert grass["international"] == {"allowed": True, "deposit_required_usd": 500, "rule_id": "R24"}
    assert grass["field_rules"]["extension_limit"] == "R21"
    r = prov.get("/plans/platinum")
    assert r.status_code == 404 and "plan platinum not found" in r.json()["detail"]
    assert prov.anon.get("/api/v1/plans").status_code == 401


@pytest.mark.parametrize("plan", ["connect", "grasshopper", "openvoice", "meeting"])
def test_accounts_take_any_plan(prov: Api, plan: str) -> None:
    acc = prov.account(plan=plan)
    assert acc["plan"] == plan and acc["deposit_usd"] == 0 and acc["allowed_prefixes"] == []
    assert prov.directory.snapshot.accounts[acc["id"]].plan == plan


def test_unknown_plan_is_422_listing_the_plans(prov: Api) -> None:
    r = prov.post("/accounts", {"name": "x", "plan": "platinum", "region": "US"})
    assert ["body", "plan"] in loc(r)
    assert "grasshopper" in r.json()["detail"][0]["msg"]


def test_deposit_accumulates_reaches_the_snapshot_and_is_audited(prov: Api) -> None:
    acc = prov.account(plan="grasshopper")["id"]
    r = prov.post(f"/accounts/{acc}/deposit", {"amount_usd": 200})
    assert r.status_code == 200 and r.json()["deposit_usd"] == 200
    assert prov.directory.snapshot.accounts[acc].deposit_usd == 200
    plan = load_plans().get("grasshopper")
    assert plan is not None and not plan.international.enabled_for(200)
    r = prov.post(f"/accounts/{acc}/deposit", {"amount_usd": 300})
    assert r.json()["deposit_usd"] == 500
    entry = prov.directory.snapshot.accounts[acc]
    assert entry.deposit_usd == 500 and plan.international.enabled_for(entry.deposit_usd)
    events = prov.get("/audit", account_id=acc, entity="account").json()
    assert [e["detail"].get("deposit_usd") for e in events if e["action"] == "account.deposit_recorded"] == [
        500, 200]
    kinds = [c.kind for c in prov.changes if c.account_id == acc]
    assert kinds == ["account.created", "account.deposit_recorded", "account.deposit_recorded"]


@pytest.mark.parametrize("body", [{"amount_usd": 0}, {"amount_usd": -5}, {"amount_usd": "lots"}, {},
                                  {"amount_usd": 10, "currency": "EUR"}])
def test_bad_deposits_are_422(prov: Api, body: dict[str, Any]) -> None:
    acc = prov.account()["id"]
    r = prov.post(f"/accounts/{acc}/deposit", body)
    assert r.status_code == 422
    assert prov.get(f"/accounts/{acc}").json()["deposit_usd"] == 0


def test_allowed_prefixes_replace_and_reach_the_snapshot(prov: Api) -> None:
    acc = prov.account(plan="grasshopper")["id"]
    r = prov.http.put(f"/api/v1/accounts/{acc}/allowed-prefixes", json={"prefixes": ["+53", "+252", "+53"]})
    assert r.status_code == 200 and r.json()["allowed_prefixes"] == ["+252", "+53"]
    entry = prov.directory.snapshot.accounts[acc]
    assert entry.allowed_prefixes == ("+252", "+53")
    plan = load_plans().get("grasshopper")
    assert plan is not None and not plan.is_blocked("+5371234567", entry.allowed_prefixes)
    r = prov.http.put(f"/api/v1/accounts/{acc}/allowed-prefixes", json={"prefixes": []})
    assert r.json()["allowed_prefixes"] == []
    assert prov.directory.snapshot.accounts[acc].allowed_prefixes == ()
    audit = [e for e in prov.get("/audit", account_id=acc).json()
             if e["action"] == "account.allowed_prefixes_set"]
    assert audit[0]["detail"] == {"before": ["+252", "+53"], "after": []}


@pytest.mark.parametrize("prefixes", [["53"], ["+0"], ["+53x"], ["+" + "1" * 16]])
def test_bad_prefixes_are_422(prov: Api, prefixes: list[str]) -> None:
    acc = prov.account()["id"]
    r = prov.http.put(f"/api/v1/accounts/{acc}/allowed-prefixes", json={"prefixes": prefixes})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"][:2] == ["body", "prefixes"]


def test_deposit_and_prefixes_on_unknown_account_are_404(prov: Api) -> None:
    assert prov.post("/accounts/999999/deposit", {"amount_usd": 5}).status_code == 404
    r = prov.http.put("/api/v1/accounts/999999/allowed-prefixes", json={"prefixes": ["+53"]})
    assert r.status_code == 404
