"""R11 simulated site outages: "911 does not work during a power or internet outage".

A compliance tester starts a power or internet outage (or a customer
network that blocks the platform) at a location, places an emergency call
from a device there, and sees it fail exactly as R11 says; then ends the
outage. The directory snapshot carries the active outage on the location
(`LocationEntry.outage`), so the gateway decides without the database.

One active outage per kind and site: starting a second one of the same kind
is a 409 (end the first). Different kinds may overlap (a power cut usually
takes the internet with it).
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from provisioning import audit
from provisioning.errors import Conflict, Invalid
from provisioning.events import Change
from provisioning.models import Account, Location, SiteOutage
from provisioning.services.env import ServiceEnv, get_or_404

OUTAGE_KINDS = ("power", "internet", "network_blocked")  # gateway.emergency.OUTAGES, same order


def start_outage(env: ServiceEnv, location_id: int, kind: str, note: str | None = None) -> SiteOutage:
    s = env.session
    location = get_or_404(s, Location, location_id)
    if kind not in OUTAGE_KINDS:
        raise Invalid("kind", f"unknown outage kind {kind!r}; one of {', '.join(OUTAGE_KINDS)}", rule="R11")
    running = s.exec(select(SiteOutage.id).where(SiteOutage.location_id == location_id, SiteOutage.kind == kind,
                                                 col(SiteOutage.ended_at).is_(None))).first()
    if running is not None:
        raise Conflict(f"a {kind} outage is already running at location {location_id} (outage {running}); "
                       "end it first", rule_id="R11", extra={"outage_id": running})
    outage = SiteOutage(account_id=location.account_id, location_id=location_id, kind=kind, note=note,
                        started_at=env.now())
    s.add(outage)
    s.flush()
    assert outage.id is not None
    audit.record(s, at=env.now(), actor=env.actor, action="outage.started", entity="location",
                 entity_id=location_id, account_id=location.account_id,
                 detail={"outage_id": outage.id, "kind": kind, "note": note, "rule_id": "R11"})
    env.commit(Change("outage.started", outage.id, location.account_id))
    return outage


def end_outage(env: ServiceEnv, outage_id: int) -> SiteOutage:
    s = env.session
    outage = get_or_404(s, SiteOutage, outage_id)
    if outage.ended_at is not None:
        raise Conflict(f"outage {outage_id} already ended at {outage.ended_at.isoformat()}", rule_id="R11")
    outage.ended_at = env.now()
    s.add(outage)
    audit.record(s, at=env.now(), actor=env.actor, action="outage.ended", entity="location",
                 entity_id=outage.location_id, account_id=outage.account_id,
                 detail={"outage_id": outage_id, "kind": outage.kind, "rule_id": "R11"})
    env.commit(Change("outage.ended", outage_id, outage.account_id))
    return outage


def list_outages(session: Session, *, account_id: int | None = None, location_id: int | None = None,
                 active: bool | None = None, limit: int = 100, offset: int = 0) -> list[SiteOutage]:
    if account_id is not None:
        get_or_404(session, Account, account_id)
    if location_id is not None:
        get_or_404(session, Location, location_id)
    stmt = select(SiteOutage)
    if account_id is not None:
        stmt = stmt.where(SiteOutage.account_id == account_id)
    if location_id is not None:
        stmt = stmt.where(SiteOutage.location_id == location_id)
    if active is True:
        stmt = stmt.where(col(SiteOutage.ended_at).is_(None))
    elif active is False:
        stmt = stmt.where(col(SiteOutage.ended_at).is_not(None))
    return list(session.exec(stmt.order_by(col(SiteOutage.id)).offset(offset).limit(limit)))
