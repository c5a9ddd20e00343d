"""Request/response shapes shared by the services and the HTTP API.

Format checks live here (pydantic → 422 naming the field); checks that need
stored state or data files (plan exists, user belongs to the account, profile
line limit) live in the services and raise `errors.Invalid` with the same
field path, so clients see one error shape either way.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from provisioning.models import Disposition
from provisioning.rating import CdrCallType, money

_EXTENSION_RE = re.compile(r"^[0-9]{2,10}$")
_NAMED_USER_RE = re.compile(r"^[a-z0-9._%+'-]+@[a-z0-9-]+(\.[a-z0-9-]+)+$")
_MAC_RE = re.compile(r"^[0-9a-f]{12}$")
_E164_PREFIX_RE = re.compile(r"^\+[1-9][0-9]{0,14}$")

CIVIC_MAX = 200


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# --- accounts -------------------------------------------------------------------------------

class AccountCreate(_In):
    name: str = Field(min_length=1, max_length=200)
    flex_minimum: int | None = Field(default=None, ge=1, le=100_000, description=(
        "Flex subscription minimum seats (R5); the maximum is the plan's multiplier (7) x this."))
    plan: str = Field(min_length=1, max_length=40,
                      description="A plan id of `GET /api/v1/plans` (connect, grasshopper, openvoice, meeting).")
    region: str = Field(min_length=2, max_length=8, description="US, CA, EU, UK or AU.")

    @field_validator("region")
    @classmethod
    def _upper(cls, v: str) -> str:
        return v.upper()


class AccountOut(_Out):
    id: int
    name: str
    plan: str
    region: str
    status: str
    created_at: datetime
    deposit_usd: int
    allowed_prefixes: list[str]
    flex_minimum: int | None = None
    stale_policy: str = "use_last"  # R13 (issue #4)
    notification_url: str | None = None  # Kari's Law webhook (issue #4)


class FlexIn(_In):
    minimum: int | None = Field(ge=1, le=100_000, description="Minimum seats (R5); null ends flex.")


class DepositIn(_In):
    amount_usd: int = Field(gt=0, le=1_000_000, description="Whole US dollars received (R24).")


def check_e164_prefix(v: str) -> str:
    v = v.replace(" ", "")
    if not _E164_PREFIX_RE.match(v):
        raise ValueError("must be an E.164 prefix: '+' then 1 to 15 digits, e.g. +53")
    return v


class AllowedPrefixesIn(_In):
    prefixes: list[str] = Field(max_length=200, description="E.164 prefixes the account may call "
                                "although its plan blocks them (R25); replaces the list.")

    @field_validator("prefixes")
    @classmethod
    def _prefixes(cls, v: list[str]) -> list[str]:
        return [check_e164_prefix(p) for p in v]


# --- users ----------------------------------------------------------------------------------

class UserCreate(_In):
    named_user_id: str = Field(max_length=254, description="Unique platform-wide, e-mail form, "
                               "naming one person or one meeting room, never a role (R1, R7).")
    display_name: str = Field(min_length=1, max_length=200)
    extension: str = Field(description="2-10 digits, unique within the account.")
    kind: Literal["person", "room"] = Field(default="person", description="`room`: a meeting room "
                                            "(GoTo Room), a named user too (R7).")

    @field_validator("named_user_id")
    @classmethod
    def _named_user(cls, v: str) -> str:
        v = v.lower()
        if not _NAMED_USER_RE.match(v):
            raise ValueError("must be an e-mail style named user id, e.g. jane.doe@example.com")
        return v

    @field_validator("extension")
    @classmethod
    def _extension(cls, v: str) -> str:
        if not _EXTENSION_RE.match(v):
            raise ValueError("must be 2 to 10 digits")
        return v


class UserOut(_Out):
    id: int
    account_id: int
    named_user_id: str
    display_name: str
    extension: str
    kind: str
    created_at: datetime


# --- locations ------------------------------------------------------------------------------

def _civic(description: str) -> Any:
    return Field(default=None, max_length=CIVIC_MAX, description=description)


class CivicFields(BaseModel):
    """RFC 5139 civic elements except `country` (names as in e911.civic.CIVIC_FIELDS)."""

    a1: str | None = _civic("national subdivision (state, province)")
    a2: str | None = _civic("county, parish, district")
    a3: str | None = _civic("city, township")
    a4: str | None = _civic("city division, borough")
    a5: str | None = _civic("neighbourhood, block")
    a6: str | None = _civic("street group (legacy)")
    prm: str | None = _civic("road pre-modifier")
    prd: str | None = _civic("leading street direction")
    rd: str | None = _civic("primary road or street")
    sts: str | None = _civic("street suffix")
    pod: str | None = _civic("trailing street suffix")
    pom: str | None = _civic("road post-modifier")
    rdsec: str | None = _civic("road section")
    rdbr: str | None = _civic("road branch")
    rdsubbr: str | None = _civic("road sub-branch")
    hno: str | None = _civic("house number")
    hns: str | None = _civic("house number suffix")
    lmk: str | None = _civic("landmark or vanity address")
    loc: str | None = _civic("additional location information")
    flr: str | None = _civic("floor")
    nam: str | None = _civic("name (occupant)")
    pc: str | None = _civic("postal code")
    bld: str | None = _civic("building")
    unit: str | None = _civic("unit (apartment, suite)")
    room: str | None = _civic("room")
    seat: str | None = _civic("seat (desk, cubicle)")
    plc: str | None = _civic("place type")
    pcn: str | None = _civic("postal community name")
    pobox: str | None = _civic("post office box")
    addcode: str | None = _civic("additional code")


class SiteNeedsIn(_In):
    """In-building detail responders need at this site (RAY BAUM's Act dispatchable location):
    a tower needs the floor, a campus the building, shared offices the unit, a hotel the room."""

    building: bool = False
    floor: bool = False
    unit: bool = False
    room: bool = False


class LocationCreate(CivicFields, _In):
    """Validated and normalised by `e911.civic` (country profile, dispatchable location, callback
    as E.164 in the account's region); every failing element comes back in one 422."""

    name: str | None = Field(default=None, max_length=200, description="Label, e.g. 'HQ floor 3'.")
    country: str = Field(description="ISO 3166-1 alpha-2 code (RFC 5139 `country`).")
    callback_number: str = Field(min_length=1, max_length=40, description=(
        "Number a PSAP calls back: E.164 ('+15125550100') or as dialled in the location's country "
        "('(512) 555-0100'); stored as E.164."))
    site_needs: SiteNeedsIn = Field(default_factory=SiteNeedsIn, description=(
        "Which of BLD/FLR/UNIT/ROOM this site needs for a dispatchable location."))

    @field_validator("country")
    @classmethod
    def _country(cls, v: str) -> str:
        v = v.upper()
        if not re.fullmatch(r"[A-Z]{2}", v):
            raise ValueError("must be a two-letter ISO 3166-1 country code")
        return v


class LocationOut(CivicFields, _Out):
    id: int
    account_id: int
    name: str | None
    country: str
    callback_number: str
    created_at: datetime
    validation_status: str = Field(description="valid | unchecked (stored before validation existed).")
    validation_problems: list[dict[str, Any]] = Field(default_factory=list)
    validated_at: datetime | None = None
    site_needs: SiteNeedsIn = Field(default_factory=SiteNeedsIn)
    updated_at: datetime | None = None


# --- devices and lines ----------------------------------------------------------------------

def normalise_mac(value: str) -> str:
    """`00:15:65:AB-CD.EF` style → `001565abcdef`; ValueError when not 12 hex digits."""
    mac = re.sub(r"[\s:.-]", "", value).lower()
    if not _MAC_RE.match(mac):
        raise ValueError("must be 12 hex digits (separators ':' '-' '.' allowed)")
    return mac


class LineSpec(_In):
    user_id: int
    port: int | None = Field(default=None, ge=1, le=64, description="ATA port (FXS ports are "
                             "1..N, FXO ports follow them); default: the next free FXS port.")
    purpose: Literal["voice", "fax"] = Field(default="voice", description="`fax` needs T.38 on the model.")


Transport = Literal["udp", "tcp", "tls"]
UaPolicy = Literal["enforce", "flag", "off"]


def _codec_list(v: list[str] | None) -> list[str] | None:
    if v is None:
        return None
    out = [c.strip().lower() for c in v]
    if len(set(out)) != len(out):
        raise ValueError("codecs must not repeat")
    return out


class DeviceCreate(_In):
    hardware_profile: str | None = Field(default=None, min_length=1, max_length=64, description=(
        "A hardware profile id; leave out to learn the model from the first configuration fetch."))
    name: str = Field(min_length=1, max_length=200)
    mac: str | None = Field(default=None, description="Required for phones and ATAs, absent for softphones.")
    serial: str | None = Field(default=None, max_length=64)
    lines: list[LineSpec] = Field(min_length=1, max_length=1000)
    transport: Transport | None = Field(default=None, description="SIP transport in the config; "
                                        "default: the model's first.")
    codecs: list[str] | None = Field(default=None, max_length=20, description="Codec order for the "
                                     "config; every codec must be supported by the model.")
    ua_policy: UaPolicy = Field(default="flag", description="What a configuration fetch with a "
                                "User-Agent of another model does: enforce (403), flag, off.")
    provisioning_password: str | None = Field(default=None, min_length=8, max_length=128, description=(
        "Protect this device's configuration files with HTTP digest (user = MAC)."))

    @field_validator("mac")
    @classmethod
    def _mac(cls, v: str | None) -> str | None:
        return None if v is None or v == "" else normalise_mac(v)

    @field_validator("codecs")
    @classmethod
    def _codecs(cls, v: list[str] | None) -> list[str] | None:
        return _codec_list(v)


class DeviceUpdate(_In):
    """Only the fields given change; the whole device is checked again."""

    hardware_profile: str | None = Field(default=None, min_length=1, max_length=64)
    name: str | None = Field(default=None, min_length=1, max_length=200)
    mac: str | None = None
    serial: str | None = Field(default=None, max_length=64)
    transport: Transport | None = None
    codecs: list[str] | None = Field(default=None, max_length=20)
    ua_policy: UaPolicy | None = None
    provisioning_password: str | None = Field(default=None, min_length=8, max_length=128)

    @field_validator("mac")
    @classmethod
    def _mac(cls, v: str | None) -> str | None:
        return None if v is None or v == "" else normalise_mac(v)

    @field_validator("codecs")
    @classmethod
    def _codecs(cls, v: list[str] | None) -> list[str] | None:
        return _codec_list(v)

    @field_validator("name", "transport", "ua_policy")
    @classmethod
    def _not_null(cls, v: Any) -> Any:
        if v is None:
            raise ValueError("may be left out but not set to null")
        return v


class DeviceLocation(_In):
    location_id: int


class LineReassign(_In):
    user_id: int


class LineOut(BaseModel):
    id: int
    index: int
    user_id: int
    sip_username: str
    sip_domain: str
    port: int | None = None
    purpose: str = "voice"
    credential_generation: int = 1


class LineCredentials(LineOut):
    sip_password: str = Field(description="Shown once, at creation; only its HA1 digests are stored.")


class IssueOut(BaseModel):
    field: str
    rule: str
    limit: Any = None
    message: str


class LastFetch(BaseModel):
    at: datetime
    file: str | None
    user_agent: str | None
    ip: str | None
    firmware: str | None


class DeviceOut(_Out):
    id: int
    account_id: int
    hardware_profile: str | None
    name: str
    mac: str | None
    serial: str | None = None
    kind: str
    state: str
    location_id: int | None
    transport: str = "udp"
    codecs: list[str] = Field(default_factory=list)
    ua_policy: str = "flag"
    provisioning_digest: bool = False
    created_at: datetime
    located_at: datetime | None
    activated_at: datetime | None
    suspended_at: datetime | None = None
    retired_at: datetime | None = None
    retired_mac: str | None = None
    last_fetch: LastFetch | None = None
    ua_mismatch: str | None = None
    lines: list[LineOut]
    warnings: list[IssueOut] = Field(default_factory=list)


class DeviceCreated(DeviceOut):
    lines: list[LineCredentials]  # type: ignore[assignment]


class BulkDevicesIn(_In):
    devices: list[DeviceCreate] = Field(min_length=1, max_length=20_000)
    all_or_nothing: bool = Field(default=True, description="Refuse the whole batch when any row is "
                                 "bad (default), or create the good rows and report the rest.")


class BulkRowError(BaseModel):
    row: int
    field: str
    rule: str
    limit: Any = None
    message: str


class BulkCreatedDevice(BaseModel):
    row: int
    id: int
    mac: str | None
    lines: list[dict[str, Any]] = Field(description="index, user_id, sip_username, sip_password "
                                        "(shown once), port, purpose")


class BulkDevicesOut(BaseModel):
    created: int
    devices: list[BulkCreatedDevice]
    errors: list[BulkRowError]


# --- licences -------------------------------------------------------------------------------

class LicenceCreate(_In):
    kind: Literal["named", "concurrent"] = Field(description="`concurrent`: several named users, "
                                                 "at most one registered at a time (R4).")
    name: str = Field(min_length=1, max_length=200)
    user_ids: list[int] = Field(min_length=1, max_length=1000)


class LicenceUsers(_In):
    user_ids: list[int] = Field(min_length=1, max_length=1000, description="The licence's users "
                                "from now on; removed users lose access at once (R2).")


class LicenceOut(_Out):
    id: int
    account_id: int
    kind: str
    name: str
    created_at: datetime
    user_ids: list[int]
    revoked_line_ids: list[int] = Field(default_factory=list)


# --- room kits and equipment orders (R40-R42) -------------------------------------------------

KitRole = Literal["audio", "camera", "computer", "input", "installation_sheet"]


class ComponentIn(_In):
    model: str = Field(min_length=1, max_length=120, description="A room-kit hardware profile id "
                       "(its roles come from the catalog), or free text with `role` (keyboard + mouse, "
                       "installation sheet).")
    serial: str = Field(min_length=1, max_length=64)
    role: KitRole | None = None


class RoomKitCreate(_In):
    name: str = Field(min_length=1, max_length=200)
    room_user_id: int = Field(description="The meeting room's named user (kind `room`, R7).")
    components: list[ComponentIn] = Field(min_length=1, max_length=20)
    amount_usd: int = Field(ge=0, le=10_000_000, description="Purchase price (restocking fee base, R42).")
    purchased_at: AwareDatetime | None = Field(default=None, description="Warranty start (R41); "
                                               "default: the order time.")


class OrderCreate(_In):
    description: str = Field(min_length=1, max_length=200)
    amount_usd: int = Field(ge=0, le=10_000_000)
    purchased_at: AwareDatetime | None = None


class ShipIn(_In):
    tracking_number: str = Field(min_length=1, max_length=64)


class ClaimIn(_In):
    kind: Literal["missing_parts", "warranty"]
    component_ids: list[int] = Field(default_factory=list, max_length=20)
    description: str = Field(default="", max_length=500)


class CancelIn(_In):
    written_notice: bool = Field(default=False, description="Required after 24 hours (R42).")


class ComponentOut(_Out):
    id: int
    roles: list[str]
    model: str
    serial: str


class ClaimOut(_Out):
    id: int
    order_id: int
    kind: str
    at: datetime
    component_ids: list[int]
    description: str
    outcome: str
    rule_id: str


class OrderOut(_Out):
    id: int
    account_id: int
    room_kit_id: int | None
    description: str
    amount_usd: int
    state: str
    ordered_at: datetime
    purchased_at: datetime
    tracking_number: str | None
    shipped_at: datetime | None
    delivered_at: datetime | None
    completed_at: datetime | None
    installed_at: datetime | None
    activated_at: datetime | None
    cancelled_at: datetime | None
    restocking_fee_usd: int | None
    tracking_due_at: datetime
    tracking_late: bool
    claim_deadline: datetime | None
    warranty_until: datetime
    claims: list[ClaimOut] = Field(default_factory=list)


class RoomKitOut(_Out):
    id: int
    account_id: int
    room_user_id: int
    name: str
    state: str
    created_at: datetime
    components: list[ComponentOut]
    order: OrderOut


# --- call records ---------------------------------------------------------------------------

MONEY_MAX = Decimal("99999999.9999")  # the CDR table's NUMERIC(12, 4)


def _clip(value: Any, limit: int) -> Any:
    return value[:limit] if isinstance(value, str) else value


class CdrIn(BaseModel):
    """One call attempt as the gateway reports it. Over-long strings are clipped,
    not refused: a call record must not be lost for a long URI."""

    model_config = ConfigDict(extra="forbid")

    account_id: int | None = None
    call_id: str = Field(min_length=1, max_length=255)
    caller: str = Field(max_length=255)
    callee: str = Field(max_length=255)
    caller_user: int | None = None
    callee_user: int | None = None
    start: AwareDatetime
    answer: AwareDatetime | None = None
    end: AwareDatetime | None = None
    duration_s: float = Field(default=0.0, ge=0.0)
    disposition: Disposition
    sip_code: int | None = Field(default=None, ge=100, le=699)
    reason: str | None = Field(default=None, max_length=255)
    rule_id: str | None = Field(default=None, max_length=8)
    gateway_node: str | None = Field(default=None, max_length=64)
    # Rating (#5): computed by the gateway from the plan (R24 rounding, R28 rates, fair use).
    call_type: CdrCallType = "on-net"
    destination: str | None = Field(default=None, max_length=255,
                                    description="The dialled destination, E.164 when it is a number.")
    billable_s: int = Field(default=0, ge=0, description="Rated seconds (the plan's increment and minimum).")
    rate_per_min: Decimal | None = Field(default=None, ge=0, le=MONEY_MAX, allow_inf_nan=False)
    charge: Decimal = Field(default=Decimal(0), ge=0, le=MONEY_MAX, allow_inf_nan=False)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    overage: bool = False
    plan: str | None = Field(default=None, max_length=40)

    @field_validator("call_id", "caller", "callee", "reason", "destination", mode="before")
    @classmethod
    def _clip255(cls, v: Any) -> Any:
        return _clip(v, 255)

    @field_validator("gateway_node", mode="before")
    @classmethod
    def _clip64(cls, v: Any) -> Any:
        return _clip(v, 64)

    @field_validator("rate_per_min", "charge")
    @classmethod
    def _money(cls, v: Decimal | None) -> Decimal | None:
        """Four decimals, rounded half up: a record is never refused for a long fraction."""
        return None if v is None else money(v)


class CdrOut(_Out):
    id: int
    account_id: int | None
    call_id: str
    caller: str
    callee: str
    caller_user: int | None
    callee_user: int | None
    start: datetime
    answer: datetime | None
    end: datetime | None
    duration_s: float
    disposition: str
    sip_code: int | None
    reason: str | None
    rule_id: str | None
    gateway_node: str | None
    call_type: str
    destination: str | None
    billable_s: int
    rate_per_min: Decimal | None
    charge: Decimal
    currency: str
    overage: bool
    plan: str | None


# --- misc -----------------------------------------------------------------------------------

class AuditOut(_Out):
    id: int
    at: datetime
    actor: str
    action: str
    entity: str
    entity_id: int | None
    account_id: int | None
    detail: dict[str, Any]


class HardwareProfileOut(BaseModel):
    id: str
    vendor: str
    model: str
    kind: str
    sip_lines: int
    max_lines: int
    fxs_ports: int
    fxo_ports: int
    line_keys: int
    codecs: list[str]
    t38: bool
    transports: list[str]
    poe_class: str | None
    network_ports: list[str]
    firmware_pattern: str | None
    ouis: list[str]
    mac_policy: str
    ua_pattern: str | None
    config_format: str
    renderer: str | None
    files_common: list[str]
    files_device: list[str]
    room_kit_roles: list[str]
    notes: str
    provenance: dict[str, str]


# --- usage (#5) -------------------------------------------------------------------------------

class UsageBucketOut(BaseModel):
    calls: int
    answered: int
    duration_s: float = Field(description="Talk time, seconds.")
    minutes: float = Field(description="Talk time, minutes (2 decimals).")
    billable_s: int = Field(description="Rated seconds (R24 increment and minimum).")
    billable_minutes: float
    charges: dict[str, str] = Field(description="Per currency, decimal strings with 4 places.")


class FairUseOut(BaseModel):
    rule_id: str
    basis: str
    counts: str
    over: str
    call_types: list[str] = Field(description="The call types that count against the allowance.")
    users: int = Field(description="Users in the account (authorised users R26, audio users R31).")
    limit_minutes: int
    used_minutes: float = Field(description="Talk time of the counted call types this month.")
    remaining_minutes: float
    exceeded: bool


class UsageOut(BaseModel):
    account_id: int
    month: str
    plan: str
    start: datetime = Field(description="First instant of the month (UTC, inclusive).")
    end: datetime = Field(description="First instant of the next month (exclusive).")
    by_call_type: dict[str, UsageBucketOut]
    totals: UsageBucketOut
    fair_use: FairUseOut | None = Field(description="None when the plan has no fair-use allowance.")
    overage: UsageBucketOut = Field(description="Records the gateway admitted past the allowance.")
