"""R15 customer notices: "this device is active for emergency calling, and here is what that means".

Rule R15 switches on the automatic forwarding of location and callback
number for a device only once the customer has been notified that the
device is active. voiplab records that notice when a device is activated on
a plan with emergency calling (`record_activation_notice`, called inside the
activation's transaction) and counts it as *given* once the customer
acknowledges it (`acknowledge_notice`).

Choice: forwarding is on only after the
acknowledgement, not when the notice is merely sent. 47 CFR 9.11 asks the
provider to obtain an affirmative acknowledgement of the 911 limitations
(notes §0, R11 row), and a sent-but-unread notice proves nothing to a
compliance tester. Until then emergency calls still connect, to the
simulated national emergency call centre without location, with reason
`not_notified` (gateway.emergency).

The notice text covers what 9.11 asks it to (re-check against eCFR): the
location registered, that emergency calls fail during power or internet
outages, when the customer's network blocks the service, or after
deactivation (R11), that moves must be reported (R13), and the delay before a
location reaches the emergency services' databases.
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from e911.civic import CivicAddress, format_address
from provisioning import audit
from provisioning.errors import Conflict
from provisioning.events import Change
from provisioning.models import Account, Device, E911Notice, Location
from provisioning.services.env import ServiceEnv, get_or_404

NOTICE_TEXT = (
    "Device {name!r} (id {device_id}) is now active for emergency calling on account {account!r}. "
    "Registered location: {address}. Callback number: {callback}. "
    "Once you acknowledge this notice, emergency calls from this device send that location and "
    "callback number to the emergency services automatically (R15); until then they reach a "
    "national emergency call centre, where the caller must say where they are. "
    "Emergency calling does NOT work during a power outage or an internet outage at the device's "
    "site, when your own network blocks the service, or after the service is suspended or "
    "deactivated, for example for non-payment (R11). "
    "When the device moves, report its new location at once (R13): otherwise help may be sent to "
    "the wrong place. After a change it can take a while before the new location reaches the "
    "emergency services' databases."
)


def notice_text(device: Device, account: Account, location: Location | None) -> str:
    if location is not None:
        address = format_address(CivicAddress.from_mapping(location.model_dump()))
        callback = location.callback_number
    else:
        address, callback = "none registered", "none registered"
    return NOTICE_TEXT.format(name=device.name, device_id=device.id, account=account.name,
                              address=address, callback=callback)


def record_activation_notice(env: ServiceEnv, device: Device) -> E911Notice | None:
    """Add the R15 notice for a device being activated (caller commits).

    None when the account's plan has no emergency calling (R10: nothing to
    forward, nothing to notify).
    """
    s = env.session
    account = get_or_404(s, Account, device.account_id)
    plan = env.plans.get(account.plan)
    if plan is not None and not plan.emergency_calling:
        return None
    assert device.id is not None
    location = s.get(Location, device.location_id) if device.location_id is not None else None
    notice = E911Notice(account_id=device.account_id, device_id=device.id, kind="activation",
                        text=notice_text(device, account, location), sent_at=env.now())
    s.add(notice)
    s.flush()
    assert notice.id is not None
    audit.record(s, at=env.now(), actor=env.actor, action="e911_notice.sent", entity="device",
                 entity_id=device.id, account_id=device.account_id,
                 detail={"notice_id": notice.id, "kind": notice.kind, "location_id": device.location_id,
                         "text": notice.text, "rule_id": "R15"})
    return notice


def latest_notice(session: Session, device_id: int) -> E911Notice | None:
    return session.exec(select(E911Notice).where(E911Notice.device_id == device_id)
                        .order_by(col(E911Notice.id).desc())).first()


def acknowledge_notice(env: ServiceEnv, device_id: int, acknowledged_by: str | None = None) -> E911Notice:
    """The customer acknowledged the device's notice: location forwarding goes on (R15).

    Acknowledges every pending notice of the device (normally one) and returns
    the newest; acknowledging again changes nothing. 409 when the device has
    no notice (never activated, or its plan has no emergency calling).
    """
    s = env.session
    device = get_or_404(s, Device, device_id)
    notices = list(s.exec(select(E911Notice).where(E911Notice.device_id == device_id)
                          .order_by(col(E911Notice.id))))
    if not notices:
        raise Conflict(f"device {device_id} has no E911 notice to acknowledge: notices are sent when a "
                       "device is activated on a plan with emergency calling (R15)", rule_id="R15")
    pending = [n for n in notices if n.acknowledged_at is None]
    if not pending:
        return notices[-1]
    now = env.now()
    who = acknowledged_by or env.actor
    for notice in pending:
        notice.acknowledged_at = now
        notice.acknowledged_by = who
        s.add(notice)
    audit.record(s, at=now, actor=env.actor, action="e911_notice.acknowledged", entity="device",
                 entity_id=device_id, account_id=device.account_id,
                 detail={"notice_ids": [n.id for n in pending], "acknowledged_by": who, "rule_id": "R15"})
    env.commit(Change("device.notice_acknowledged", device_id, device.account_id))
    return notices[-1]


def list_notices(session: Session, *, device_id: int | None = None, account_id: int | None = None,
                 pending: bool | None = None, limit: int = 100, offset: int = 0) -> list[E911Notice]:
    if device_id is not None:
        get_or_404(session, Device, device_id)
    if account_id is not None:
        get_or_404(session, Account, account_id)
    stmt = select(E911Notice)
    if device_id is not None:
        stmt = stmt.where(E911Notice.device_id == device_id)
    if account_id is not None:
        stmt = stmt.where(E911Notice.account_id == account_id)
    if pending is True:
        stmt = stmt.where(col(E911Notice.acknowledged_at).is_(None))
    elif pending is False:
        stmt = stmt.where(col(E911Notice.acknowledged_at).is_not(None))
    return list(session.exec(stmt.order_by(col(E911Notice.id)).offset(offset).limit(limit)))
