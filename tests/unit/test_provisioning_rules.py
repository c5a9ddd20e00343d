"""Named users and licences at their boundaries, on a real SQLite file:
R1/R7 generic IDs, R21 extension limit, R5 flex maximum, R2 reassignment,
R4 concurrent licence data, R12 per plan, and the device lifecycle."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from sqlalchemy import insert
from sqlmodel import Session, select

from hardware_profiles.catalog import load_catalog
from provisioning import services
from provisioning.credentials import ha1_digests
from provisioning.db import init_db, make_engine
from provisioning.directory import Directory
from provisioning.errors import Conflict, Invalid
from provisioning.events import Change, ChangeBus
from provisioning.models import AuditEvent, Device, User
from provisioning.named_users import generic_reason
from provisioning.schemas import (
    AccountCreate,
    DeviceCreate,
    LicenceCreate,
    LineSpec,
    LocationCreate,
    UserCreate,
)
from provisioning.secrets import SecretBox
from provisioning.services import ServiceEnv
from provisioning.services import licences as lic
from tests.conftest_db import ManualClock, sqlite_url  # noqa: F401

DOMAIN = "rules.voiplab.test"


@dataclass
class World:
    env: ServiceEnv
    directory: Directory
    published: list[Change] = field(default_factory=list)

    @property
    def s(self) -> Session:
        return self.env.session

    def account(self, plan: str = "connect", **kw: object) -> int:
        acc = services.create_account(self.env, AccountCreate(name="Acme", plan=plan, region="US", **kw))  # type: ignore[arg-type]
        assert acc.id is not None
        return acc.id

    def user(self, account_id: int, ext: str, named: str | None = None, kind: str = "person") -> int:
        u = services.create_user(self.env, account_id, UserCreate(
            named_user_id=named or f"pat.smith.{ext}.{account_id}@acme.example", display_name=f"Pat {ext}",
            extension=ext, kind=kind))  # type: ignore[arg-type]
        assert u.id is not None
        return u.id

    def softphone(self, account_id: int, user_id: int) -> services.ProvisionedDevice:
        return services.create_device(self.env, account_id, DeviceCreate(
            hardware_profile="softphone-desktop", name="sp", lines=[LineSpec(user_id=user_id)]))


@pytest.fixture
def w(sqlite_url: str) -> Iterator[World]:  # noqa: F811
    engine = make_engine(sqlite_url)
    init_db(engine)
    bus = ChangeBus()
    directory = Directory(engine)
    directory.load_all()
    bus.subscribe(directory.apply)
    with Session(engine, expire_on_commit=False) as session:
        world = World(ServiceEnv(session=session, now=ManualClock(), sip_domain=DOMAIN, catalog=load_catalog(),
                                 bus=bus, actor="tester", secrets=SecretBox.generate()), directory)
        bus.subscribe(world.published.append)
        yield world
    engine.dispose()


# --- R1 / R7 ----------------------------------------------------------------------------------

GENERIC = ["user1@x.example", "trainer@x.example", "admin@x.example", "sales@x.example", "info@x.example",
           "test@x.example", "room@x.example", "user@x.example", "gebruiker1@x.example",
           "sales-team@x.example", "meeting.room.2@x.example", "support_24@x.example", "12345@x.example",
           "Front.Desk@x.example"]
NAMED = ["johan.smeets@goto.example", "jane.sales@x.example", "ann@x.example", "user.jones@x.example",
         "trainer.kim2@x.example", "boardroom.amsterdam@x.example"]


@pytest.mark.parametrize("named", GENERIC)
def test_r1_generic_ids_are_refused_naming_r1(w: World, named: str) -> None:
    acc = w.account()
    with pytest.raises(Invalid) as err:
        w.user(acc, "100", named=named.lower())
    assert err.value.rule == "R1" and err.value.field == ("named_user_id",)
    assert "R1" in err.value.message
    assert w.s.exec(select(User)).all() == []


@pytest.mark.parametrize("named", NAMED)
def test_r1_names_of_people_are_accepted(w: World, named: str) -> None:
    acc = w.account()
    assert generic_reason(named) is None
    assert w.s.get(User, w.user(acc, "100", named=named)) is not None


def test_r7_a_meeting_room_is_a_named_user_under_r1(w: World) -> None:
    acc = w.account()
    with pytest.raises(Invalid) as err:
        w.user(acc, "200", named="room1@x.example", kind="room")
    assert err.value.rule == "R7"
    room = w.s.get(User, w.user(acc, "200", named="boardroom.delft@x.example", kind="room"))
    assert room is not None and room.kind == "room"
    with pytest.raises(Conflict):  # unique platform-wide, rooms included
        w.user(w.account(), "201", named="boardroom.delft@x.example", kind="room")


# --- R21 --------------------------------------------------------------------------------------

def _fill_users(w: World, account_id: int, n: int, start: int = 5000) -> None:
    now = w.env.now()
    w.s.execute(insert(User), [{"account_id": account_id, "named_user_id": f"filler.{i}.{account_id}@x.example",
                                "display_name": "F", "extension": str(i), "kind": "person",
                                "created_at": now} for i in range(start, start + n)])
    w.s.commit()


def test_r21_grasshopper_allows_1000_extensions_not_1001(w: World) -> None:
    acc = w.account("grasshopper")
    _fill_users(w, acc, 998)
    w.user(acc, "100")   # 999
    w.user(acc, "101")   # 1000: the limit itself is allowed
    with pytest.raises(Invalid) as err:
        w.user(acc, "102")  # 1001
    assert (err.value.rule, err.value.issues[0].limit) == ("R21", 1000)
    assert "R21" in err.value.message
    other = w.account("connect")  # Connect has no extension limit
    _fill_users(w, other, 1000)
    w.user(other, "100")


# --- R5 ---------------------------------------------------------------------------------------

def test_r5_flex_maximum_is_seven_times_the_minimum(w: World) -> None:
    acc = w.account("connect", flex_minimum=2)
    _fill_users(w, acc, 13)
    w.user(acc, "100")  # 14 = 7 x 2
    with pytest.raises(Invalid) as err:
        w.user(acc, "101")
    assert (err.value.rule, err.value.issues[0].limit) == ("R5", 14)
    with pytest.raises(Invalid) as err:  # lowering the minimum below the users in use
        services.set_flex_minimum(w.env, acc, 1)
    assert err.value.rule == "R5" and err.value.issues[0].limit == 7
    services.set_flex_minimum(w.env, acc, 3)  # max 21
    w.user(acc, "101")
    services.set_flex_minimum(w.env, acc, None)  # no flex: no maximum
    _fill_users(w, acc, 20, start=6000)
    w.user(acc, "102")


def test_r5_needs_a_plan_with_flex(w: World) -> None:
    with pytest.raises(Invalid) as err:
        w.account("grasshopper", flex_minimum=2)
    assert err.value.rule == "R5"
    acc = w.account("grasshopper")
    with pytest.raises(Invalid):
        services.set_flex_minimum(w.env, acc, 2)


# --- R12 per plan and the lifecycle -----------------------------------------------------------

def test_r12_only_where_the_plan_requires_a_location(w: World) -> None:
    connect = w.account("connect")
    dev = w.softphone(connect, w.user(connect, "10")).device
    with pytest.raises(Conflict) as err:
        services.activate_device(w.env, dev.id)  # type: ignore[arg-type]
    assert err.value.rule_id == "R12"
    hopper = w.account("grasshopper")
    dev2 = w.softphone(hopper, w.user(hopper, "10")).device
    assert services.activate_device(w.env, dev2.id).state == "active"  # type: ignore[arg-type]


def test_suspend_resume_retire_with_audit_and_events(w: World) -> None:
    acc = w.account()
    place = services.create_location(w.env, acc, LocationCreate(
        country="US", a1="TX", a3="Austin", rd="Congress", sts="Ave", hno="100", pc="78701",
        callback_number="+15125550100"))
    made = services.create_device(w.env, acc, DeviceCreate(
        hardware_profile="yealink-t54w", name="desk", mac="001565000001", lines=[LineSpec(user_id=w.user(acc, "10"))]))
    dev_id = made.device.id
    assert dev_id is not None
    assert services.suspend_device(w.env, dev_id).state == "suspended"   # a new device may be suspended
    assert services.resume_device(w.env, dev_id).state == "new"          # never activated: back to new
    services.bind_location(w.env, dev_id, place.id)  # type: ignore[arg-type]
    services.activate_device(w.env, dev_id)
    assert services.suspend_device(w.env, dev_id).state == "suspended"
    assert w.directory.snapshot.by_device[dev_id][0].device_state == "suspended"
    assert services.suspend_device(w.env, dev_id).state == "suspended"   # idempotent, no new audit
    assert services.resume_device(w.env, dev_id).state == "active"
    retired = services.retire_device(w.env, dev_id)
    assert (retired.state, retired.mac, retired.retired_mac) == ("retired", None, "001565000001")
    with pytest.raises(Conflict):
        services.resume_device(w.env, dev_id)
    # the MAC is free again for a replacement phone
    services.create_device(w.env, acc, DeviceCreate(
        hardware_profile="yealink-t54w", name="desk2", mac="00:15:65:00:00:01",
        lines=[LineSpec(user_id=w.user(acc, "11"))]))
    actions = [e.action for e in w.s.exec(select(AuditEvent).where(AuditEvent.entity_id == dev_id,
                                                                   AuditEvent.entity == "device")
                                           .order_by(AuditEvent.id))]  # type: ignore[arg-type]
    assert actions == ["device.created", "device.suspended", "device.resumed", "device.located",
                       "device.activated", "e911_notice.sent", "device.suspended", "device.resumed",
                       "device.retired"]
    kinds = [c.kind for c in w.published if c.entity == "device" and c.entity_id == dev_id]
    assert kinds == [a for a in actions if a != "e911_notice.sent"]  # the notice rides on device.activated


# --- R2 ---------------------------------------------------------------------------------------

def test_r2_reassigning_a_line_ends_the_old_holders_credentials(w: World) -> None:
    acc = w.account()
    ann, bob = w.user(acc, "10"), w.user(acc, "11")
    made = w.softphone(acc, ann)
    line = made.lines[0]
    assert line.id is not None
    old_name, old_pw = line.sip_username, made.passwords[line.id]
    old = w.directory.snapshot.lines[old_name]
    assert old.credential_generation == 1 and old.user_id == ann
    moved, new_pw = services.reassign_line(w.env, line.id, bob)
    assert moved.user_id == bob and moved.sip_username.startswith("11-") and new_pw != old_pw
    snap = w.directory.snapshot
    assert old_name not in snap.lines                      # the old holder's username is gone
    entry = snap.lines[moved.sip_username]
    assert entry.user_id == bob and entry.credential_generation == 2
    assert entry.ha1_md5 == ha1_digests(moved.sip_username, DOMAIN, new_pw).md5
    assert snap.by_user.get(ann, ()) == () and snap.by_user[bob] == (entry,)
    assert [c.kind for c in w.published][-1] == "line.reassigned"
    with pytest.raises(Invalid):
        services.reassign_line(w.env, line.id, bob)        # already Bob's
    with pytest.raises(Invalid):
        services.reassign_line(w.env, line.id, w.user(w.account(), "12"))  # other account


def test_rotation_bumps_the_generation(w: World) -> None:
    acc = w.account()
    line = w.softphone(acc, w.user(acc, "10")).lines[0]
    assert line.id is not None
    services.rotate_line_password(w.env, line.id)
    assert w.directory.snapshot.lines_by_id[line.id].credential_generation == 2


# --- R4 (data) and R2 for licences -------------------------------------------------------------

def test_r4_concurrent_licence_in_the_snapshot_and_r2_when_it_moves(w: World) -> None:
    acc = w.account()
    ann, bob, cat = w.user(acc, "10"), w.user(acc, "11"), w.user(acc, "12")
    ann_line, bob_line = w.softphone(acc, ann).lines[0], w.softphone(acc, bob).lines[0]
    licence, users = lic.create_licence(w.env, acc, LicenceCreate(kind="concurrent", name="shift desk",
                                                                  user_ids=[ann, bob]))
    assert licence.id is not None and users == [ann, bob]
    snap = w.directory.snapshot
    assert snap.licences[licence.id].user_ids == (ann, bob) and snap.licences[licence.id].kind == "concurrent"
    members = snap.by_licence[licence.id]
    assert {e.sip_username for e in members} == {ann_line.sip_username, bob_line.sip_username}
    assert all(e.licence_kind == "concurrent" and e.licence_id == licence.id for e in members)

    with pytest.raises(Conflict):  # one licence per user
        lic.create_licence(w.env, acc, LicenceCreate(kind="named", name="ann's", user_ids=[ann]))
    with pytest.raises(Invalid) as err:
        lic.create_licence(w.env, acc, LicenceCreate(kind="named", name="two", user_ids=[cat, cat]))
    assert err.value.rule == "licence.unique_users"

    before = w.directory.snapshot.lines[bob_line.sip_username]
    _, now_users, revoked = lic.reassign_licence(w.env, licence.id, [ann, cat])
    assert now_users == [ann, cat] and revoked == [bob_line.id]
    snap = w.directory.snapshot
    after = snap.lines[bob_line.sip_username]
    assert after.licence_id is None and after.credential_generation == before.credential_generation + 1
    assert after.ha1_md5 != before.ha1_md5  # Bob's password is gone
    assert [e.user_id for e in snap.by_licence[licence.id]] == [ann]  # Cat has no line yet
    kinds = [c.kind for c in w.published[-2:]]
    assert kinds == ["licence.reassigned", "line.credentials_revoked"]
    assert w.published[-1].entity_id == bob_line.id


def test_named_licence_has_one_holder(w: World) -> None:
    acc = w.account()
    ann, bob = w.user(acc, "10"), w.user(acc, "11")
    with pytest.raises(Invalid) as err:
        lic.create_licence(w.env, acc, LicenceCreate(kind="named", name="x", user_ids=[ann, bob]))
    assert err.value.rule == "licence.named_holder"
    licence, _ = lic.create_licence(w.env, acc, LicenceCreate(kind="named", name="x", user_ids=[ann]))
    assert licence.id is not None
    w.softphone(acc, ann)
    _, users, revoked = lic.reassign_licence(w.env, licence.id, [bob])
    assert users == [bob] and len(revoked) == 1
    assert w.s.exec(select(Device)).first() is not None
