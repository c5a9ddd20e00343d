"""Emergency locations: validated, normalised civic addresses with an E.164 callback (issue #4).

Why validation lives at the door: a location is what a fire engine is sent
to. `e911.civic.check` normalises the address per country profile and lists
*every* failing element; `dispatchable_problems` adds the in-building detail
the site needs (RAY BAUM's Act); the callback number becomes E.164 in the
account's region (`e911.civic.to_e164`). Anything wrong → one `Invalid`
whose issues carry field, element and problem, so the API answers one 422
naming each element. Only dispatchable locations are stored
(`validation_status = "valid"`); rows stored before validation existed read
`unchecked` and are checked again when a device binds them.

A change (PATCH) re-binds nothing: devices keep their location id, and a
`device.location_changed` event per bound device tells the gateway to look
the location up afresh (its PSAP lookup and PIDF-LO use the new fields).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, col, select

from e911.civic import (
    CIVIC_FIELDS,
    CallbackError,
    CivicAddress,
    Problem,
    SiteNeeds,
    check,
    dispatchable_problems,
    format_address,
    region_country,
    to_e164,
)
from provisioning import audit
from provisioning.errors import Invalid, Issue
from provisioning.events import Change
from provisioning.models import Account, Device, Location
from provisioning.schemas import LocationCreate
from provisioning.services.env import ServiceEnv, get_or_404

SITE_NEEDS_KEYS = ("building", "floor", "unit", "room")
LIVE_DEVICE_STATES = ("new", "located", "active", "suspended")


@dataclass(frozen=True)
class LocationCheck:
    """The outcome of validating one location: what would be stored and what is wrong."""

    civic: CivicAddress
    callback_number: str | None
    site_needs: SiteNeeds
    problems: list[Problem] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.problems

    @property
    def formatted(self) -> str:
        """One line for people (read-backs, notices); never used for routing."""
        return format_address(self.civic)

    def issues(self, prefix: tuple[str | int, ...] = ()) -> list[Issue]:
        return [problem_issue(p, prefix) for p in self.problems]


def problem_issue(p: Problem, prefix: tuple[str | int, ...] = ()) -> Issue:
    """An `e911.civic.Problem` as an API issue: loc = body + field, with element and problem."""
    family = "callback" if p.field == "callback_number" else "civic"
    return Issue((*prefix, p.field), f"{family}.{p.problem}", p.message,
                 extra={"element": p.element, "problem": p.problem})


def site_needs_of(raw: Mapping[str, Any] | None) -> SiteNeeds:
    raw = raw or {}
    return SiteNeeds(**{k: bool(raw.get(k, False)) for k in SITE_NEEDS_KEYS})


def site_needs_dict(needs: SiteNeeds) -> dict[str, bool]:
    return {"building": needs.building, "floor": needs.floor, "unit": needs.unit, "room": needs.room}


def check_location(data: Mapping[str, Any], *, region: str, site_needs: SiteNeeds) -> LocationCheck:
    """Normalise and validate civic fields + callback (as typed) for an account in `region`."""
    civic, _ = check(data)
    problems = dispatchable_problems(civic, site_needs)
    callback: str | None = None
    # The account region's numbering plan; EU accounts dial as in the address's country.
    country = region_country(region, civic.country or None) or civic.country
    try:
        callback = to_e164(str(data.get("callback_number") or ""), country)
    except CallbackError as exc:
        problems.append(exc.as_problem("callback_number"))
    return LocationCheck(civic, callback, site_needs, problems)


def stored_fields(location: Location) -> dict[str, Any]:
    """A location row's civic fields and callback as a dict (input shape of `check_location`)."""
    values: dict[str, Any] = {name: getattr(location, name) for name in CIVIC_FIELDS}
    values["callback_number"] = location.callback_number
    return values


def _raise(result: LocationCheck) -> None:
    """Every problem at once; the API puts each under `["body", field]`."""
    if not result.valid:
        raise Invalid.of(result.issues())


def _apply(location: Location, result: LocationCheck) -> None:
    elements = result.civic.elements()
    for name in CIVIC_FIELDS:
        if name != "country":
            setattr(location, name, elements.get(name))
    location.country = result.civic.country
    assert result.callback_number is not None
    location.callback_number = result.callback_number
    location.site_needs = site_needs_dict(result.site_needs)
    location.validation_status = "valid"
    location.validation_problems = []


def _account(session: Session, account_id: int) -> Account:
    return get_or_404(session, Account, account_id)


def validate_new(session: Session, account_id: int, data: LocationCreate) -> LocationCheck:
    """Dry run of a creation: nothing is stored."""
    account = _account(session, account_id)
    values = data.model_dump(exclude={"name", "site_needs"})
    return check_location(values, region=account.region, site_needs=site_needs_of(data.site_needs.model_dump()))


def create_location(env: ServiceEnv, account_id: int, data: LocationCreate) -> Location:
    s = env.session
    account = _account(s, account_id)
    values = data.model_dump(exclude={"name", "site_needs"})
    result = check_location(values, region=account.region,
                            site_needs=site_needs_of(data.site_needs.model_dump()))
    _raise(result)
    now = env.now()
    location = Location(account_id=account_id, name=data.name, country=result.civic.country,
                        callback_number=result.callback_number or "", created_at=now, validated_at=now)
    _apply(location, result)
    s.add(location)
    s.flush()
    assert location.id is not None
    audit.record(s, at=now, actor=env.actor, action="location.created", entity="location",
                 entity_id=location.id, account_id=account_id,
                 detail={"name": data.name, "civic": result.civic.elements(),
                         "callback_number": location.callback_number, "site_needs": location.site_needs,
                         "as_given": data.model_dump(exclude_none=True, exclude={"name"})})
    env.commit(Change("location.created", location.id, account_id))
    return location


def _merged(location: Location, changes: Mapping[str, Any]) -> tuple[dict[str, Any], SiteNeeds]:
    values = stored_fields(location)
    for key, value in changes.items():
        if key in CIVIC_FIELDS or key == "callback_number":
            values[key] = value
    needs = site_needs_of(changes["site_needs"]) if changes.get("site_needs") is not None \
        else site_needs_of(location.site_needs)
    return values, needs


def check_update(session: Session, location_id: int, changes: Mapping[str, Any] | None = None) -> LocationCheck:
    """Dry run: the stored location with `changes` (PATCH shape) applied, validated; nothing is stored."""
    location = get_or_404(session, Location, location_id)
    account = _account(session, location.account_id)
    values, needs = _merged(location, changes or {})
    return check_location(values, region=account.region, site_needs=needs)


def bound_devices(session: Session, location_id: int) -> list[Device]:
    return list(session.exec(select(Device).where(Device.location_id == location_id,
                                                  col(Device.state).in_(LIVE_DEVICE_STATES))
                             .order_by(col(Device.id))))


def update_location(env: ServiceEnv, location_id: int, changes: Mapping[str, Any]) -> Location:
    """PATCH: validate the merged location; store it only when it is still dispatchable.

    Devices stay bound; each gets a `device.location_changed` event so the
    gateway's next PSAP lookup and PIDF-LO use the new address.
    """
    s = env.session
    location = get_or_404(s, Location, location_id)
    account = _account(s, location.account_id)
    values, needs = _merged(location, changes)
    result = check_location(values, region=account.region, site_needs=needs)
    _raise(result)
    before = {**stored_fields(location), "name": location.name, "site_needs": dict(location.site_needs or {})}
    was_checked = location.validation_status == "valid"
    _apply(location, result)
    if "name" in changes:
        location.name = changes["name"]
    after = {**stored_fields(location), "name": location.name, "site_needs": dict(location.site_needs or {})}
    diff = {k: {"before": before[k], "after": after[k]} for k in after if before.get(k) != after[k]}
    if not diff and was_checked:
        return location  # nothing changed: nothing to audit, nobody to tell
    now = env.now()
    location.updated_at = now
    location.validated_at = now
    s.add(location)
    devices = bound_devices(s, location_id)
    device_ids = [d.id for d in devices if d.id is not None]
    audit.record(s, at=now, actor=env.actor, action="location.updated", entity="location",
                 entity_id=location_id, account_id=location.account_id,
                 detail={"changes": diff, "devices_for_fresh_lookup": device_ids})
    env.commit(Change("location.updated", location_id, location.account_id),
               *(Change("device.location_changed", d, location.account_id) for d in device_ids))
    return location


def location_for_binding(env: ServiceEnv, account_id: int, location_id: int) -> Location:
    """The location a device of `account_id` is being bound to, validated again (R12/R13).

    A location stored before validation existed, or one that no longer
    passes (profiles change), is refused with its problems, each under
    `location_id` so the client sees which request field caused it.
    """
    s = env.session
    location = s.get(Location, location_id)
    if location is None or location.account_id != account_id:
        raise Invalid("location_id", f"location {location_id} not found in account {account_id}")
    account = _account(s, account_id)
    result = check_location(stored_fields(location), region=account.region,
                            site_needs=site_needs_of(location.site_needs))
    if not result.valid:
        issues = [Issue(("location_id",), i.rule, f"location {location_id} is not a dispatchable location: "
                        f"{i.message}", extra={**(i.extra or {}), "location_field": i.field[-1]})
                  for i in result.issues()]
        location.validation_status = "invalid"
        location.validation_problems = [p.as_dict() for p in result.problems]
        location.validated_at = env.now()
        s.add(location)
        audit.record(s, at=env.now(), actor=env.actor, action="location.invalidated", entity="location",
                     entity_id=location_id, account_id=account_id,
                     detail={"problems": location.validation_problems})
        env.commit(Change("location.invalidated", location_id, account_id))  # the bind itself is refused
        raise Invalid.of(issues)
    if location.validation_status != "valid":
        _apply(location, result)
        location.validated_at = env.now()
        s.add(location)
    return location


def get_location(session: Session, location_id: int) -> Location:
    return get_or_404(session, Location, location_id)


def list_locations(session: Session, account_id: int, *, limit: int = 100,
                   offset: int = 0) -> list[Location]:
    get_or_404(session, Account, account_id)
    stmt = (select(Location).where(Location.account_id == account_id)
            .order_by(col(Location.id)).offset(offset).limit(limit))
    return list(session.exec(stmt))
