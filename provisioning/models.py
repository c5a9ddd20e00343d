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
from typing import Any, Literal, get_args

from sqlalchemy import JSON, Column, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from provisioning.db import UTCDateTime

ACCOUNT_STATUSES = ("active", "suspended")
DEVICE_STATES = ("new", "located", "active", "suspended", "retired")
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


class User(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("account_id", "extension", name="uq_user_account_extension"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    named_user_id: str = Field(max_length=254, unique=True)
    display_name: str = Field(max_length=200)
    extension: str = Field(max_length=16)
    created_at: datetime = Field(sa_type=UTCDateTime)


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


class Device(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    hardware_profile: str = Field(max_length=64)
    name: str = Field(max_length=200)
    # Normalised 12 lowercase hex digits; several NULLs allowed (softphones).
    mac: str | None = Field(default=None, max_length=12, unique=True)
    kind: str = Field(max_length=16)
    state: str = Field(default="new", max_length=16)
    location_id: int | None = Field(default=None, foreign_key="location.id", index=True)
    created_at: datetime = Field(sa_type=UTCDateTime)
    located_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    activated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


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
    created_at: datetime = Field(sa_type=UTCDateTime)
    password_set_at: datetime = Field(sa_type=UTCDateTime)


class Cdr(SQLModel, table=True):
    """One call attempt. `account_id`/user ids carry no foreign key on purpose:
    a record must never be lost because what it refers to changed or went away."""

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
