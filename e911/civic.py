"""Civic addresses (RFC 5139 `civicAddress`): elements, country profiles, validation.

Why here and not in provisioning: the E911 layer owns what a civic address
*is* and when it is good enough to send a fire engine to; provisioning only
stores one per Location and answers 422 with the `Problem`s returned here.

- `CIVIC_FIELDS` is the element order of the RFC 5139 §4 schema (an
  `xs:sequence`, so order matters on the wire); the Python names are the
  lowercased element names (`A1` → `a1`, `HNO` → `hno`). Provisioning's
  columns and API fields use the same names.
- A `CountryProfile` (data: `e911/data/countries.toml`) says which fields a
  street address needs in that country and how values are normalised
  (US state names → USPS codes, ZIP+4, Canadian and UK postcode spacing …).
- `validate()` returns machine-readable `Problem(field, problem, message)`
  rows instead of raising, so an API can list every failing element at once.
- A *dispatchable location* (RAY BAUM's Act, 47 CFR 9.3) is the validated
  street address plus the in-building detail (building, floor, unit, room)
  the site needs; `dispatchable_problems()` checks that second part.
- `to_e164()` turns a callback number as typed into E.164 using the
  country's calling code and trunk prefix.

Pure: no I/O beyond reading the packaged TOML once.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from functools import cache
from pathlib import Path
from typing import Any

#: element name → short meaning (RFC 4776 §3.4 and RFC 5139 §3), in RFC 5139 schema order
CIVIC_ELEMENTS: dict[str, str] = {
    "country": "ISO 3166-1 alpha-2 country code",
    "a1": "national subdivision (state, province, region)",
    "a2": "county, parish, district",
    "a3": "city, township",
    "a4": "city division, borough",
    "a5": "neighbourhood, block",
    "a6": "street group (legacy)",
    "prm": "road pre-modifier",
    "prd": "leading street direction",
    "rd": "primary road or street",
    "sts": "street suffix",
    "pod": "trailing street suffix",
    "pom": "road post-modifier",
    "rdsec": "road section",
    "rdbr": "road branch",
    "rdsubbr": "road sub-branch",
    "hno": "house number",
    "hns": "house number suffix",
    "lmk": "landmark or vanity address",
    "loc": "additional location information",
    "flr": "floor",
    "nam": "name (residence or office occupant)",
    "pc": "postal code",
    "bld": "building",
    "unit": "unit (apartment, suite)",
    "room": "room",
    "seat": "seat (desk, cubicle, workstation)",
    "plc": "place type",
    "pcn": "postal community name",
    "pobox": "post office box",
    "addcode": "additional code",
}

CIVIC_FIELDS: tuple[str, ...] = tuple(CIVIC_ELEMENTS)

#: Python field name → RFC 5139 element name (`a1` → `A1`, `country` stays `country`)
ELEMENT_NAMES: dict[str, str] = {f: (f if f == "country" else f.upper()) for f in CIVIC_FIELDS}
#: RFC 5139 element name → Python field name
FIELD_BY_ELEMENT: dict[str, str] = {v: k for k, v in ELEMENT_NAMES.items()}

#: fields that describe where *inside* a building the caller is (RAY BAUM's in-building detail)
IN_BUILDING_FIELDS: tuple[str, ...] = ("bld", "flr", "unit", "room", "seat", "loc")

#: longest element value accepted (provisioning's column limit)
MAX_ELEMENT_LENGTH = 200

DATA_DIR = Path(__file__).with_name("data")


@dataclass(frozen=True, slots=True)
class CivicAddress:
    """One civic address; every element optional except `country`."""

    country: str
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

    def elements(self) -> dict[str, str]:
        """The elements that are set, in schema order (what a PIDF-LO would carry)."""
        return {k: v for k, v in asdict(self).items() if v is not None and v != ""}

    def rfc_elements(self) -> dict[str, str]:
        """Like `elements()`, keyed by the RFC 5139 element names (`A1`, `HNO` …)."""
        return {ELEMENT_NAMES[k]: v for k, v in self.elements().items()}

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> CivicAddress:
        """Build from a dict keyed by field names (`a1`) or element names (`A1`).

        Keys that are not civic elements (`id`, `callback_number`, `name` …)
        are ignored, so a provisioning Location row can be passed as is.
        Values are converted to `str`; `None` and "" mean "not set".
        """
        values: dict[str, str | None] = {}
        for key, value in data.items():
            name = key if key in ELEMENT_NAMES else FIELD_BY_ELEMENT.get(key)
            if name is None:
                continue
            values[name] = None if value is None or value == "" else str(value)
        country = values.pop("country", None)
        return cls(country=country or "", **values)


@dataclass(frozen=True, slots=True)
class Problem:
    """One failing element: `field` is the lower-case field name (`hno`, `callback_number`)."""

    field: str
    problem: str  # required | required_one_of | invalid_format | unknown_subdivision | not_numeric |
    #               too_long | control_characters | invalid_country | unsupported_country |
    #               invalid_value | not_in_building | required_for_dispatch | invalid_number
    message: str

    @property
    def element(self) -> str:
        """The RFC 5139 element name when the field is one (`HNO`), else the field name."""
        return ELEMENT_NAMES.get(self.field, self.field)

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "element": self.element, "problem": self.problem,
                "message": self.message}


@dataclass(frozen=True, slots=True)
class CountryProfile:
    """What one country's street addresses and phone numbers look like (see countries.toml)."""

    country: str
    name: str
    lang: str
    required: tuple[str, ...]
    required_any: tuple[tuple[str, ...], ...] = ()
    postal_code: re.Pattern[str] | None = None
    postal_format: str = "upper"
    numeric_hno: bool = False
    subdivisions: frozenset[str] = frozenset()
    subdivision_names: Mapping[str, str] = field(default_factory=dict)
    street_style: str | None = None
    calling_code: str = ""
    trunk_prefix: str = ""
    international_prefix: str = "00"
    national_lengths: tuple[int, int] = (4, 14)


class ProfileError(ValueError):
    """The country profile data file is malformed (raised when loading it)."""


_PROFILE_KEYS = {"name", "lang", "required", "required_any", "postal_code", "postal_format",
                 "numeric_hno", "subdivisions", "subdivision_names", "street_style", "calling_code",
                 "trunk_prefix", "international_prefix", "national_lengths"}
_POSTAL_FORMATS = {"upper", "us_zip", "ca", "gb", "ie", "nl", "digits", "none"}


def load_profiles(path: Path | None = None) -> dict[str, CountryProfile]:
    """Read and check a countries TOML file (default: the packaged `data/countries.toml`)."""
    source = path or DATA_DIR / "countries.toml"
    try:
        raw = tomllib.loads(source.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ProfileError(f"{source}: {exc}") from exc
    profiles: dict[str, CountryProfile] = {}
    for code, row in raw.items():
        where = f"{source.name} [{code}]"
        if not re.fullmatch(r"[A-Z]{2}", code) or not isinstance(row, dict):
            raise ProfileError(f"{where}: tables must be ISO 3166-1 alpha-2 codes")
        unknown = set(row) - _PROFILE_KEYS
        if unknown:
            raise ProfileError(f"{where}: unknown keys {sorted(unknown)}")
        required = tuple(row.get("required", ("country",)))
        groups = tuple(tuple(g) for g in row.get("required_any", ()))
        for name in (*required, *(f for g in groups for f in g)):
            if name not in ELEMENT_NAMES:
                raise ProfileError(f"{where}: {name!r} is not a civic field")
        postal_format = row.get("postal_format", "upper")
        if postal_format not in _POSTAL_FORMATS:
            raise ProfileError(f"{where}: postal_format must be one of {sorted(_POSTAL_FORMATS)}")
        lengths = row.get("national_lengths", [4, 14])
        if len(lengths) != 2 or not 1 <= lengths[0] <= lengths[1] <= 14:
            raise ProfileError(f"{where}: national_lengths must be [min, max] within 1..14")
        pattern = row.get("postal_code")
        try:
            compiled = re.compile(pattern) if pattern else None
        except re.error as exc:
            raise ProfileError(f"{where}: postal_code: {exc}") from exc
        profiles[code] = CountryProfile(
            country=code, name=row.get("name", code), lang=row.get("lang", "en"),
            required=required, required_any=groups, postal_code=compiled,
            postal_format=postal_format, numeric_hno=bool(row.get("numeric_hno", False)),
            subdivisions=frozenset(row.get("subdivisions", ())),
            subdivision_names=dict(row.get("subdivision_names", {})),
            street_style=row.get("street_style"), calling_code=str(row.get("calling_code", "")),
            trunk_prefix=str(row.get("trunk_prefix", "")),
            international_prefix=str(row.get("international_prefix", "00")),
            national_lengths=(int(lengths[0]), int(lengths[1])),
        )
    return profiles


@cache
def default_profiles() -> Mapping[str, CountryProfile]:
    """The packaged profiles, read once (immutable data, not state)."""
    return load_profiles()


def profile_for(country: str, profiles: Mapping[str, CountryProfile] | None = None) -> CountryProfile | None:
    return (profiles if profiles is not None else default_profiles()).get(country.upper())


# --- normalisation ------------------------------------------------------------------------

#: USPS Publication 28 street suffix abbreviations (the common ones)
USPS_SUFFIXES: dict[str, str] = {
    "ALLEY": "ALY", "AVENUE": "AVE", "AV": "AVE", "BOULEVARD": "BLVD", "CIRCLE": "CIR",
    "COURT": "CT", "CRESCENT": "CRES", "DRIVE": "DR", "EXPRESSWAY": "EXPY", "FREEWAY": "FWY",
    "HIGHWAY": "HWY", "LANE": "LN", "PARKWAY": "PKWY", "PLACE": "PL", "PLAZA": "PLZ",
    "ROAD": "RD", "ROUTE": "RTE", "SQUARE": "SQ", "STREET": "ST", "STR": "ST", "TERRACE": "TER",
    "TRAIL": "TRL", "POINT": "PT", "TURNPIKE": "TPKE", "CENTER": "CTR", "CAUSEWAY": "CSWY",
}
#: street directionals, spelled out → abbreviation
DIRECTIONALS: dict[str, str] = {
    "NORTH": "N", "SOUTH": "S", "EAST": "E", "WEST": "W", "NORTHEAST": "NE", "NORTHWEST": "NW",
    "SOUTHEAST": "SE", "SOUTHWEST": "SW",
}
_DIRECTIONAL_CODES = frozenset(DIRECTIONALS.values())


def _clean(value: str | None) -> str | None:
    """Trim and collapse whitespace (what xs:token does on the wire); "" becomes None."""
    if value is None:
        return None
    text = " ".join(value.split())
    return text or None


def _postal(value: str, style: str) -> str:
    text = value.upper()
    if style == "us_zip":
        digits = re.sub(r"[\s-]", "", text)
        if re.fullmatch(r"\d{9}", digits):
            return f"{digits[:5]}-{digits[5:]}"
        return digits if re.fullmatch(r"\d{5}", digits) else text
    if style in ("ca", "gb"):
        compact = text.replace(" ", "")
        if 5 <= len(compact) <= 7:
            return f"{compact[:-3]} {compact[-3:]}"
        return text
    if style == "ie":  # Eircode: 3-character routing key, then the 4-character identifier
        compact = text.replace(" ", "")
        return f"{compact[:3]} {compact[3:]}" if len(compact) == 7 else text
    if style == "nl":
        compact = text.replace(" ", "")
        if re.fullmatch(r"\d{4}[A-Z]{2}", compact):
            return f"{compact[:4]} {compact[4:]}"
        return text
    if style == "digits":
        return text.replace(" ", "")
    if style == "none":
        return value
    return text


def _abbreviate(value: str, table: Mapping[str, str]) -> str:
    key = value.upper().rstrip(".")
    return table.get(key, key)


def normalise(addr: CivicAddress, profiles: Mapping[str, CountryProfile] | None = None) -> CivicAddress:
    """Canonical spelling of an address, so that equal places compare equal.

    Always: whitespace trimmed and collapsed, empty strings dropped, country
    upper-cased. With a country profile: A1 names mapped to their codes, the
    postal code formatted (ZIP+4, "K1A 0B1", "SW1A 1AA", "D02 X285", "1012 AB"), a
    numeric house number's trailing letters moved to HNS, and for US
    addresses USPS suffixes/directionals ("Street" → "ST", "North" → "N").
    Values that do not fit are left as typed, for `validate()` to report.
    """
    values = {k: _clean(v) for k, v in asdict(addr).items()}
    country = (values.pop("country") or "").upper()
    profile = profile_for(country, profiles) if country else None
    if profile is not None:
        a1 = values.get("a1")
        if a1 and profile.subdivisions:
            code = a1.upper()
            values["a1"] = code if code in profile.subdivisions else profile.subdivision_names.get(code, a1)
        pc = values.get("pc")
        if pc:
            values["pc"] = _postal(pc, profile.postal_format)
        hno = values.get("hno")
        if hno and profile.numeric_hno and not values.get("hns"):
            m = re.fullmatch(r"(\d+)\s*([A-Za-z]{1,2}|1/2)", hno)
            if m:
                values["hno"], values["hns"] = m.group(1), m.group(2).upper()
        if profile.street_style == "usps":
            for name in ("prd", "pod"):
                if values.get(name):
                    values[name] = _abbreviate(values[name] or "", DIRECTIONALS)
            if values.get("sts"):
                values["sts"] = _abbreviate(values["sts"] or "", USPS_SUFFIXES)
    return CivicAddress(country=country, **values)


# --- validation ---------------------------------------------------------------------------

def _has_control(text: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cf") for ch in text)


def validate(addr: CivicAddress, profiles: Mapping[str, CountryProfile] | None = None) -> list[Problem]:
    """Every reason this (normalised) address is not a routable street address; [] when it is.

    Checks the country code, every element's length and characters, then the
    country profile: required fields, at-least-one-of groups, postal code
    pattern, known subdivision codes, numeric house numbers, US directionals.
    A country without a profile is reported (`unsupported_country`) because
    nobody could tell whether its addresses are complete.
    """
    problems: list[Problem] = []
    for name, value in addr.elements().items():
        if len(value) > MAX_ELEMENT_LENGTH:
            problems.append(Problem(name, "too_long", f"{ELEMENT_NAMES[name]} is longer than "
                                    f"{MAX_ELEMENT_LENGTH} characters"))
        if _has_control(value):
            problems.append(Problem(name, "control_characters",
                                    f"{ELEMENT_NAMES[name]} contains control characters"))
    if not re.fullmatch(r"[A-Z]{2}", addr.country or ""):
        problems.append(Problem("country", "invalid_country",
                                "country must be an ISO 3166-1 alpha-2 code in upper case (e.g. US)"))
        return problems
    profile = profile_for(addr.country, profiles)
    if profile is None:
        known = ", ".join(sorted(profiles if profiles is not None else default_profiles()))
        problems.append(Problem("country", "unsupported_country",
                                f"no address profile for {addr.country}; supported: {known}"))
        return problems
    present = addr.elements()
    for name in profile.required:
        if name not in present:
            problems.append(Problem(name, "required", f"{ELEMENT_NAMES[name]} "
                                    f"({CIVIC_ELEMENTS[name]}) is required in {profile.name}"))
    for group in profile.required_any:
        if not any(name in present for name in group):
            names = " or ".join(ELEMENT_NAMES[n] for n in group)
            problems.append(Problem(group[0], "required_one_of",
                                    f"one of {names} is required in {profile.name}"))
    pc = present.get("pc")
    if pc and profile.postal_code is not None and not profile.postal_code.fullmatch(pc):
        problems.append(Problem("pc", "invalid_format",
                                f"postal code {pc!r} does not look like a {profile.name} postal code"))
    a1 = present.get("a1")
    if a1 and profile.subdivisions and a1 not in profile.subdivisions:
        problems.append(Problem("a1", "unknown_subdivision",
                                f"{a1!r} is not a {profile.name} subdivision code"))
    hno = present.get("hno")
    if hno and profile.numeric_hno and not hno.isdigit():
        problems.append(Problem("hno", "not_numeric",
                                "HNO holds the numeric part only; put suffixes in HNS"))
    if profile.street_style == "usps":
        for name in ("prd", "pod"):
            direction = present.get(name)
            if direction and direction not in _DIRECTIONAL_CODES:
                problems.append(Problem(name, "invalid_value",
                                        f"{ELEMENT_NAMES[name]} must be one of "
                                        f"{', '.join(sorted(_DIRECTIONAL_CODES))}"))
    return problems


def check(data: Mapping[str, Any], profiles: Mapping[str, CountryProfile] | None = None,
          ) -> tuple[CivicAddress, list[Problem]]:
    """Normalise then validate a dict (API input): the address to store, and what is wrong with it."""
    addr = normalise(CivicAddress.from_mapping(data), profiles)
    return addr, validate(addr, profiles)


# --- dispatchable location (RAY BAUM's Act) ------------------------------------------------

@dataclass(frozen=True, slots=True)
class SiteNeeds:
    """Which in-building detail responders need at a site (set per site by the customer).

    A single-storey, single-tenant building needs none; a tower needs the
    floor; a campus the building; an apartment block or shared office the
    unit; a hotel or school the room.
    """

    building: bool = False
    floor: bool = False
    unit: bool = False
    room: bool = False

    def required_fields(self) -> tuple[str, ...]:
        wanted = (("bld", self.building), ("flr", self.floor), ("unit", self.unit), ("room", self.room))
        return tuple(name for name, needed in wanted if needed)


def refine(site: CivicAddress, refinement: Mapping[str, str | None] | None) -> CivicAddress:
    """The site's street address plus a device's in-building detail (BLD/FLR/UNIT/ROOM/SEAT/LOC).

    Raises ValueError when the refinement names anything but in-building
    fields: a device may say where in the building it is, never move the
    building (use a different site for that).
    """
    if not refinement:
        return site
    stray = sorted(k for k in refinement if k not in IN_BUILDING_FIELDS)
    if stray:
        raise ValueError(f"a location refinement may only set {', '.join(IN_BUILDING_FIELDS)}; "
                         f"got {', '.join(stray)}")
    changes: dict[str, Any] = {k: _clean(v) for k, v in refinement.items()}
    return replace(site, **changes)


def dispatchable_problems(addr: CivicAddress, needs: SiteNeeds,
                          profiles: Mapping[str, CountryProfile] | None = None) -> list[Problem]:
    """`validate()` plus the in-building detail the site needs: [] means dispatchable."""
    problems = validate(addr, profiles)
    present = addr.elements()
    for name in needs.required_fields():
        if name not in present:
            problems.append(Problem(name, "required_for_dispatch",
                                    f"{ELEMENT_NAMES[name]} ({CIVIC_ELEMENTS[name]}) is needed to find "
                                    "the caller at this site (RAY BAUM's Act dispatchable location)"))
    return problems


def differences(conveyed: CivicAddress, registered: CivicAddress) -> list[tuple[str, str | None, str | None]]:
    """Field-by-field differences as (field, conveyed, registered), in schema order.

    Values are compared after whitespace collapsing only (what xs:token does
    in transit), never after normalisation: a PSAP must see what was registered.
    """
    out: list[tuple[str, str | None, str | None]] = []
    for f in fields(CivicAddress):
        a = _clean(getattr(conveyed, f.name))
        b = _clean(getattr(registered, f.name))
        if a != b:
            out.append((f.name, a, b))
    return out


def format_address(addr: CivicAddress, *, one_line: bool = True) -> str:
    """A human-readable address for read-backs and notifications (not for routing).

    US style: "100 E Main ST, North Tower, Floor 4, Room 410, Springfield, IL 62701, US".
    """
    e = addr.elements()
    number = e.get("hno")
    if number and "hns" in e:
        number += e["hns"] if e["hns"].isalpha() else f" {e['hns']}"
    street = " ".join(v for v in (number, e.get("prm"), e.get("prd"), e.get("rd"),
                                  e.get("sts"), e.get("pod"), e.get("pom")) if v)
    inside = [v for v in (
        e.get("bld"),
        f"Floor {e['flr']}" if "flr" in e else None,
        f"Unit {e['unit']}" if "unit" in e else None,
        f"Room {e['room']}" if "room" in e else None,
        f"Seat {e['seat']}" if "seat" in e else None,
        e.get("loc"),
    ) if v]
    area = " ".join(v for v in (e.get("a1"), e.get("pc")) if v)
    parts = [p for p in (e.get("nam"), e.get("lmk"), street, *inside, e.get("a4"), e.get("a3"), area,
                         e.get("country")) if p]
    return (", " if one_line else "\n").join(parts)


# --- callback numbers (E.164) --------------------------------------------------------------

E164 = re.compile(r"\+[1-9]\d{6,14}")
_VISUAL = re.compile(r"[\s().\-/]")


class CallbackError(ValueError):
    """A callback number that cannot be turned into E.164; `.problem` is machine-readable."""

    def __init__(self, problem: str, message: str) -> None:
        super().__init__(message)
        self.problem = problem
        self.message = message

    def as_problem(self, field_name: str = "callback_number") -> Problem:
        return Problem(field_name, self.problem, self.message)


def is_e164(number: str) -> bool:
    """`+` then 7 to 15 digits, the first not 0 (ITU-T E.164 number in international format)."""
    return E164.fullmatch(number) is not None


def to_e164(number: str, country: str, profiles: Mapping[str, CountryProfile] | None = None) -> str:
    """The callback number in E.164 (`+12175550123`), dialled from `country`.

    Accepts "+…", the country's international prefix ("011…" in NANP,
    "00…" in Europe, "0011…" in Australia) and national numbers (NANP ten
    digits with an optional leading 1; elsewhere the trunk prefix "0" is
    dropped). Visual separators (spaces, dots, dashes, parentheses) are
    ignored. Raises `CallbackError` with a machine-readable problem.
    """
    raw = _VISUAL.sub("", number or "")
    if not raw:
        raise CallbackError("required", "a callback number is required")
    if raw.startswith("+"):
        if not is_e164(raw):
            raise CallbackError("invalid_number", f"{number!r} is not an E.164 number (+ and 7-15 digits)")
        return _check_nanp(raw, number)
    if not raw.isdigit():
        raise CallbackError("invalid_number", f"{number!r} holds characters other than digits")
    profile = profile_for(country, profiles)
    if profile is None or not profile.calling_code:
        raise CallbackError("unsupported_country",
                            f"no numbering profile for {country!r}; give the number as +<country code>…")
    if raw.startswith(profile.international_prefix):
        return to_e164("+" + raw[len(profile.international_prefix):], country, profiles)
    national = raw
    if profile.calling_code == "1" and len(national) == 11 and national.startswith("1"):
        national = national[1:]
    elif profile.trunk_prefix and national.startswith(profile.trunk_prefix):
        national = national[len(profile.trunk_prefix):]
    low, high = profile.national_lengths
    if not low <= len(national) <= high:
        raise CallbackError("invalid_number",
                            f"{number!r} is not a {profile.name} number: expected {low}"
                            f"{'' if low == high else f'-{high}'} national digits")
    e164 = f"+{profile.calling_code}{national}"
    if not is_e164(e164):
        raise CallbackError("invalid_number", f"{number!r} does not make an E.164 number")
    return _check_nanp(e164, number)


def _check_nanp(e164: str, typed: str) -> str:
    """NANP (+1): ten digits, area code and exchange 2-9 and not N11 (so 911-555-0100 fails)."""
    if e164.startswith("+1"):
        rest = e164[2:]
        if (len(rest) != 10 or rest[0] in "01" or rest[3] in "01" or rest[1:3] == "11"
                or rest[4:6] == "11"):
            raise CallbackError("invalid_number", f"{typed!r} is not a North American number "
                                "(NPA-NXX-XXXX: NPA and NXX start 2-9 and are not N11 service codes)")
    return e164


def region_country(region: str, address_country: str | None = None) -> str | None:
    """The country whose numbering plan applies to an account region's callback numbers.

    US/CA/AU map to themselves, UK to GB; EU has no single plan, so the
    address's country is used (None when unknown).
    """
    fixed = {"US": "US", "CA": "CA", "UK": "GB", "GB": "GB", "AU": "AU"}
    code = region.upper()
    if code in fixed:
        return fixed[code]
    return address_country.upper() if address_country else None


def problems_as_dicts(problems: Iterable[Problem]) -> list[dict[str, str]]:
    return [p.as_dict() for p in problems]
