"""Directory snapshot: incremental updates equal a full reload, and a change
among 10k devices touches only its own rows and shards."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event, insert, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from e911.moves import fingerprint
from hardware_profiles.catalog import load_catalog
from provisioning import services
from provisioning.db import init_db, make_engine
from provisioning.directory import Directory, DirectorySnapshot, LineEntry
from provisioning.e911_store import E911Store
from provisioning.events import Change, ChangeBus
from provisioning.models import Account, Device, Line, Location, User
from provisioning.schemas import AccountCreate, DeviceCreate, LineSpec, LocationCreate, UserCreate
from provisioning.services import ServiceEnv
from tests.conftest_db import ManualClock, sqlite_url  # noqa: F401

DOMAIN = "dir.voiplab.test"
MAPS = ("accounts", "users", "user_by_extension", "user_counts", "lines", "lines_by_id",
        "by_user", "by_device")


def same(a: DirectorySnapshot, b: DirectorySnapshot) -> None:
    for name in MAPS:
        assert dict(getattr(a, name)) == dict(getattr(b, name)), name


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[Engine]:  # noqa: F811
    e = make_engine(sqlite_url)
    init_db(e)
    yield e
    e.dispose()


def test_incremental_equals_full_reload_through_a_story(engine: Engine) -> None:
    bus = ChangeBus()
    directory = Directory(engine)
    directory.load_all()
    bus.subscribe(directory.apply)
    clock = ManualClock()
    with Session(engine, expire_on_commit=False) as s:
        env = ServiceEnv(session=s, now=clock, sip_domain=DOMAIN, catalog=load_catalog(), bus=bus)
        acc = services.create_account(env, AccountCreate(name="A", plan="connect", region="UK")).id
        assert acc is not None
        u1 = services.create_user(env, acc, UserCreate(named_user_id="ann.a@x.example",
                                                       display_name="Ann", extension="10")).id
        u2 = services.create_user(env, acc, UserCreate(named_user_id="bob.b@x.example",
                                                       display_name="Bob", extension="11")).id
        assert u1 is not None and u2 is not None
        desk = services.create_device(env, acc, DeviceCreate(
            hardware_profile="yealink-t54w", name="desk", mac="001565000010",
            lines=[LineSpec(user_id=u1), LineSpec(user_id=u2)]))
        soft = services.create_device(env, acc, DeviceCreate(
            hardware_profile="softphone-mobile", name="phone", lines=[LineSpec(user_id=u1)]))
        same(directory.snapshot, Directory(engine).load_all())
        soft_line = soft.lines[0]
        assert soft_line.id is not None and soft.device.id is not None
        assert len({soft_line.id, soft.device.id, u1}) == 3  # distinct ids catch column mix-ups
        assert directory.snapshot.lines[soft_line.sip_username] == LineEntry(
            sip_username=soft_line.sip_username, realm=DOMAIN, ha1_md5=soft_line.ha1_md5,
            ha1_sha256=soft_line.ha1_sha256, line_id=soft_line.id, line_index=1,
            device_id=soft.device.id, device_state="new", device_kind="softphone", location_id=None,
            user_id=u1, extension="10", display_name="Ann", named_user_id="ann.a@x.example",
            account_id=acc, hardware_profile="softphone-mobile", port=None, purpose="voice",
            credential_generation=1, licence_id=None, licence_kind=None)

        # Ann rings on both devices; lines ordered by id
        ann = directory.snapshot.extension_lines(acc, "10")
        assert [e.device_id for e in ann] == [desk.device.id, soft.device.id]
        assert len(directory.snapshot.by_device[desk.device.id]) == 2

        # a user edit (done directly: no edit endpoint yet) moves every line of that user
        user = s.get(User, u1)
        assert user is not None
        user.extension, user.display_name = "12", "Ann Again"
        s.add(user)
        s.commit()
        directory.apply(Change("user.updated", u1, acc))
        snap = directory.snapshot
        assert snap.extension_lines(acc, "10") == () and (acc, "10") not in snap.user_by_extension
        assert [e.display_name for e in snap.extension_lines(acc, "12")] == ["Ann Again"] * 2
        same(snap, Directory(engine).load_all())

        place = services.create_location(env, acc, LocationCreate(
            country="GB", a3="London", rd="Downing Street", hno="10", pc="SW1A 2AA",
            callback_number="+442079460000"))
        assert place.id is not None and desk.device.id is not None
        services.bind_location(env, desk.device.id, place.id)
        services.activate_device(env, desk.device.id)
        assert {e.device_state for e in directory.snapshot.by_device[desk.device.id]} == {"active"}
        assert {e.device_state for e in directory.snapshot.by_device[soft.device.id]} == {"new"}

        # removals (no delete endpoint yet) fold in too
        s.delete(s.get(Line, soft.lines[0].id))
        s.commit()
        directory.apply(Change("device.updated", soft.device.id or 0, acc))
        assert soft.device.id not in directory.snapshot.by_device
        assert soft.lines[0].sip_username not in directory.snapshot.lines
        same(directory.snapshot, Directory(engine).load_all())



def test_user_counts_and_shared_strings_follow_changes(engine: Engine) -> None:
    """`user_counts` (the R26/R31 fair-use basis) is kept per account as users come and go, and a
    line holds its user's own strings rather than copies (issue #6: ~250 B a line at 100,000)."""
    bus = ChangeBus()
    directory = Directory(engine)
    directory.load_all()
    bus.subscribe(directory.apply)
    with Session(engine, expire_on_commit=False) as s:
        env = ServiceEnv(session=s, now=ManualClock(), sip_domain=DOMAIN, catalog=load_catalog(), bus=bus)
        a = services.create_account(env, AccountCreate(name="A", plan="connect", region="UK")).id
        b = services.create_account(env, AccountCreate(name="B", plan="connect", region="UK")).id
        assert a is not None and b is not None
        ids = [services.create_user(env, acc, UserCreate(named_user_id=f"u{k}.{acc}@x.example",
                                                         display_name=f"U {k}", extension=f"2{k}")).id
               for acc, k in ((a, 0), (a, 1), (a, 2), (b, 0))]
        assert ids[0] is not None
        snap = directory.snapshot
        assert (snap.user_count(a), snap.user_count(b), snap.user_count(999)) == (3, 1, 0)
        dev = services.create_device(env, a, DeviceCreate(hardware_profile="softphone-mobile", name="p",
                                                          lines=[LineSpec(user_id=ids[0])]))
        line = directory.snapshot.lines[dev.lines[0].sip_username]
        user = directory.snapshot.users[ids[0]]
        assert line.extension is user.extension and line.display_name is user.display_name
        assert line.named_user_id is user.named_user_id and line.user_id is user.id

        s.delete(s.get(User, ids[3]))
        s.commit()
        directory.apply(Change("user.deleted", ids[3] or 0, b))
        assert (directory.snapshot.user_count(a), directory.snapshot.user_count(b)) == (3, 0)
        assert b not in directory.snapshot.user_counts
        same(directory.snapshot, Directory(engine).load_all())

def _bulk_load(engine: Engine, n: int, clock: ManualClock) -> None:
    """10k users/devices/lines via bulk inserts (fast set-up, not via services)."""
    now = clock()
    with Session(engine) as s:
        s.execute(insert(Account), [{"id": 1, "name": "big", "plan": "connect", "region": "US",
                                     "status": "active", "created_at": now}])
        s.execute(insert(Location), [{"id": 1, "account_id": 1, "country": "US",
                                      "callback_number": "+15550100", "created_at": now}])
        s.execute(insert(User), [{"id": i, "account_id": 1, "named_user_id": f"u{i}@big.example",
                                  "display_name": f"U{i}", "extension": str(10000 + i),
                                  "created_at": now} for i in range(1, n + 1)])
        s.execute(insert(Device), [{"id": i, "account_id": 1, "hardware_profile": "softphone-desktop",
                                    "name": f"d{i}", "kind": "softphone", "state": "located",
                                    "location_id": 1, "created_at": now} for i in range(1, n + 1)])
        s.execute(insert(Line), [{"id": i, "device_id": i, "user_id": i, "index": 1,
                                  "sip_username": f"{10000 + i}-u{i}", "realm": DOMAIN,
                                  "ha1_md5": "0" * 32, "ha1_sha256": "0" * 64, "created_at": now,
                                  "password_set_at": now} for i in range(1, n + 1)])
        s.commit()


def test_one_change_among_10k_devices_reads_and_copies_only_its_rows(engine: Engine) -> None:
    n = 10_000
    clock = ManualClock()
    _bulk_load(engine, n, clock)
    directory = Directory(engine)
    before = directory.load_all()
    assert len(before.lines) == n and len(before.user_by_extension) == n

    with Session(engine) as s:
        dev = s.get(Device, 4242)
        assert dev is not None
        dev.state = "active"
        s.add(dev)
        s.commit()

    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "after_cursor_execute", count)
    try:
        after = directory.apply(Change("device.activated", 4242, 1))
    finally:
        event.remove(engine, "after_cursor_execute", count)

    # one statement for the device's lines, one for its E911 entry (device + fingerprint + notices)
    assert len(statements) == 2 and "WHERE line.device_id" in statements[0]
    assert "WHERE device.id" in statements[1]
    assert after.lines["14242-u4242"].device_state == "active"
    assert after.devices[4242].state == "active" and before.devices[4242].state == "located"
    assert before.lines["14242-u4242"].device_state == "located"  # old snapshot untouched
    assert after.version == before.version + 1
    for name in ("lines", "lines_by_id", "by_user", "by_device"):
        shards = len(getattr(after, name)._shards)
        assert getattr(after, name).shares_shards_with(getattr(before, name)) >= shards - 1, name
    assert after.devices.shares_shards_with(before.devices) >= len(after.devices._shards) - 1
    for name in ("accounts", "users", "user_by_extension", "locations", "devices_by_location", "device_by_mac"):
        assert getattr(after, name) is getattr(before, name), name


def test_a_batch_of_first_registrations_refreshes_devices_in_one_query(engine: Engine) -> None:
    """R13 at start-up: 500 devices record their first network fingerprint in one writer batch.
    The directory folds the batch with one device query (not a session, a device re-read and a
    line re-read per device), leaves every line map as it was, and ends equal to a reload."""
    n = 10_000
    clock = ManualClock()
    _bulk_load(engine, n, clock)
    with Session(engine) as s:
        s.execute(update(Device).values(state="active"))
        s.commit()
    directory = Directory(engine)
    before = directory.load_all()
    bus = ChangeBus()
    per_change: list[Change] = []
    batches: list[Sequence[Change]] = []
    bus.subscribe_many(directory.apply_many)
    bus.subscribe(per_change.append)
    bus.subscribe_many(batches.append)
    store = E911Store(engine, bus=bus)
    at = datetime(2026, 11, 29, 12, tzinfo=UTC)
    events = [{"device_id": d, "fingerprint": fingerprint(f"10.{d // 250}.{d % 250}.9", "10.0.0.1").as_dict(),
               "at": at} for d in range(1, 501)]

    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "JOIN device_e911" in statement:  # the directory's device read (device + its E911 row)
            statements.append(statement)

    event.listen(engine, "after_cursor_execute", count)
    try:
        outcomes = store.record_registrations(events)
    finally:
        event.remove(engine, "after_cursor_execute", count)

    assert [o.status for o in outcomes] == ["first"] * 500
    assert len(batches) == 1 and len(batches[0]) == 500 and len(per_change) == 500  # both forms
    assert len(statements) == 1  # the directory's one re-read of the 500 devices (the store reads apart)
    after = directory.snapshot
    assert after.devices[7].last_fingerprint == fingerprint("10.0.7.9", "10.0.0.1")
    assert after.devices[501].last_fingerprint is None
    for name in ("lines", "lines_by_id", "by_user", "by_device", "users", "accounts"):
        assert getattr(after, name) is getattr(before, name), name  # lines untouched: R13-only changes
    assert after.version == before.version + 500
    fresh = Directory(engine).load_all()
    assert dict(after.devices) == dict(fresh.devices)


def test_a_mixed_batch_folds_in_order(engine: Engine) -> None:
    """A batch with a line-affecting change among R13-only ones still re-reads that device's lines."""
    clock = ManualClock()
    _bulk_load(engine, 20, clock)
    directory = Directory(engine)
    directory.load_all()
    with Session(engine) as s:
        s.execute(update(Device).where(col(Device.id) == 3).values(state="active"))
        s.commit()
    snap = directory.apply_many([Change("device.fingerprint_recorded", 2, 1), Change("device.activated", 3, 1),
                                 Change("device.location_stale", 4, 1)])
    assert snap.lines["10003-u3"].device_state == "active" and snap.devices[3].state == "active"
    assert snap.lines["10002-u2"].device_state == "located"
    same(snap, Directory(engine).load_all())
