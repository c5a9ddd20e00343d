"""Demo seed: two activated softphones whose printed credentials match the stored HA1."""

from __future__ import annotations

from sqlmodel import Session, func, select

from provisioning.credentials import ha1_digests
from provisioning.db import init_db, make_engine
from provisioning.demo import seed_demo
from provisioning.directory import Directory
from provisioning.events import ChangeBus
from provisioning.models import Account, Device
from tests.conftest_db import ManualClock, sqlite_url  # noqa: F401


def test_seed_then_reseed_rotates_passwords(sqlite_url: str) -> None:  # noqa: F811
    engine = make_engine(sqlite_url)
    init_db(engine)
    bus = ChangeBus()
    directory = Directory(engine)
    directory.load_all()
    bus.subscribe(directory.apply)
    clock = ManualClock()
    with Session(engine) as s:
        first = seed_demo(s, clock, "demo.lab", bus=bus)
    assert [c.extension for c in first] == ["1001", "1002"]
    for cred in first:
        entry = directory.snapshot.lines[cred.sip_username]
        assert entry.device_state == "active" and entry.location_id is not None
        assert entry.ha1_md5 == ha1_digests(cred.sip_username, "demo.lab", cred.sip_password).md5
        assert cred.sip_domain == "demo.lab"

    with Session(engine) as s:
        second = seed_demo(s, clock, "other.lab", bus=bus)
        assert s.exec(select(func.count()).select_from(Account)).one() == 1
        assert s.exec(select(func.count()).select_from(Device)).one() == 2
    assert [c.sip_username for c in second] == [c.sip_username for c in first]
    for old, new in zip(first, second, strict=True):
        assert new.sip_password != old.sip_password
        entry = directory.snapshot.lines[new.sip_username]
        assert entry.realm == "other.lab"
        assert entry.ha1_sha256 == ha1_digests(new.sip_username, "other.lab", new.sip_password).sha256
    engine.dispose()
