"""Provisioning tables (SQLModel).

Shapes follow ARCHITECTURE.md "Data in one paragraph" and notes/provisioning.md
§4.1, kept to what issue #2 needs; later issues add columns (licences, plan
limits, room kits, E911 validation state) without reshaping these.

Secrets: a Line stores only HA1 digests (MD5 and SHA-256 over
`username:realm:password`, RFC 8760), never the password.
Timestamps are aware UTC (see `db.UTCDateTime`).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, get_args

from sqlalchemy import JSON, Column, Index, Numeric, UniqueConstraint, false, text
from sqlmodel import Field, SQLModel

from provisioning.db import UTCDateTime

ACCOUNT_STATUSES = ("active", "suspended")
DEVICE_STATES = ("new", "located", "active", "suspended", "retired")
USER_KINDS = ("person", "room")  # R7: a meeting room is a named user too
LICENCE_KINDS = ("named", "concurrent")
LINE_PURPOSES = ("voice", "fax")
UA_POLICIES = ("enforce", "flag", "off")
ORDER_STATES = ("ordered", "shipped", "delivered", "missing_parts", "complete", "installed",
                "active", "cancelled")
CLAIM_KINDS = ("missing_parts", "warranty")
Disposition = Literal["answered", "busy", "no-answer", "cancelled", "rejected", "failed"]
DISPOSITIONS: tuple[str, ...] = get_args(Disposition)


class Account(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    plan: str = Field(max_length=40)
    region: str = Field(max_length=8)
    status: str = Field(default="active", max_length=16)
    created_at: datetime = Field(sa_type=UTCDateTime)
    # R24: international calling is enabled once deposits reach the plan's requirement.
    deposit_usd: int = Field(default=0, sa_column_kwargs={"server_default": text("0")})
    # R25: E.164 prefixes ("+53…") this account may call although the plan blocks them.
    allowed_prefixes: list[str] = Field(default_factory=list, sa_column=Column(
        JSON, nullable=False, default=list, server_default=text("'[]'")))
    # R5: flex subscription minimum (None: no flex); the maximum is plan.flex.max_multiplier x this.
    flex_minimum: int | None = Field(default=None)
    # --- issue #4 (E911) ---
    # R13: what a stale device's emergency call does: "use_last" (last registered location, with
    # a warning) or "national_centre" (no location; the centre asks for it).
    stale_policy: str = Field(default="use_last", max_length=16,
                              sa_column_kwargs={"server_default": "use_last"})
    # Kari's Law: where the emergency-call notification is POSTed (provisioning.notifier).
    notification_url: str | None = Field(default=None, max_length=500)


class User(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("account_id", "extension", name="uq_user_account_extension"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    named_user_id: str = Field(max_length=254, unique=True)
    display_name: str = Field(max_length=200)
    extension: str = Field(max_length=16)
    kind: str = Field(default="person", max_length=16, sa_column_kwargs={"server_default": "person"})
    created_at: datetime = Field(sa_type=UTCDateTime)


class Licence(SQLModel, table=True):
    """A named licence (one holder) or a concurrent licence shared by several
    named users of which at most one is registered at a time (R4)."""

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    kind: str = Field(max_length=16)
    name: str = Field(max_length=200)
    created_at: datetime = Field(sa_type=UTCDateTime)


class LicenceMember(SQLModel, table=True):
    """Who may use a licence; a user holds at most one licence (unique user_id)."""

    __tablename__ = "licence_member"

    licence_id: int = Field(foreign_key="licence.id", primary_key=True)
    user_id: int = Field(foreign_key="user.id", primary_key=True, unique=True)
    since: datetime = Field(sa_type=UTCDateTime)


class Location(SQLModel, table=True):
    """A civic address (RFC 5139 element names, lowercased) plus callback number."""

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    name: str | None = Field(default=None, max_length=200)
    country: str = Field(max_length=2)
    a1: str | None = None
    a2: str | None = None
    a3: str | None = None
    a4: str | None = None
    a5: str | None = None
    a6: str | None = None
    prm: str | None = None
    prd: str | None = None
    rd: str | None = None
    sts: str | None = None
    pod: str | None = None
    pom: str | None = None
    rdsec: str | None = None
    rdbr: str | None = None
    rdsubbr: str | None = None
    hno: str | None = None
    hns: str | None = None
    lmk: str | None = None
    loc: str | None = None
    flr: str | None = None
    nam: str | None = None
    pc: str | None = None
    bld: str | None = None
    unit: str | None = None
    room: str | None = None
    seat: str | None = None
    plc: str | None = None
    pcn: str | None = None
    pobox: str | None = None
    addcode: str | None = None
    callback_number: str = Field(max_length=32)
    created_at: datetime = Field(sa_type=UTCDateTime)
    # --- issue #4 (E911): civic fields above are stored normalised (e911.civic.normalise) and the
    # callback as E.164. "valid": a dispatchable location when last checked; "unchecked": stored
    # before validation existed (re-checked when a device binds it).
    validation_status: str = Field(default="unchecked", max_length=16,
                                   sa_column_kwargs={"server_default": "unchecked"})
    validation_problems: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(
        JSON, nullable=False, default=list, server_default=text("'[]'")))
    validated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # In-building detail responders need here (e911.civic.SiteNeeds): {"floor": true, ...}.
    site_needs: dict[str, bool] = Field(default_factory=dict, sa_column=Column(
        JSON, nullable=False, default=dict, server_default=text("'{}'")))
    updated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Device(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    # None until the first fetch's User-Agent names the model (GoTo: "model optional").
    hardware_profile: str | None = Field(default=None, max_length=64)
    name: str = Field(max_length=200)
    # Normalised 12 lowercase hex digits; several NULLs allowed (softphones, retired devices).
    mac: str | None = Field(default=None, max_length=12, unique=True)
    serial: str | None = Field(default=None, max_length=64)
    kind: str = Field(max_length=24)
    state: str = Field(default="new", max_length=16)
    location_id: int | None = Field(default=None, foreign_key="location.id", index=True)
    transport: str = Field(default="udp", max_length=8, sa_column_kwargs={"server_default": "udp"})
    # Codec order for the config; empty = the profile's order.
    codecs: list[str] = Field(default_factory=list, sa_column=Column(
        JSON, nullable=False, default=list, server_default=text("'[]'")))
    ua_policy: str = Field(default="flag", max_length=8, sa_column_kwargs={"server_default": "flag"})
    # Optional HTTP digest for /provision (realm "voiplab-provisioning", user = device MAC).
    prov_ha1: str | None = Field(default=None, max_length=32)
    created_at: datetime = Field(sa_type=UTCDateTime)
    located_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    activated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    suspended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    retired_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    retired_mac: str | None = Field(default=None, max_length=12)
    last_fetch_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_fetch_file: str | None = Field(default=None, max_length=120)
    last_fetch_ua: str | None = Field(default=None, max_length=255)
    last_fetch_ip: str | None = Field(default=None, max_length=64)
    last_fetch_firmware: str | None = Field(default=None, max_length=64)
    ua_mismatch: str | None = Field(default=None, max_length=255)


class Line(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("device_id", "index", name="uq_line_device_index"),)

    id: int | None = Field(default=None, primary_key=True)
    device_id: int = Field(foreign_key="device.id", index=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    index: int
    sip_username: str = Field(max_length=64, unique=True)
    realm: str = Field(max_length=255)
    ha1_md5: str = Field(max_length=32)
    ha1_sha256: str = Field(max_length=64)
    # The password sealed with the server's secret key (provisioning.secrets), only so that
    # phone configs can carry it; None when no key was configured at creation.
    password_sealed: str | None = Field(default=None, max_length=512)
    # Bumped on every rotation or reassignment (R2): a binding made under an older
    # generation belongs to the previous holder.
    credential_generation: int = Field(default=1, sa_column_kwargs={"server_default": text("1")})
    port: int | None = Field(default=None)  # ATA FXS port (1-based)
    purpose: str = Field(default="voice", max_length=8, sa_column_kwargs={"server_default": "voice"})
    created_at: datetime = Field(sa_type=UTCDateTime)
    password_set_at: datetime = Field(sa_type=UTCDateTime)


class Cdr(SQLModel, table=True):
    """One call attempt. `account_id`/user ids carry no foreign key on purpose:
    a record must never be lost because what it refers to changed or went away."""

    # The usage summary reads one account's month: (account_id, start) answers it from the index.
    __table_args__ = (Index("ix_cdr_account_start", "account_id", "start"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: int | None = Field(default=None, index=True)
    call_id: str = Field(max_length=255, index=True)
    caller: str = Field(max_length=255)
    callee: str = Field(max_length=255)
    caller_user: int | None = None
    callee_user: int | None = None
    start: datetime = Field(sa_type=UTCDateTime, index=True)
    answer: datetime | None = Field(default=None, sa_type=UTCDateTime)
    end: datetime | None = Field(default=None, sa_type=UTCDateTime)
    duration_s: float = 0.0
    disposition: str = Field(max_length=16)
    sip_code: int | None = None
    reason: str | None = Field(default=None, max_length=255)
    rule_id: str | None = Field(default=None, max_length=8)
    gateway_node: str | None = Field(default=None, max_length=64)
    # Rating (#5, R24/R28): the gateway rates each record before writing it. Records
    # older than migration 0003 read as unrated on-net calls (call_type "on-net", zero charge).
    call_type: str = Field(default="on-net", max_length=16, index=True,
                           sa_column_kwargs={"server_default": "on-net"})
    destination: str | None = Field(default=None, max_length=255)
    billable_s: int = Field(default=0, sa_column_kwargs={"server_default": text("0")})
    rate_per_min: Decimal | None = Field(default=None, sa_type=Numeric(12, 4))
    charge: Decimal = Field(default=Decimal("0"), sa_type=Numeric(12, 4),
                            sa_column_kwargs={"server_default": text("0")})
    currency: str = Field(default="USD", max_length=3, sa_column_kwargs={"server_default": "USD"})
    overage: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    plan: str | None = Field(default=None, max_length=40)


class AuditEvent(SQLModel, table=True):
    """Append-only record of every provisioning change (secrets redacted)."""

    __tablename__ = "audit_event"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_type=UTCDateTime, index=True)
    actor: str = Field(max_length=120)
    action: str = Field(max_length=64)
    entity: str = Field(max_length=32)
    entity_id: int | None = Field(default=None)
    account_id: int | None = Field(default=None, index=True)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class RoomKit(SQLModel, table=True):
    """A GoTo Room: a named room user (R7) and its components (R40)."""

    __tablename__ = "room_kit"

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    room_user_id: int = Field(foreign_key="user.id", index=True)
    name: str = Field(max_length=200)
    state: str = Field(default="ordered", max_length=16)
    created_at: datetime = Field(sa_type=UTCDateTime)


class RoomKitComponent(SQLModel, table=True):
    __tablename__ = "room_kit_component"

    id: int | None = Field(default=None, primary_key=True)
    room_kit_id: int = Field(foreign_key="room_kit.id", index=True)
    roles: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    model: str = Field(max_length=120)  # a hardware profile id, or free text (keyboard + mouse, sheet)
    serial: str = Field(max_length=64)
    replaced_by: int | None = Field(default=None)  # component id of a warranty replacement


class EquipmentOrder(SQLModel, table=True):
    """An equipment purchase (R40-R42); windows are computed from these times."""

    __tablename__ = "equipment_order"

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    room_kit_id: int | None = Field(default=None, foreign_key="room_kit.id", index=True)
    description: str = Field(max_length=200)
    amount_usd: int
    state: str = Field(default="ordered", max_length=16)
    ordered_at: datetime = Field(sa_type=UTCDateTime)
    purchased_at: datetime = Field(sa_type=UTCDateTime)  # warranty start (R41), default ordered_at
    tracking_number: str | None = Field(default=None, max_length=64)
    shipped_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    installed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    activated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    cancelled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    restocking_fee_usd: int | None = Field(default=None)


class Claim(SQLModel, table=True):
    """A missing-parts or warranty claim on an order, with what was decided (R41)."""

    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="equipment_order.id", index=True)
    kind: str = Field(max_length=16)
    at: datetime = Field(sa_type=UTCDateTime)
    component_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    description: str = Field(default="", max_length=500)
    outcome: str = Field(max_length=16)  # "accepted" (replaced free) | "refused"
    rule_id: str = Field(max_length=8)


class IdempotencyRecord(SQLModel, table=True):
    """The first answer to a POST carrying an Idempotency-Key, replayed to retries."""

    __tablename__ = "idempotency_record"

    key: str = Field(primary_key=True, max_length=255)
    fingerprint: str = Field(max_length=64)  # sha256 over method, path and body
    status_code: int
    body: str
    created_at: datetime = Field(sa_type=UTCDateTime)


# --- issue #4: E911 (R10-R16) -------------------------------------------------------------------

class DeviceE911(SQLModel, table=True):
    """A device's network fingerprint and R13 "location stale" flag.

    A table of its own (not Device columns) because the gateway's writer
    thread updates it on registrations while the API edits devices: the two
    writers never touch the same row. Only the writer inserts rows; the API
    only updates existing ones (no row = never registered, nothing stale).
    """

    __tablename__ = "device_e911"

    device_id: int = Field(foreign_key="device.id", primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    last_fingerprint: dict[str, str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    fingerprint_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    location_stale: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    stale_reason: str | None = Field(default=None, max_length=500)
    stale_since: datetime | None = Field(default=None, sa_type=UTCDateTime)


class E911Notice(SQLModel, table=True):
    """R15: the customer was told that a device is active (with the R11 limits of
    emergency calling). Location forwarding is on once it is acknowledged."""

    __tablename__ = "e911_notice"

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    device_id: int = Field(foreign_key="device.id", index=True)
    kind: str = Field(default="activation", max_length=16)
    text: str
    sent_at: datetime = Field(sa_type=UTCDateTime)
    acknowledged_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    acknowledged_by: str | None = Field(default=None, max_length=200)


class LocationPrompt(SQLModel, table=True):
    """R13: a nomadic device registered from another network; its user is asked
    to confirm the registered location or give a new one."""

    __tablename__ = "location_prompt"

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    device_id: int = Field(foreign_key="device.id", index=True)
    created_at: datetime = Field(sa_type=UTCDateTime)
    reason: str = Field(max_length=500)
    location_id: int | None = Field(default=None)  # the registered location when prompted
    fingerprint: dict[str, str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    previous_fingerprint: dict[str, str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    status: str = Field(default="open", max_length=16)  # open | confirmed | updated | superseded
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    resolved_by: str | None = Field(default=None, max_length=120)


class SiteOutage(SQLModel, table=True):
    """R11: a simulated power or internet outage (or a customer network that
    blocks the platform) at a location; emergency calls from there fail."""

    __tablename__ = "site_outage"

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    location_id: int = Field(foreign_key="location.id", index=True)
    kind: str = Field(max_length=16)  # power | internet | network_blocked
    note: str | None = Field(default=None, max_length=500)
    started_at: datetime = Field(sa_type=UTCDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class EmergencyCall(SQLModel, table=True):
    """One emergency or test call as the gateway routed (or refused) it, with the
    exact PIDF-LO it sent. No foreign keys, like Cdr: the record outlives what it names."""

    __tablename__ = "emergency_call"

    id: int | None = Field(default=None, primary_key=True)
    call_id: str = Field(max_length=255, unique=True)
    psap_call_id: str | None = Field(default=None, max_length=255, index=True)
    account_id: int | None = Field(default=None, index=True)
    device_id: int | None = Field(default=None, index=True)
    location_id: int | None = Field(default=None)
    caller: str = Field(default="", max_length=255)
    dialled: str = Field(max_length=255)
    service_urn: str | None = Field(default=None, max_length=64)
    is_test: bool = Field(default=False)  # 933 / urn:service:test.sos
    route_kind: str = Field(max_length=16)  # psap | national_centre | refuse
    code: str = Field(max_length=64)
    rule_id: str | None = Field(default=None, max_length=8)
    reason: str = Field(default="", max_length=500)
    sip_status: int | None = Field(default=None)
    with_location: bool = Field(default=False)
    callback: str | None = Field(default=None, max_length=32)
    pidf: str | None = Field(default=None)  # the exact PIDF-LO sent (text)
    content_id: str | None = Field(default=None, max_length=255)
    warnings: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False, default=list))
    started_at: datetime = Field(sa_type=UTCDateTime, index=True)
    answered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    gateway_node: str | None = Field(default=None, max_length=64)


class PsapCallRecord(SQLModel, table=True):
    """What the PSAP simulator judged (`PsapCall.to_dict()` kept whole in `data`),
    keyed by its Call-ID and updated as the call moves on."""

    __tablename__ = "psap_call"

    id: int | None = Field(default=None, primary_key=True)
    call_id: str = Field(max_length=255, unique=True)
    role: str = Field(max_length=24)
    verdict: str = Field(max_length=8)
    state: str = Field(max_length=16)
    status: int | None = Field(default=None)
    device_id: str | None = Field(default=None, max_length=255, index=True)
    received_at: datetime = Field(sa_type=UTCDateTime, index=True)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class EmergencyNotification(SQLModel, table=True):
    """A Kari's Law notification (47 CFR 9.16(b)(2)) and how its delivery went."""

    __tablename__ = "emergency_notification"

    id: int | None = Field(default=None, primary_key=True)
    call_id: str = Field(max_length=255, index=True)
    account_id: int | None = Field(default=None, index=True)
    channel: str = Field(default="webhook", max_length=16)
    url: str | None = Field(default=None, max_length=500)
    status: str = Field(max_length=16)  # pending | retrying | sent | failed | no_destination
    attempts: int = Field(default=0)
    last_status_code: int | None = Field(default=None)
    last_error: str | None = Field(default=None, max_length=500)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(sa_type=UTCDateTime, index=True)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)
