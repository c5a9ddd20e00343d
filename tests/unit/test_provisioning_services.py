"""Domain services on a real SQLite file: lifecycle, conflicts, audit, events after commit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from hardware_profiles.catalog import load_catalog
from provisioning import services
from provisioning.audit import REDACTED, redact
from provisioning.credentials import ha1_digests
from provisioning.db import init_db, make_engine, normalise_url
from provisioning.directory import Directory
from provisioning.errors import Conflict, Invalid, NotFound
from provisioning.events import Change, ChangeBus
from provisioning.models import Account, AuditEvent, Device, User
from provisioning.schemas import AccountCreate, DeviceCreate, LineSpec, LocationCreate, UserCreate
from provisioning.services import ServiceEnv
from provisioning.services.devices import TRANSITIONS
from tests.conftest_db import ManualClock, sqlite_url  # noqa: F401

DOMAIN = "unit.voiplab.test"


@dataclass
class World:
    env: ServiceEnv
    clock: ManualClock
    published: list[Change] = field(default_factory=list)

    @property
    def session(self) -> Session:
        return self.env.session


@pytest.fixture
def world(sqlite_url: str) -> Iterator[World]:  # noqa: F811
    engine = make_engine(sqlite_url)
    init_db(engine)
    bus = ChangeBus()
    clock = ManualClock()
    with Session(engine, expire_on_commit=False) as session:
        w = World(ServiceEnv(session=session, now=clock, sip_domain=DOMAIN, catalog=load_catalog(),
                             bus=bus, actor="tester"), clock)
        bus.subscribe(w.published.append)
        yield w
    engine.dispose()


def _account(w: World) -> int:
    acc = services.create_account(w.env, AccountCreate(name="Acme", plan="connect", region="EU"))
    assert acc.id is not None
    return acc.id


def _user(w: World, account_id: int, ext: str) -> int:
    u = services.create_user(w.env, account_id, UserCreate(
        named_user_id=f"pat.smith.{ext}.{account_id}@acme.example", display_name=f"User {ext}", extension=ext))
    assert u.id is not None
    return u.id


def _softphone(w: World, account_id: int, user_id: int) -> services.ProvisionedDevice:
    return services.create_device(w.env, account_id, DeviceCreate(
        hardware_profile="softphone-desktop", name="sp", lines=[LineSpec(user_id=user_id)]))


def test_engine_url_and_sqlite_settings(sqlite_url: str) -> None:  # noqa: F811
    assert normalise_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("sqlite:///x.db") == "sqlite:///x.db"
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() >= 1000
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    engine.dispose()


def test_naive_datetimes_are_refused(world: World) -> None:
    world.session.add(Account(name="x", plan="connect", region="US", created_at=datetime(2025, 1, 1)))
    with pytest.raises(Exception, match="naive datetime"):
        world.session.commit()
    world.session.rollback()


def test_timestamps_come_from_the_injected_clock(world: World) -> None:
    t0 = world.clock()
    acc = _account(world)
    t1 = world.clock.advance(3600)
    uid = _user(world, acc, "100")
    assert services.get_account(world.session, acc).created_at == t0
    assert services.get_user(world.session, uid).created_at == t1
    events = world.session.exec(select(AuditEvent).order_by(AuditEvent.id)).all()  # type: ignore[arg-type]
    assert [e.at for e in events] == [t0, t1]
    assert all(e.actor == "tester" for e in events)


def test_plan_and_region_are_checked_by_field(world: World) -> None:
    with pytest.raises(Invalid) as err:
        services.create_account(world.env, AccountCreate(name="a", plan="platinum", region="US"))
    assert err.value.field == ("plan",)
    with pytest.raises(Invalid) as err:
        services.create_account(world.env, AccountCreate(name="a", plan="connect", region="NL"))
    assert err.value.field == ("region",)
    assert world.published == []
    assert world.session.exec(select(Account)).all() == []


def test_failed_changes_publish_nothing_and_write_nothing(world: World) -> None:
    acc = _account(world)
    _user(world, acc, "200")
    before = list(world.published)
    with pytest.raises(Conflict):
        services.create_user(world.env, acc, UserCreate(named_user_id="other@acme.example",
                                                        display_name="O", extension="200"))
    with pytest.raises(NotFound):
        services.create_user(world.env, 424242, UserCreate(named_user_id="x@acme.example",
                                                           display_name="O", extension="201"))
    assert world.published == before
    assert len(world.session.exec(select(User)).all()) == 1
    assert len(world.session.exec(select(AuditEvent)).all()) == 2


def test_unique_constraint_race_becomes_conflict(world: World) -> None:
    """If two requests pass the pre-checks at once, the database constraint decides."""
    acc = _account(world)
    _user(world, acc, "300")
    world.session.add(User(account_id=acc, named_user_id="racer@acme.example", display_name="R",
                           extension="300", created_at=world.clock()))
    with pytest.raises(Conflict, match="extension already used"):
        world.env.commit(Change("user.created", 0, acc))
    assert [c.kind for c in world.published] == ["account.created", "user.created"]


def test_lifecycle_table_and_r12(world: World) -> None:
    assert TRANSITIONS[("new", "bind_location")] == "located"
    assert ("retired", "activate") not in TRANSITIONS and ("retired", "resume") not in TRANSITIONS
    acc = _account(world)
    dev = _softphone(world, acc, _user(world, acc, "400")).device
    assert dev.id is not None
    with pytest.raises(Conflict) as err:
        services.activate_device(world.env, dev.id)
    assert err.value.rule_id == "R12"
    assert err.value.message == services.R12_MESSAGE
    place = services.create_location(world.env, acc, LocationCreate(
        country="DE", a3="Berlin", rd="Unter den Linden", hno="77", pc="10117", callback_number="+493012345678"))
    assert place.id is not None
    assert services.bind_location(world.env, dev.id, place.id).state == "located"
    assert services.activate_device(world.env, dev.id).state == "active"
    dev.state = "suspended"
    world.session.add(dev)
    world.session.commit()
    with pytest.raises(Conflict, match="is suspended"):
        services.activate_device(world.env, dev.id)
    dev.state = "retired"
    world.session.add(dev)
    world.session.commit()
    for action in (services.activate_device, services.suspend_device, services.resume_device):
        with pytest.raises(Conflict, match="is retired"):
            action(world.env, dev.id)
    with pytest.raises(Conflict, match="is retired"):
        services.bind_location(world.env, dev.id, place.id)


def test_rotation_replaces_ha1_and_reaches_the_directory(world: World) -> None:
    engine = world.session.get_bind()
    directory = Directory(engine)  # type: ignore[arg-type]
    directory.load_all()
    assert world.env.bus is not None
    world.env.bus.subscribe(directory.apply)
    acc = _account(world)
    made = _softphone(world, acc, _user(world, acc, "500"))
    line = made.lines[0]
    assert line.id is not None
    old_pw = made.passwords[line.id]
    old_entry = directory.snapshot.lines[line.sip_username]
    assert old_entry.ha1_sha256 == ha1_digests(line.sip_username, DOMAIN, old_pw).sha256
    rotated, new_pw = services.rotate_line_password(world.env, line.id)
    assert new_pw != old_pw and rotated.sip_username == line.sip_username
    entry = directory.snapshot.lines[line.sip_username]
    assert entry.ha1_md5 == ha1_digests(line.sip_username, DOMAIN, new_pw).md5
    assert entry.ha1_md5 != old_entry.ha1_md5
    audit = world.session.exec(select(AuditEvent).where(AuditEvent.action == "line.password_rotated")).one()
    assert new_pw not in json.dumps(audit.detail) and old_pw not in json.dumps(audit.detail)


def test_redaction_is_recursive_by_key() -> None:
    detail = {"name": "x", "sip_password": "p", "lines": [{"ha1_md5": "h", "user_id": 1}],
              "nested": {"api_token": "t", "Authorization": "Bearer t", "ok": [1, 2]}}
    assert redact(detail) == {"name": "x", "sip_password": REDACTED,
                              "lines": [{"ha1_md5": REDACTED, "user_id": 1}],
                              "nested": {"api_token": REDACTED, "Authorization": REDACTED, "ok": [1, 2]}}


def test_change_round_trips_as_json_and_rejects_junk() -> None:
    change = Change("device.activated", 7, 3)
    assert Change.from_json(change.to_json()) == change
    assert json.loads(change.to_json()) == {"kind": "device.activated", "entity_id": 7, "account_id": 3}
    assert change.entity == "device"
    for bad in ("device", "printer.created", ""):
        with pytest.raises(ValueError):
            Change(bad, 1, 1)


def test_bus_isolates_failing_subscribers_and_unsubscribes() -> None:
    bus = ChangeBus()
    seen: list[str] = []

    def broken(_c: Change) -> None:
        raise RuntimeError("boom")

    bus.subscribe(broken)
    stop = bus.subscribe(lambda c: seen.append(c.kind))
    bus.publish(Change("user.created", 1, 1))
    stop()
    bus.publish(Change("user.created", 2, 1))
    assert seen == ["user.created"]


def test_bus_hands_a_batch_to_batch_subscribers_and_each_change_to_the_others() -> None:
    bus = ChangeBus()
    batches: list[list[str]] = []
    single: list[str] = []

    def broken(_changes: object) -> None:
        raise RuntimeError("boom")

    def fails_on_the_first(c: Change) -> None:
        if c.entity_id == 1:
            raise RuntimeError("boom")
        single.append(f"after a failure: {c.entity_id}")

    bus.subscribe_many(broken)  # a failing batch subscriber stops nobody
    bus.subscribe_many(lambda cs: batches.append([c.kind for c in cs]))
    bus.subscribe(fails_on_the_first)  # nor does one change failing stop the rest of the batch
    bus.subscribe(lambda c: single.append(c.kind))
    batch = [Change("device.fingerprint_recorded", 1, 1), Change("device.location_stale", 2, 1)]
    bus.publish_many(batch)
    bus.publish_many([])
    bus.publish(Change("user.created", 3, 1))  # a batch of one
    assert batches == [["device.fingerprint_recorded", "device.location_stale"], ["user.created"]]
    assert single == ["after a failure: 2", "device.fingerprint_recorded", "device.location_stale",
                      "after a failure: 3", "user.created"]


def test_device_rows_reference_profile_kind(world: World) -> None:
    acc = _account(world)
    uid = _user(world, acc, "600")
    made = services.create_device(world.env, acc, DeviceCreate(
        hardware_profile="yealink-t54w", name="desk", mac="00-15-65-AA-BB-CC", lines=[LineSpec(user_id=uid)]))
    stored = world.session.get(Device, made.device.id)
    assert stored is not None and stored.kind == "desk_phone" and stored.mac == "001565aabbcc"
    assert [d.device.id for d in services.list_devices(world.session, acc)] == [made.device.id]
