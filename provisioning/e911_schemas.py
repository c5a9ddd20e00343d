"""Request/response shapes of the E911 API and of the gateway's E911 records (issue #4).

Kept apart from `provisioning.schemas` (which holds the location and account
shapes these build on) so the E911 surface reads in one place: location
updates and dry runs, R15 notices, R13 prompts and device state, R11 outages,
account E911 settings, and the records the gateway writes (registrations,
emergency calls, PSAP verdicts, Kari's Law notifications).

Records from the gateway (`RegistrationEvent`, `EmergencyCallIn`,
`PsapCallIn`) ignore unknown keys instead of refusing them: an emergency
call record must never be dropped because the gateway added a field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from provisioning.schemas import CivicFields, SiteNeedsIn

OutageKind = Literal["power", "internet", "network_blocked"]
StalePolicy = Literal["use_last", "national_centre"]
RouteKind = Literal["psap", "national_centre", "refuse"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore")


# --- locations ---------------------------------------------------------------------------------

class LocationUpdate(CivicFields, _In):
    """Only the fields given change (null clears a civic element); the whole
    location is validated again and stored only when it is still dispatchable."""

    name: str | None = Field(default=None, max_length=200)
    country: str | None = Field(default=None, description="ISO 3166-1 alpha-2; cannot be cleared.")
    callback_number: str | None = Field(default=None, min_length=1, max_length=40)
    site_needs: SiteNeedsIn | None = None

    @field_validator("country", "callback_number", "site_needs")
    @classmethod
    def _not_null(cls, v: Any) -> Any:
        if v is None:
            raise ValueError("may be left out but not set to null")
        return v

    @field_validator("country")
    @classmethod
    def _country(cls, v: str) -> str:
        return v.upper()


class LocationProblem(BaseModel):
    """One failing element, in the same shape as a 422 `detail[]` entry."""

    type: str = "value_error"
    loc: list[str | int]
    msg: str
    field: str
    element: str
    problem: str
    rule: str
    limit: Any = None
    message: str


class LocationCheckOut(BaseModel):
    """A dry run: what would be stored, and what is wrong with it."""

    valid: bool
    problems: list[LocationProblem]
    civic: dict[str, str] = Field(description="The normalised civic elements (lower-case RFC 5139 names).")
    callback_number: str | None = Field(description="E.164, or null when it cannot be converted.")
    formatted: str
    site_needs: SiteNeedsIn


# --- accounts ----------------------------------------------------------------------------------

def check_http_url(v: str) -> str:
    parts = urlsplit(v)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    return v


class AccountE911Update(_In):
    """`PATCH /accounts/{id}`: the account's E911 settings."""

    stale_policy: StalePolicy | None = Field(default=None, description=(
        "R13: a stale device's emergency call uses the last registered location with a warning "
        "(use_last) or goes to the national emergency call centre without location (national_centre)."))
    notification_url: str | None = Field(default=None, max_length=500, description=(
        "Kari's Law: the webhook that receives a POST when an emergency call starts; null removes it."))

    @field_validator("stale_policy")
    @classmethod
    def _policy_not_null(cls, v: str | None) -> str:
        if v is None:
            raise ValueError("may be left out but not set to null")
        return v

    @field_validator("notification_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return None if v is None else check_http_url(v)


# --- R15 notices ---------------------------------------------------------------------------------

class NoticeAck(_In):
    acknowledged_by: str | None = Field(default=None, max_length=200, description=(
        "Who acknowledged (a name or named user id); default: the API principal."))


class NoticeOut(_Out):
    id: int
    account_id: int
    device_id: int
    kind: str
    text: str
    sent_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None


# --- R13 prompts and device E911 state -------------------------------------------------------------

class PromptOut(_Out):
    id: int
    account_id: int
    device_id: int
    created_at: datetime
    reason: str
    location_id: int | None
    fingerprint: dict[str, str] | None
    previous_fingerprint: dict[str, str] | None
    status: str
    resolved_at: datetime | None
    resolved_by: str | None


class DeviceE911Out(BaseModel):
    """Everything that decides where this device's emergency call goes (R10-R15)."""

    device_id: int
    account_id: int
    state: str
    kind: str
    nomadic: bool
    location_id: int | None
    location_valid: bool
    location_forwarding: bool
    forwarding_reason: str
    location_stale: bool
    stale_reason: str | None
    stale_since: datetime | None
    last_fingerprint: dict[str, str] | None
    fingerprint_at: datetime | None
    notice: NoticeOut | None
    open_prompts: int
    outages: list[str]
    stale_policy: str


# --- R11 outages -------------------------------------------------------------------------------------

class OutageIn(_In):
    kind: OutageKind = Field(description="power | internet | network_blocked (the customer's network "
                             "blocks the platform): emergency calls from this site fail (R11).")
    note: str | None = Field(default=None, max_length=500)


class OutageOut(_Out):
    id: int
    account_id: int
    location_id: int
    kind: str
    note: str | None
    started_at: datetime
    ended_at: datetime | None
    active: bool


# --- records written by the gateway ----------------------------------------------------------------

class FingerprintIn(_Record):
    subnet: str = Field(min_length=1, max_length=64)
    contact_host: str = Field(min_length=1, max_length=255)


class RegistrationEvent(_Record):
    """One REGISTER's network fingerprint (`e911.moves.fingerprint(...).as_dict()`)."""

    device_id: int
    fingerprint: FingerprintIn
    at: AwareDatetime


class EmergencyCallIn(_Record):
    """One emergency or test call as the gateway decided it (gateway.emergency.EmergencyRoute)
    plus what it sent. Sent again with the same `call_id` to add answer/end times."""

    call_id: str = Field(min_length=1, max_length=255)
    psap_call_id: str | None = Field(default=None, max_length=255, description=(
        "The Call-ID the PSAP simulator saw, when not `call_id`."))
    account_id: int | None = None
    device_id: int | None = None
    location_id: int | None = None
    caller: str = Field(default="", max_length=255)
    dialled: str = Field(min_length=1, max_length=255)
    service_urn: str | None = Field(default=None, max_length=64)
    is_test: bool = False
    route_kind: RouteKind
    code: str = Field(min_length=1, max_length=64)
    rule_id: str | None = Field(default=None, max_length=8)
    reason: str = Field(default="", max_length=500)
    sip_status: int | None = Field(default=None, ge=100, le=699)
    with_location: bool = False
    callback: str | None = Field(default=None, max_length=32)
    pidf: str | None = Field(default=None, max_length=64 * 1024, description="The exact PIDF-LO sent.")
    content_id: str | None = Field(default=None, max_length=255)
    warnings: list[str] = Field(default_factory=list, max_length=20)
    started_at: AwareDatetime
    answered_at: AwareDatetime | None = None
    ended_at: AwareDatetime | None = None
    gateway_node: str | None = Field(default=None, max_length=64)

    @field_validator("pidf", mode="before")
    @classmethod
    def _text(cls, v: Any) -> Any:
        return v.decode("utf-8", "replace") if isinstance(v, bytes) else v

    @field_validator("caller", mode="before")
    @classmethod
    def _clip_caller(cls, v: Any) -> Any:  # clipped, not refused: the record must not be lost
        return v[:255] if isinstance(v, str) else v

    @field_validator("reason", mode="before")
    @classmethod
    def _clip_reason(cls, v: Any) -> Any:
        return v[:500] if isinstance(v, str) else v


class PsapCallIn(_Record):
    """`gateway.psap.PsapCall.to_dict()`; the whole dict is kept, these keys are indexed."""

    call_id: str = Field(min_length=1, max_length=255)
    role: str = Field(max_length=24)
    verdict: str = Field(max_length=8)
    state: str = Field(max_length=16)
    status: int | None = None
    device_id: str | None = Field(default=None, max_length=255)
    received_at: AwareDatetime


class EmergencyCallOut(_Out):
    id: int
    call_id: str
    psap_call_id: str | None
    account_id: int | None
    device_id: int | None
    location_id: int | None
    caller: str
    dialled: str
    service_urn: str | None
    is_test: bool
    route_kind: str
    code: str
    rule_id: str | None
    reason: str
    sip_status: int | None
    with_location: bool
    callback: str | None
    pidf: str | None
    content_id: str | None
    warnings: list[str]
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    gateway_node: str | None
    psap: dict[str, Any] | None = Field(default=None, description=(
        "The PSAP simulator's record of this call (verdict, checks, PIDF-LO received), if any."))


class NotificationOut(_Out):
    id: int
    call_id: str
    account_id: int | None
    channel: str
    url: str | None
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    payload: dict[str, Any]
    created_at: datetime
    sent_at: datetime | None
    updated_at: datetime
