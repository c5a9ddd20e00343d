"""Demo data for `make run`: one account, two users, a location and two
activated softphones, with credentials to type into a softphone.

Re-running against the same database does not duplicate anything: the demo
lines get fresh passwords instead (only HA1 digests are stored, so the old
passwords cannot be shown again; this also follows a changed `--domain`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, select

from hardware_profiles.catalog import HardwareCatalog, load_catalog
from provisioning import services
from provisioning.events import ChangeBus
from provisioning.models import Account, Line, User
from provisioning.schemas import AccountCreate, DeviceCreate, LineSpec, LocationCreate, UserCreate
from provisioning.services import Clock, ServiceEnv

DEMO_ACCOUNT = "voiplab demo"
DEMO_USERS = (
    ("ada.lovelace@demo.voiplab.test", "Ada Lovelace", "1001", "softphone-desktop"),
    ("alan.turing@demo.voiplab.test", "Alan Turing", "1002", "softphone-mobile"),
)


@dataclass(frozen=True)
class DemoCredential:
    extension: str
    display_name: str
    named_user_id: str
    device_id: int
    sip_username: str
    sip_password: str
    sip_domain: str


def seed_demo(session: Session, now: Clock, sip_domain: str, *,
              catalog: HardwareCatalog | None = None,
              bus: ChangeBus | None = None) -> list[DemoCredential]:
    """Create (or refresh) the demo; pass the app's `bus` so a running gateway's
    directory sees it, and its `catalog` to avoid reloading the data files."""
    env = ServiceEnv(session=session, now=now, sip_domain=sip_domain,
                     catalog=catalog or load_catalog(), bus=bus, actor="demo")
    account = session.exec(select(Account).where(Account.name == DEMO_ACCOUNT)).first()
    if account is not None:
        return _rotate(env, account)
    account = services.create_account(env, AccountCreate(name=DEMO_ACCOUNT, plan="connect", region="US"))
    assert account.id is not None
    location = services.create_location(env, account.id, LocationCreate(
        name="Demo HQ, floor 2", country="US", a1="CA", a3="San Francisco", rd="Market", sts="St",
        hno="1", pc="94105", flr="2", room="201", callback_number="+14155550100"))
    assert location.id is not None
    creds: list[DemoCredential] = []
    for named, display, ext, profile in DEMO_USERS:
        user = services.create_user(env, account.id, UserCreate(
            named_user_id=named, display_name=display, extension=ext))
        assert user.id is not None
        made = services.create_device(env, account.id, DeviceCreate(
            hardware_profile=profile, name=f"{display} softphone", lines=[LineSpec(user_id=user.id)]))
        device_id = made.device.id
        assert device_id is not None
        services.bind_location(env, device_id, location.id)
        services.activate_device(env, device_id)
        line = made.lines[0]
        assert line.id is not None
        creds.append(DemoCredential(ext, display, named, device_id, line.sip_username,
                                    made.passwords[line.id], sip_domain))
    return creds


def _rotate(env: ServiceEnv, account: Account) -> list[DemoCredential]:
    creds: list[DemoCredential] = []
    stmt = (select(User, Line).join(Line, Line.user_id == User.id)  # type: ignore[arg-type]
            .where(User.account_id == account.id).order_by(User.extension, Line.id))  # type: ignore[arg-type]
    for user, line in list(env.session.exec(stmt)):
        assert line.id is not None
        line, password = services.rotate_line_password(env, line.id)
        creds.append(DemoCredential(user.extension, user.display_name, user.named_user_id,
                                    line.device_id, line.sip_username, password, env.sip_domain))
    return creds
