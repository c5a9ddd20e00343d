"""Rated call records over HTTP (real uvicorn, SQLite and PostgreSQL): the rating fields
round-trip, `GET /cdrs` filters, the CSV export parsed back with the csv module, the
usage summary per account and UTC month, and records written before migration 0003."""

from __future__ import annotations

import csv
import io
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import text

from provisioning import migrate
from provisioning.api.routes.cdrs import CSV_COLUMNS
from provisioning.cdrs import CdrFilter, CdrStore
from provisioning.db import init_db, make_engine
from provisioning.plans import load_plans
from provisioning.rating import CALL_TYPES
from tests import conftest_db
from tests.conftest_db import Api, loc

db_url, prov, empty_db_url = conftest_db.db_url, conftest_db.prov, conftest_db.empty_db_url

T0 = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)


def record(account_id: int, n: int, *, start: datetime = T0, **kw: Any) -> dict[str, Any]:
    """A rated record as the gateway hands it to `write_many` (answered, 61 s, domestic)."""
    rec: dict[str, Any] = {
        "account_id": account_id, "call_id": f"c{account_id}-{n}-{secrets.token_hex(3)}",
        "caller": f"sip:10{n % 10}@lab", "callee": "sip:+15125550100@lab",
        "start": start, "answer": start + timedelta(seconds=2), "end": start + timedelta(seconds=63),
        "duration_s": 61.0, "disposition": "answered", "sip_code": 200, "reason": "OK",
        "call_type": "domestic", "destination": "+15125550100", "billable_s": 66,
        "rate_per_min": Decimal("0.0100"), "charge": Decimal("0.0110"), "currency": "USD",
        "overage": False, "plan": "grasshopper"}
    rec.update(kw)
    return rec


@pytest.fixture
def acc(prov: Api) -> int:
    account_id: int = prov.account(plan="connect")["id"]
    return account_id


def write(prov: Api, records: list[dict[str, Any]]) -> None:
    assert CdrStore(prov.engine).write_many(records) == len(records)


def csv_of(prov: Api, **params: Any) -> list[dict[str, str]]:
    r = prov.http.get("/api/v1/cdrs.csv", params=params)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert "\r\n" in r.text  # RFC 4180 line ends
    reader = csv.reader(io.StringIO(r.text, newline=""))
    header = next(reader)
    assert tuple(header) == CSV_COLUMNS
    return [dict(zip(header, row, strict=True)) for row in reader]


# --- the record ---------------------------------------------------------------------------------

def test_rated_fields_round_trip_and_money_is_exact(prov: Api, acc: int) -> None:
    write(prov, [record(acc, 1, call_type="international", destination="+447700900123", billable_s=66,
                        rate_per_min=Decimal("0.08"), charge=Decimal("0.08") * 66 / 60, overage=True,
                        plan="connect", rule_id=None)])
    [out] = prov.get("/cdrs", account_id=acc).json()
    assert out["call_type"] == "international" and out["destination"] == "+447700900123"
    assert out["billable_s"] == 66 and out["overage"] is True and out["plan"] == "connect"
    # 0.08 x 66 / 60 = 0.088: kept to four places, exact on both backends, sent as a string
    assert Decimal(out["rate_per_min"]) == Decimal("0.0800")
    assert Decimal(out["charge"]) == Decimal("0.0880") and out["currency"] == "USD"


def test_a_record_without_rating_reads_as_unrated_on_net(prov: Api, acc: int) -> None:
    plain = {k: v for k, v in record(acc, 1).items()
             if k not in {"call_type", "destination", "billable_s", "rate_per_min", "charge", "currency",
                          "overage", "plan"}}
    write(prov, [plain])
    [out] = prov.get("/cdrs", account_id=acc).json()
    assert (out["call_type"], out["destination"], out["billable_s"], out["rate_per_min"]) == (
        "on-net", None, 0, None)
    assert Decimal(out["charge"]) == 0 and out["currency"] == "USD" and out["overage"] is False


@pytest.mark.parametrize(("field", "value"), [("call_type", "local"), ("charge", "-0.01"), ("charge", "NaN"),
                                              ("currency", "usd"), ("billable_s", -6)])
def test_bad_rating_fields_are_refused_before_writing(prov: Api, acc: int, field: str, value: Any) -> None:
    store = CdrStore(prov.engine)
    with pytest.raises(ValidationError) as err:
        store.write_many([record(acc, 1), record(acc, 2, **{field: value})])
    assert field in str(err.value)
    assert prov.get("/cdrs", account_id=acc).json() == []  # nothing of the batch was written


# --- filters ------------------------------------------------------------------------------------

def test_filters_by_type_rule_caller_and_disposition(prov: Api, acc: int) -> None:
    write(prov, [record(acc, 1, call_type="domestic", caller="sip:101@lab"),
                 record(acc, 2, call_type="international", caller="sip:102@lab"),
                 record(acc, 3, call_type="international", caller="sip:101@lab", disposition="rejected",
                        sip_code=403, rule_id="R24", duration_s=0.0, billable_s=0, charge=Decimal(0)),
                 record(acc, 4, call_type="premium", caller="sip:102@lab", disposition="rejected", sip_code=403,
                        rule_id="R28", duration_s=0.0, billable_s=0, charge=Decimal(0))])

    def ids(**params: Any) -> list[str]:
        r = prov.get("/cdrs", account_id=acc, **params)
        assert r.status_code == 200, r.text
        return sorted(c["call_id"].split("-")[1] for c in r.json())

    assert ids(call_type="international") == ["2", "3"]
    assert ids(rule_id="R28") == ["4"]
    assert ids(caller="sip:101@lab") == ["1", "3"]
    assert ids(caller="sip:101@lab", disposition="rejected") == ["3"]
    assert ids(call_type="international", rule_id="R24", caller="sip:101@lab") == ["3"]
    assert ids(call_type="emergency") == []
    assert ["query", "call_type"] in loc(prov.get("/cdrs", call_type="local"))
    assert ["query", "rule_id"] in loc(prov.get("/cdrs", rule_id="R" * 9))


def test_since_is_inclusive_and_until_exclusive_on_start(prov: Api, acc: int) -> None:
    starts = [T0 + timedelta(minutes=m) for m in range(5)]
    write(prov, [record(acc, n, start=s) for n, s in enumerate(starts)])

    def got(**params: Any) -> list[str]:
        r = prov.get("/cdrs", account_id=acc, **params)
        assert r.status_code == 200, r.text
        return [c["start"] for c in r.json()]

    assert [datetime.fromisoformat(s) for s in got()] == list(reversed(starts))
    window = got(since=starts[1].isoformat(), until=starts[3].isoformat())
    assert [datetime.fromisoformat(s) for s in window] == [starts[2], starts[1]]
    # the same instant written with another offset, and without one (read as UTC)
    plus2 = starts[1].astimezone(timezone(timedelta(hours=2))).isoformat()
    assert got(since=plus2) == got(since=starts[1].isoformat())
    assert got(since=starts[1].replace(tzinfo=None).isoformat()) == got(since=starts[1].isoformat())
    assert ["query", "until"] in loc(prov.get("/cdrs", since=starts[3].isoformat(), until=starts[1].isoformat()))
    assert ["query", "since"] in loc(prov.get("/cdrs", since="yesterday"))


def test_limit_and_offset_page_newest_first(prov: Api, acc: int) -> None:
    write(prov, [record(acc, n, start=T0 + timedelta(seconds=n)) for n in range(7)])
    every = [c["id"] for c in prov.get("/cdrs", account_id=acc).json()]
    pages = [c["id"] for off in (0, 3, 6) for c in prov.get("/cdrs", account_id=acc, limit=3, offset=off).json()]
    assert pages == every and len(every) == 7


# --- CSV ----------------------------------------------------------------------------------------

def test_csv_has_the_json_records_in_the_same_order(prov: Api, acc: int) -> None:
    write(prov, [record(acc, n, start=T0 + timedelta(seconds=n), call_type=CALL_TYPES[n % len(CALL_TYPES)])
                 for n in range(9)])
    for params in ({}, {"call_type": "domestic"}, {"limit": 4, "offset": 2}):
        rows = csv_of(prov, account_id=acc, **params)
        listed = prov.get("/cdrs", account_id=acc, **params).json()
        assert [int(r["id"]) for r in rows] == [c["id"] for c in listed]
        for row, out in zip(rows, listed, strict=True):
            assert row["call_id"] == out["call_id"] and row["call_type"] == out["call_type"]
            assert datetime.fromisoformat(row["start"]) == datetime.fromisoformat(out["start"])
            assert Decimal(row["charge"]) == Decimal(out["charge"])
            assert int(row["billable_s"]) == out["billable_s"]
            assert row["overage"] == "false" and row["rule_id"] == ""


def test_csv_quotes_commas_quotes_and_newlines(prov: Api, acc: int) -> None:
    nasty = '"Bob, the ""builder""\r\nline two" <sip:bob@lab>'
    write(prov, [record(acc, 1, caller=nasty, reason='Forbidden, "R25"', rule_id="R25")])
    [row] = csv_of(prov, account_id=acc)
    assert row["caller"] == nasty and row["reason"] == 'Forbidden, "R25"' and row["rule_id"] == "R25"


def test_csv_of_nothing_is_a_header(prov: Api, acc: int) -> None:
    assert csv_of(prov, account_id=acc) == []
    assert ["query", "limit"] in loc(prov.http.get("/api/v1/cdrs.csv", params={"limit": 0}))
    assert prov.anon.get("/api/v1/cdrs.csv").status_code == 401


def test_export_pages_cover_ties_on_start_exactly_once(prov: Api, acc: int) -> None:
    """Keyset pagination on (start, id): records sharing a start are neither lost nor repeated."""
    write(prov, [record(acc, n, start=T0 + timedelta(seconds=n // 3)) for n in range(11)])
    store = CdrStore(prov.engine)
    where = CdrFilter(account_id=acc)
    every = [c.id for c in store.list(where, limit=1000)]
    for page in (1, 2, 3, 4, 11, 50):
        assert [c.id for c in store.iter_export(where, page=page)] == every
        assert [c.id for c in store.iter_export(where, page=page, limit=5, offset=3)] == every[3:8]
    assert [int(r["id"]) for r in csv_of(prov, account_id=acc)] == every


# --- usage summary ------------------------------------------------------------------------------

def test_usage_counts_a_month_by_its_utc_edges(prov: Api) -> None:
    plan = load_plans().get("connect")
    assert plan is not None and plan.fair_use is not None
    acc = prov.account(plan="connect")["id"]
    for ext in ("201", "202"):
        prov.user(acc, ext)
    march_first = datetime(2025, 3, 1, tzinfo=UTC)
    april_first = datetime(2025, 4, 1, tzinfo=UTC)
    tick = timedelta(microseconds=1)
    in_march = [
        record(acc, 1, start=march_first, duration_s=120.0, billable_s=120),
        record(acc, 2, start=april_first - tick, call_type="international", duration_s=30.0, billable_s=60,
               charge=Decimal("0.5000")),
        # 00:30 on 1 April at UTC+02:00 is 31 March in UTC
        record(acc, 3, start=april_first.astimezone(timezone(timedelta(hours=2))) - timedelta(minutes=90),
               call_type="on-net", duration_s=600.0, billable_s=600, charge=Decimal(0)),
        record(acc, 4, start=march_first + timedelta(days=3), call_type="emergency", duration_s=300.0,
               billable_s=0, charge=Decimal(0)),
        record(acc, 5, start=march_first + timedelta(days=4), disposition="busy", sip_code=486, duration_s=0.0,
               billable_s=0, charge=Decimal(0)),
        record(acc, 6, start=march_first + timedelta(days=5), duration_s=90.0, billable_s=120, overage=True,
               charge=Decimal("0.0200")),
    ]
    outside = [record(acc, 7, start=march_first - tick), record(acc, 8, start=april_first)]
    write(prov, in_march + outside)

    r = prov.get(f"/accounts/{acc}/usage", month="2025-03")
    assert r.status_code == 200, r.text
    u = r.json()
    assert (u["account_id"], u["month"], u["plan"]) == (acc, "2025-03", "connect")
    assert datetime.fromisoformat(u["start"]) == march_first and datetime.fromisoformat(u["end"]) == april_first
    assert u["totals"]["calls"] == len(in_march)
    assert u["totals"]["answered"] == len(in_march) - 1
    assert u["totals"]["billable_s"] == sum(rec["billable_s"] for rec in in_march)
    assert Decimal(u["totals"]["charges"]["USD"]) == sum(rec["charge"] for rec in in_march)
    dom = u["by_call_type"]["domestic"]
    assert (dom["calls"], dom["answered"], dom["duration_s"], dom["billable_s"]) == (3, 2, 210.0, 240)
    assert set(u["by_call_type"]) == set(CALL_TYPES)
    assert u["by_call_type"]["emergency"]["minutes"] == 5.0
    fu = u["fair_use"]
    # connect: PSTN minutes only (domestic + international talk time), 2,500 x the account's 2 users
    assert fu["limit_minutes"] == plan.fair_use.monthly_limit(authorised_users=2, audio_users=2)
    assert fu["users"] == 2 and fu["rule_id"] == plan.fair_use.rule_id
    assert fu["used_minutes"] == round((120.0 + 30.0 + 90.0) / 60, 2)
    assert u["overage"]["calls"] == 1 and u["overage"]["minutes"] == 1.5
    assert u["overage"]["charges"] == {"USD": "0.0200"}

    feb = prov.get(f"/accounts/{acc}/usage", month="2025-02").json()
    apr = prov.get(f"/accounts/{acc}/usage", month="2025-04").json()
    assert feb["totals"]["calls"] == 1 and apr["totals"]["calls"] == 1
    # no month: the injected clock's
    assert prov.get(f"/accounts/{acc}/usage").json()["month"] == prov.clock().strftime("%Y-%m")


def test_usage_counts_only_the_plans_category(prov: Api) -> None:
    acc = prov.account(plan="grasshopper")["id"]
    write(prov, [record(acc, n, call_type=t, duration_s=60.0, billable_s=60) for n, t in enumerate(CALL_TYPES)])
    u = prov.get(f"/accounts/{acc}/usage", month=T0.strftime("%Y-%m")).json()
    assert u["fair_use"]["call_types"] == [t for t in CALL_TYPES if t != "emergency"]
    assert u["fair_use"]["used_minutes"] == len(CALL_TYPES) - 1
    assert u["fair_use"]["users"] == 0


def test_usage_errors(prov: Api, acc: int) -> None:
    assert ["query", "month"] in loc(prov.get(f"/accounts/{acc}/usage", month="2025-13"))
    assert ["query", "month"] in loc(prov.get(f"/accounts/{acc}/usage", month="March"))
    r = prov.get("/accounts/987654/usage")
    assert r.status_code == 404 and "987654" in r.json()["detail"]
    assert prov.anon.get(f"/api/v1/accounts/{acc}/usage").status_code == 401


# --- records written before migration 0003 ------------------------------------------------------

@pytest.fixture
def engine_at_0002(empty_db_url: str) -> Iterator[Any]:
    engine = make_engine(empty_db_url)
    migrate.upgrade(engine, "0002")
    yield engine
    engine.dispose()


def test_records_from_before_rating_survive_the_upgrade(engine_at_0002: Any) -> None:
    with engine_at_0002.begin() as conn:
        conn.execute(text(
            "INSERT INTO cdr (account_id, call_id, caller, callee, start, duration_s, disposition, sip_code) "
            "VALUES (1, 'old-1', 'sip:100@lab', 'sip:101@lab', :start, 42.5, 'answered', 200)"),
            {"start": T0.replace(tzinfo=None)})
    init_db(engine_at_0002)  # to head
    [old] = CdrStore(engine_at_0002).list(CdrFilter(call_id="old-1"))
    assert (old.call_type, old.billable_s, old.currency, old.overage, old.plan) == ("on-net", 0, "USD", False, None)
    assert old.charge == 0 and old.rate_per_min is None and old.duration_s == 42.5
    assert CdrStore(engine_at_0002).usage_groups(1, "2025-03")[0].calls == 1
