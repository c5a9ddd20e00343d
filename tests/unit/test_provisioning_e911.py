"""E911 provisioning on a real SQLite file: location validation and normalisation, the R15 notice
and forwarding, R11 outages and suspension, R13 moves through the gateway's store, emergency call
and PSAP records with their audit, and the directory snapshot the gateway reads (incremental ==
full reload)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import insert
from sqlmodel import Session, col, select

from e911.civic import check
from e911.moves import NetworkFingerprint, fingerprint
from e911.pidf import device_uri
from hardware_profiles.catalog import load_catalog
from provisioning import services
from provisioning.bulk import import_devices
from provisioning.db import init_db, make_engine
from provisioning.directory import Directory, DirectorySnapshot
from provisioning.e911_store import E911Store, list_emergency_calls, list_psap_calls
from provisioning.errors import Conflict, Invalid, NotFound
from provisioning.events import Change, ChangeBus
from provisioning.models import AuditEvent, DeviceE911, Location, LocationPrompt
from provisioning.schemas import (
    AccountCreate,
    DeviceCreate,
    LineSpec,
    LocationCreate,
    SiteNeedsIn,
    UserCreate,
)
from provisioning.services import ServiceEnv, account_e911, device_e911, locations, notices, outages
from tests.conftest_db import ManualClock, sqlite_url  # noqa: F401

DOMAIN = "e911.voiplab.test"
AUSTIN: dict[str, Any] = {"country": "US", "a1": "Texas", "a3": "Austin", "rd": "Congress", "sts": "Avenue", "hno": "100",
          "pc": "787011234", "flr": "3", "room": "301"}
BERLIN: dict[str, Any] = {"country": "DE", "a3": "Berlin", "rd": "Unter den Linden", "hno": "77", "pc": "10117"}
NEW_MAPS = ("devices", "device_by_mac", "locations", "devices_by_location")


@dataclass
class World:
    env: ServiceEnv
    directory: Directory
    store: E911Store
    clock: ManualClock
    published: list[Change] = field(default_factory=list)

    @property
    def s(self) -> Session:
        return self.env.session

    def account(self, plan: str = "connect", region: str = "US") -> int:
        acc = services.create_account(self.env, AccountCreate(name="Acme", plan=plan, region=region))
        assert acc.id is not None
        return acc.id

    def location(self, account_id: int, callback: str = "+15125550100", **kw: Any) -> Location:
        return locations.create_location(self.env, account_id, LocationCreate(
            **{**AUSTIN, **kw}, callback_number=callback))

    def device(self, account_id: int, ext: str, profile: str = "softphone-desktop",
               mac: str | None = None) -> int:
        u = services.create_user(self.env, account_id, UserCreate(
            named_user_id=f"pat.smith.{ext}.{account_id}@acme.example", display_name=f"Pat {ext}", extension=ext))
        assert u.id is not None
        made = services.create_device(self.env, account_id, DeviceCreate(
            hardware_profile=profile, name=f"dev {ext}", mac=mac, lines=[LineSpec(user_id=u.id)]))
        assert made.device.id is not None
        return made.device.id

    def active(self, account_id: int, ext: str, location_id: int, **kw: Any) -> int:
        dev = self.device(account_id, ext, **kw)
        services.bind_location(self.env, dev, location_id)
        services.activate_device(self.env, dev)
        return dev

    def audit(self, action: str) -> list[AuditEvent]:
        return list(self.s.exec(select(AuditEvent).where(AuditEvent.action == action)
                                .order_by(col(AuditEvent.id))))

    def register(self, device_id: int, source: str, contact: str, after: float = 1) -> Any:
        at = self.clock.advance(after)
        return self.store.record_registrations(
            [{"device_id": device_id, "fingerprint": fingerprint(source, contact).as_dict(), "at": at}])[0]


@pytest.fixture
def w(sqlite_url: str) -> Iterator[World]:  # noqa: F811
    engine = make_engine(sqlite_url)
    init_db(engine)
    bus = ChangeBus()
    directory = Directory(engine)
    directory.load_all()
    bus.subscribe_many(directory.apply_many)
    clock = ManualClock()
    with Session(engine, expire_on_commit=False) as session:
        world = World(ServiceEnv(session=session, now=clock, sip_domain=DOMAIN, catalog=load_catalog(), bus=bus,
                                 actor="tester"), directory, E911Store(engine, bus=bus), clock)
        bus.subscribe(world.published.append)
        yield world
    engine.dispose()


def same_as_reload(w: World) -> DirectorySnapshot:
    fresh = Directory(w.env.session.get_bind()).load_all()  # type: ignore[arg-type]
    snap = w.directory.snapshot
    for name in ("accounts", "lines", *NEW_MAPS):
        assert dict(getattr(snap, name)) == dict(getattr(fresh, name)), name
    return snap


# --- locations -----------------------------------------------------------------------------------

def test_location_is_normalised_and_the_callback_stored_as_e164(w: World) -> None:
    acc = w.account()
    place = w.location(acc, callback="(512) 555-0100", site_needs=SiteNeedsIn(floor=True))
    assert (place.a1, place.sts, place.pc, place.callback_number) == ("TX", "AVE", "78701-1234", "+15125550100")
    assert place.validation_status == "valid" and place.validated_at == w.clock()
    assert place.site_needs == {"building": False, "floor": True, "unit": False, "room": False}
    created = w.audit("location.created")[-1].detail
    assert created["civic"]["a1"] == "TX" and created["as_given"]["a1"] == "Texas"


def test_every_failing_element_is_reported_at_once(w: World) -> None:
    acc = w.account()
    with pytest.raises(Invalid) as err:
        locations.create_location(w.env, acc, LocationCreate(
            country="US", a1="Narnia", rd="Main", hno="12B-x", pc="1234", callback_number="911-555-0100",
            site_needs=SiteNeedsIn(floor=True, unit=True), unit="4"))
    found = {(i.field, i.extra["problem"]) for i in err.value.issues if i.extra}
    assert found == {(("a3",), "required"), (("a1",), "unknown_subdivision"), (("pc",), "invalid_format"),
                     (("hno",), "not_numeric"), (("flr",), "required_for_dispatch"),
                     (("callback_number",), "invalid_number")}
    assert all(i.extra and i.extra["element"] == ("callback_number" if i.field == ("callback_number",)
                                                  else str(i.field[0]).upper()) for i in err.value.issues)
    assert w.s.exec(select(Location)).all() == []  # nothing stored


def test_callback_follows_the_account_region(w: World) -> None:
    eu = w.account(region="EU")
    berlin = locations.create_location(w.env, eu, LocationCreate(**BERLIN, callback_number="030 1234567"))
    assert berlin.callback_number == "+49301234567"  # national number in the address's country (EU)
    uk = w.account(region="UK")
    with pytest.raises(Invalid) as err:  # a UK account dials UK numbers: 0301234567 is not one of ours
        locations.create_location(w.env, uk, LocationCreate(**BERLIN, callback_number="0301234567x"))
    assert [i.field for i in err.value.issues] == [("callback_number",)]
    ok = locations.create_location(w.env, uk, LocationCreate(**BERLIN, callback_number="+49 30 1234567"))
    assert ok.callback_number == "+49301234567"


def test_update_revalidates_keeps_bindings_and_tells_the_gateway(w: World) -> None:
    acc = w.account()
    place = w.location(acc)
    assert place.id is not None
    a, b = w.active(acc, "10", place.id), w.active(acc, "11", place.id)
    w.published.clear()
    with pytest.raises(Invalid) as err:
        locations.update_location(w.env, place.id, {"hno": None, "pc": "ABCDE"})
    assert {i.field for i in err.value.issues} == {("hno",), ("pc",)}
    w.s.refresh(place)
    assert place.hno == "100" and w.published == []  # refused: nothing stored, nobody told
    w.clock.advance(60)
    updated = locations.update_location(w.env, place.id, {"flr": "4", "room": None, "sts": "street"})
    assert (updated.flr, updated.room, updated.sts, updated.updated_at) == ("4", None, "ST", w.clock())
    assert [c.kind for c in w.published] == ["location.updated", "device.location_changed",
                                            "device.location_changed"]
    assert {c.entity_id for c in w.published[1:]} == {a, b}
    detail = w.audit("location.updated")[-1].detail
    assert detail["changes"]["flr"] == {"before": "3", "after": "4"} and detail["devices_for_fresh_lookup"] == [a, b]
    snap = same_as_reload(w)
    assert snap.locations[place.id].civic["flr"] == "4" and "room" not in snap.locations[place.id].civic
    assert snap.devices[a].location_id == place.id  # re-binds nothing
    w.published.clear()
    assert locations.update_location(w.env, place.id, {"flr": "4"}).flr == "4"
    assert w.published == []  # no change, no event


def test_dry_runs_store_nothing(w: World) -> None:
    acc = w.account()
    place = w.location(acc)
    assert place.id is not None
    result = locations.check_update(w.s, place.id, {"pc": "nope", "site_needs": {"unit": True}})
    assert not result.valid
    assert {(p.field, p.problem) for p in result.problems} == {("pc", "invalid_format"),
                                                               ("unit", "required_for_dispatch")}
    assert locations.check_update(w.s, place.id).valid
    new = locations.validate_new(w.s, acc, LocationCreate(**BERLIN, callback_number="030 1234567"))
    assert [(p.field, p.problem) for p in new.problems] == [("callback_number", "invalid_number")]  # US plan
    assert new.civic.country == "DE" and new.formatted.startswith("77 Unter den Linden")
    assert len(w.s.exec(select(Location)).all()) == 1


def test_binding_revalidates_a_location_stored_before_validation(w: World) -> None:
    acc = w.account()
    dev = w.device(acc, "10")
    w.s.execute(insert(Location), [{"id": 900, "account_id": acc, "country": "US", "callback_number": "+15125550100",
                                    "created_at": w.clock()}])
    w.s.commit()
    with pytest.raises(Invalid) as err:
        services.bind_location(w.env, dev, 900)
    assert {i.field for i in err.value.issues} == {("location_id",)}
    assert {i.extra["location_field"] for i in err.value.issues if i.extra} == {"a1", "a3", "rd", "hno", "pc"}
    legacy = w.s.get(Location, 900)
    assert legacy is not None and legacy.validation_status == "invalid"
    assert w.directory.snapshot.locations[900].valid is False
    locations.update_location(w.env, 900, {k: v for k, v in AUSTIN.items() if k != "country"})
    assert services.bind_location(w.env, dev, 900).location_id == 900
    assert w.directory.snapshot.locations[900].valid is True


# --- R15 notices ------------------------------------------------------------------------------------

def test_activation_records_a_notice_and_forwarding_waits_for_its_acknowledgement(w: World) -> None:
    acc = w.account()
    place = w.location(acc)
    assert place.id is not None
    dev = w.active(acc, "10", place.id)
    [notice] = notices.list_notices(w.s, device_id=dev)
    assert notice.sent_at == w.clock() and notice.acknowledged_at is None
    assert "100 Congress AVE" in notice.text and "+15125550100" in notice.text and "R11" in notice.text
    entry = w.directory.snapshot.devices[dev]
    assert entry.state == "active" and entry.location_forwarding is False
    assert device_e911.device_status(w.s, dev)["forwarding_reason"] == "customer notice not acknowledged yet (R15)"
    w.clock.advance(30)
    acked = notices.acknowledge_notice(w.env, dev, "Pat Smith")
    assert (acked.acknowledged_at, acked.acknowledged_by) == (w.clock(), "Pat Smith")
    assert w.directory.snapshot.devices[dev].location_forwarding is True
    assert notices.acknowledge_notice(w.env, dev).acknowledged_by == "Pat Smith"  # again: unchanged
    assert [e.detail["acknowledged_by"] for e in w.audit("e911_notice.acknowledged")] == ["Pat Smith"]
    services.suspend_device(w.env, dev)
    assert w.directory.snapshot.devices[dev].location_forwarding is False
    services.resume_device(w.env, dev)  # resuming is not a new activation: the notice still holds
    assert w.directory.snapshot.devices[dev].location_forwarding is True
    assert len(notices.list_notices(w.s, device_id=dev)) == 1
    same_as_reload(w)


def test_no_notice_without_emergency_calling_and_none_to_acknowledge(w: World) -> None:
    hopper = w.account("grasshopper")
    dev = w.device(hopper, "10")
    services.activate_device(w.env, dev)  # R12 does not apply: no location needed
    assert notices.list_notices(w.s, device_id=dev) == []
    with pytest.raises(Conflict) as err:
        notices.acknowledge_notice(w.env, dev)
    assert err.value.rule_id == "R15"
    with pytest.raises(NotFound):
        notices.acknowledge_notice(w.env, 999_999)


# --- R11 ----------------------------------------------------------------------------------------------

def test_outages_show_on_the_location_entry(w: World) -> None:
    acc = w.account()
    place = w.location(acc)
    assert place.id is not None
    power = outages.start_outage(w.env, place.id, "power", "breaker tripped")
    net = outages.start_outage(w.env, place.id, "internet")
    with pytest.raises(Conflict) as err:
        outages.start_outage(w.env, place.id, "power")
    assert err.value.rule_id == "R11" and err.value.extra == {"outage_id": power.id}
    with pytest.raises(Invalid):
        outages.start_outage(w.env, place.id, "flood")
    entry = w.directory.snapshot.locations[place.id]
    assert (entry.outage, entry.outages) == ("power", ("power", "internet"))
    assert power.id is not None and net.id is not None
    outages.end_outage(w.env, power.id)
    assert w.directory.snapshot.locations[place.id].outage == "internet"
    with pytest.raises(Conflict):
        outages.end_outage(w.env, power.id)
    outages.end_outage(w.env, net.id)
    assert w.directory.snapshot.locations[place.id].outage is None
    assert [o.id for o in outages.list_outages(w.s, location_id=place.id, active=False)] == [power.id, net.id]
    assert [e.detail["kind"] for e in w.audit("outage.started")] == ["power", "internet"]
    same_as_reload(w)


def test_account_settings_and_suspension_reach_the_snapshot(w: World) -> None:
    acc = w.account()
    entry = w.directory.snapshot.accounts[acc]
    assert (entry.stale_policy, entry.notification_url) == ("use_last", None)
    account_e911.update_e911_settings(w.env, acc, {"stale_policy": "national_centre",
                                                   "notification_url": "http://127.0.0.1:9/hook"})
    entry = w.directory.snapshot.accounts[acc]
    assert (entry.stale_policy, entry.notification_url) == ("national_centre", "http://127.0.0.1:9/hook")
    with pytest.raises(Invalid):
        account_e911.update_e911_settings(w.env, acc, {"stale_policy": "guess"})
    account_e911.suspend_account(w.env, acc)
    assert w.directory.snapshot.accounts[acc].status == "suspended"
    account_e911.suspend_account(w.env, acc)  # idempotent
    account_e911.resume_account(w.env, acc)
    assert w.directory.snapshot.accounts[acc].status == "active"
    account_e911.resume_account(w.env, acc)  # idempotent too
    assert [e.action for e in w.audit("account.suspended")] == ["account.suspended"]
    assert [e.detail["rule_id"] for e in w.audit("account.resumed")] == ["R11"]


# --- R13 moves through the gateway's store ---------------------------------------------------------

def test_fixed_phone_move_is_flagged_stale_and_a_new_location_clears_it(w: World) -> None:
    acc = w.account()
    place, other = w.location(acc), w.location(acc, flr="9", room="901")
    assert place.id is not None and other.id is not None
    desk = w.active(acc, "10", place.id, profile="yealink-t54w", mac="001565000077")
    first = w.register(desk, "192.0.2.10", "192.0.2.10")
    assert (first.status, first.stale) == ("first", False)
    assert w.directory.snapshot.devices[desk].last_fingerprint == NetworkFingerprint("192.0.2.0/24", "192.0.2.10")
    assert w.register(desk, "192.0.2.77", "192.0.2.10").status == "same"  # same /24, same Contact host
    moved = w.register(desk, "198.51.100.4", "198.51.100.4")
    assert (moved.status, moved.stale, moved.prompt_id) == ("moved", True, None)  # fixed: no prompt
    assert "192.0.2.0/24 → 198.51.100.0/24" in moved.reason and "R13" in moved.reason
    entry = w.directory.snapshot.devices[desk]
    assert entry.location_stale and entry.stale_reason == moved.reason
    [audit_row] = w.audit("device.location_stale")
    assert audit_row.detail["to"] == {"subnet": "198.51.100.0/24", "contact_host": "198.51.100.4"}
    assert device_e911.list_prompts(w.s, desk) == []
    services.bind_location(w.env, desk, other.id)  # the customer reports the new place
    entry = w.directory.snapshot.devices[desk]
    assert not entry.location_stale and entry.last_fingerprint is None and entry.location_id == other.id
    assert w.register(desk, "198.51.100.4", "198.51.100.4").status == "first"  # a fresh baseline
    same_as_reload(w)


def test_softphone_move_prompts_its_user_who_confirms(w: World) -> None:
    acc = w.account()
    place = w.location(acc)
    assert place.id is not None
    soft = w.active(acc, "10", place.id)
    w.register(soft, "10.1.2.3", "10.1.2.3")
    one = w.register(soft, "10.9.9.9", "10.9.9.9")
    two = w.register(soft, "172.16.0.5", "laptop.local")
    assert one.prompt_id is not None and two.prompt_id is not None
    prompts = device_e911.list_prompts(w.s, soft)
    assert [(p.id, p.status) for p in prompts] == [(one.prompt_id, "superseded"), (two.prompt_id, "open")]
    assert prompts[1].previous_fingerprint == {"subnet": "10.9.9.0/24", "contact_host": "10.9.9.9"}
    assert prompts[1].location_id == place.id
    assert [c.kind for c in w.published if c.kind.startswith("device.location_prompted")] == [
        "device.location_prompted"] * 2
    with pytest.raises(Conflict):
        device_e911.confirm_prompt(w.env, soft, one.prompt_id)
    with pytest.raises(NotFound):
        device_e911.confirm_prompt(w.env, soft, 999_999)
    confirmed = device_e911.confirm_prompt(w.env, soft, two.prompt_id)
    assert (confirmed.status, confirmed.resolved_by) == ("confirmed", "tester")
    entry = w.directory.snapshot.devices[soft]
    assert not entry.location_stale
    assert entry.last_fingerprint == NetworkFingerprint("172.16.0.0/24", "laptop.local")  # the new baseline
    actions = [e.action for e in w.s.exec(select(AuditEvent).where(col(AuditEvent.action).startswith("location_prompt")))]
    assert actions == ["location_prompt.created", "location_prompt.superseded", "location_prompt.created",
                       "location_prompt.confirmed"]
    same_as_reload(w)


def test_registration_batches_tolerate_unknown_old_and_bad_events(w: World) -> None:
    acc = w.account()
    place = w.location(acc)
    assert place.id is not None
    soft = w.active(acc, "10", place.id)
    t0 = w.clock.advance(10)
    fp = fingerprint("10.0.0.1", "10.0.0.1").as_dict()
    outcomes = w.store.record_registrations([
        {"device_id": soft, "fingerprint": fp, "at": t0},
        {"device_id": 424242, "fingerprint": fp, "at": t0},
        {"device_id": soft, "fingerprint": fingerprint("10.5.0.1", "10.5.0.1").as_dict(), "at": t0 - timedelta(5)},
    ])
    assert [o.status for o in outcomes] == ["first", "unknown_device", "ignored"]
    with pytest.raises(ValueError):  # pydantic: naive time, missing fingerprint → nothing of the batch written
        w.store.record_registrations([{"device_id": soft, "fingerprint": fp, "at": t0.replace(tzinfo=None)}])
    with pytest.raises(ValueError):
        w.store.record_registrations([{"device_id": soft, "at": t0}])
    assert w.store.record_registrations([]) == []
    state = w.s.get(DeviceE911, soft)
    assert state is not None and state.last_fingerprint == fp


# --- emergency call and PSAP records ------------------------------------------------------------------

def call_record(acc: int, dev: int, **kw: Any) -> dict[str, Any]:
    return {"call_id": "c-1@gw", "account_id": acc, "device_id": dev, "caller": "sip:201@lab", "dialled": "911",
            "service_urn": "urn:service:sos", "route_kind": "psap", "code": "forwarding_on", "rule_id": "R15",
            "reason": "Location and callback forwarded automatically (R15)", "with_location": True,
            "callback": "+15125550100", "pidf": b"<presence/>", "content_id": "loc-1@gw", **kw}


def test_emergency_calls_are_stored_once_moved_on_and_audited_with_the_pidf(w: World) -> None:
    acc = w.account()
    place = w.location(acc)
    assert place.id is not None
    dev = w.active(acc, "10", place.id)
    t0 = w.clock()
    assert w.store.record_emergency_calls([call_record(acc, dev, started_at=t0)]) == 1
    w.store.record_emergency_calls([call_record(acc, dev, started_at=t0, answered_at=t0 + timedelta(seconds=2),
                                                ended_at=t0 + timedelta(seconds=30), sip_status=200)])
    w.store.record_emergency_calls([call_record(acc, dev, call_id="c-2@gw", route_kind="refuse", code="site_power_outage",
                                                rule_id="R11", sip_status=503, with_location=False, pidf=None,
                                                reason="Power outage at device site: emergency calling unavailable (R11)",
                                                started_at=t0 + timedelta(minutes=1))])
    rows = list_emergency_calls(w.s, account_id=acc)
    assert [(c.call_id, c.route_kind) for c, _ in rows] == [("c-2@gw", "refuse"), ("c-1@gw", "psap")]
    first = rows[1][0]
    assert (first.pidf, first.sip_status, first.answered_at, first.ended_at) == (
        "<presence/>", 200, t0 + timedelta(seconds=2), t0 + timedelta(seconds=30))
    routed, refused = w.audit("emergency_call.routed"), w.audit("emergency_call.refused")
    assert [e.detail["pidf"] for e in routed] == ["<presence/>"]  # the first record only, PIDF-LO included
    assert [(e.detail["rule_id"], e.detail["sip_status"]) for e in refused] == [("R11", 503)]
    with pytest.raises(ValueError):
        w.store.record_emergency_calls([call_record(acc, dev, route_kind="somewhere", started_at=t0)])


def test_psap_records_upsert_by_call_id_and_join_the_emergency_call(w: World) -> None:
    acc = w.account()
    t0 = w.clock()
    base = {"id": 1, "call_id": "c-9@gw", "role": "emergency", "verdict": "pass", "failed_checks": [],
            "received_at": t0.isoformat(), "state": "answered", "status": 200, "device_id": "urn:voiplab:device:5",
            "checks": [{"name": "location_matches", "passed": True, "detail": "", "counts": True}],
            "pidf": "<presence/>", "unknown_future_key": 1}
    assert w.store.record_psap_calls([base, {**base, "state": "ended", "ended_by": "bye"}]) == 2
    [stored] = list_psap_calls(w.s)
    assert stored.state == "ended" and stored.data["ended_by"] == "bye" and stored.data["unknown_future_key"] == 1
    w.store.record_emergency_calls([call_record(acc, 5, call_id="c-9@gw", started_at=t0)])
    [(call, psap)] = list_emergency_calls(w.s, call_id="c-9@gw")
    assert psap is not None and psap.verdict == "pass" and call.device_id == 5
    assert list_psap_calls(w.s, verdict="fail") == []


# --- the snapshot as the gateway and the PSAP read it ----------------------------------------------------

def test_registered_location_lookup_by_mac_and_device_urn(w: World) -> None:
    acc = w.account()
    place = w.location(acc, bld="North Tower")
    assert place.id is not None
    desk = w.active(acc, "10", place.id, profile="yealink-t54w", mac="001565000099")
    soft = w.active(acc, "11", place.id)
    snap = w.directory.snapshot
    expected, _ = check({**AUSTIN, "bld": "North Tower"})
    want = {**expected.elements(), "callback_number": "+15125550100"}
    assert snap.registered_location(device_uri(desk, "00:15:65:00:00:99")) == want
    assert snap.registered_location(device_uri(soft)) == want
    assert snap.registered_location("urn:voiplab:device:987654") is None
    assert snap.registered_location("tel:+15125550100") is None
    assert snap.devices_by_location[place.id] == (desk, soft)
    assert snap.device_by_mac["001565000099"] == desk
    services.retire_device(w.env, desk)  # the MAC is released
    assert "001565000099" not in w.directory.snapshot.device_by_mac
    assert w.directory.snapshot.devices[desk].state == "retired"
    same_as_reload(w)


def test_prompt_rows_and_state_are_per_device(w: World) -> None:
    acc = w.account()
    place = w.location(acc)
    assert place.id is not None
    a, b = w.active(acc, "10", place.id), w.active(acc, "11", place.id)
    w.register(a, "10.0.0.1", "10.0.0.1")
    w.register(b, "10.0.0.2", "10.0.0.2")
    w.register(a, "10.7.0.1", "10.7.0.1")
    assert w.directory.snapshot.devices[a].location_stale and not w.directory.snapshot.devices[b].location_stale
    assert len(w.s.exec(select(LocationPrompt).where(LocationPrompt.device_id == b)).all()) == 0
    status = device_e911.device_status(w.s, a)
    assert status["location_stale"] and status["open_prompts"] == 1 and status["nomadic"] is True


def test_a_bulk_import_reaches_the_device_map_in_one_change(w: World) -> None:
    acc = w.account()
    users = [services.create_user(w.env, acc, UserCreate(named_user_id=f"kim.lee.{i}@acme.example",
                                                         display_name=f"Kim {i}", extension=str(500 + i)))
             for i in range(3)]
    rows = [DeviceCreate(hardware_profile="yealink-t54w", name=f"desk {i}", mac=f"0015650012{i:02d}",
                         lines=[LineSpec(user_id=u.id or 0)]) for i, u in enumerate(users)]
    result = import_devices(w.env, acc, rows, all_or_nothing=True)
    ids = [c.device_id for c in result.created]
    snap = w.directory.snapshot
    assert [snap.devices[i].mac for i in ids] == ["001565001200", "001565001201", "001565001202"]
    assert all(snap.devices[i].state == "new" and not snap.devices[i].location_forwarding for i in ids)
    assert [c.kind for c in w.published if c.account_id == acc][-1] == "account.devices_imported"
    same_as_reload(w)


def test_two_moves_in_one_batch_supersede_within_the_batch(w: World) -> None:
    acc = w.account()
    place = w.location(acc)
    assert place.id is not None
    soft = w.active(acc, "10", place.id)
    w.register(soft, "10.0.0.1", "10.0.0.1")
    t = w.clock.advance(5)
    one, two = w.store.record_registrations([
        {"device_id": soft, "fingerprint": fingerprint("10.1.0.1", "10.1.0.1").as_dict(), "at": t},
        {"device_id": soft, "fingerprint": fingerprint("10.2.0.1", "10.2.0.1").as_dict(), "at": t + timedelta(1)}])
    assert one.prompt_id is not None and two.prompt_id is not None and one.prompt_id != two.prompt_id
    prompts = {p.id: p.status for p in device_e911.list_prompts(w.s, soft)}
    assert prompts == {one.prompt_id: "superseded", two.prompt_id: "open"}
    trail = [(e.action, e.detail.get("prompt_id")) for e in w.s.exec(
        select(AuditEvent).where(AuditEvent.entity_id == soft, col(AuditEvent.action).startswith("location_prompt"))
        .order_by(col(AuditEvent.id)))]
    assert trail == [("location_prompt.created", one.prompt_id), ("location_prompt.superseded", one.prompt_id),
                     ("location_prompt.created", two.prompt_id)]
