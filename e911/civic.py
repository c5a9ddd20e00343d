"""Civic address elements (RFC 4776 / RFC 5139 `civicAddress`), pure data.

Why here and not in provisioning: the E911 layer (PIDF-LO rendering,
validation, LoST routing) owns what a civic address *is*; provisioning only
stores one per Location. Issue #2 needs just the element names so the storage
model and the API speak RFC 5139 from day one; validation arrives with the
E911 issue.

`CIVIC_FIELDS` follows the element order of the RFC 5139 schema as far as we
know it (notes/e911.md §6 lists confirming that order as open); the Python
names are the lowercased element names (`A1` → `a1`, `HNO` → `hno`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

#: element name → short meaning (RFC 4776 §3.4 and RFC 5139 §3)
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

