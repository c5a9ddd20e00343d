"""What a dialled string is: on-net extension, domestic, international, toll-free, premium.

Pure: a dialled user part and the caller's region in, a ``Destination`` out.
Policy decides on the type (deposit for international, premium refusal,
blocked prefixes) and rating prices it, so both read the same answer.

Dialling conventions per region are data (``REGIONS`` below): the national
trunk prefix, the international access code, the country code, and the
number ranges that are toll-free or premium.  Numbers are normalised to
E.164 (``+<cc><national number>``) before any prefix comparison.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class CallType(Enum):
    ON_NET = "on-net"
    DOMESTIC = "domestic"
    INTERNATIONAL = "international"
    TOLL_FREE = "toll-free"
    PREMIUM = "premium"
    EMERGENCY = "emergency"
    CONFERENCE = "conference"


@dataclass(frozen=True, slots=True)
class Region:
    country_code: str  # E.164 country code of the region's numbers, without '+'
    trunk_prefix: str  # national dialling prefix ('1' in NANP, '0' in Europe/AU)
    international_prefix: str  # '011' NANP, '00' most of Europe, '0011' AU
    national_length: tuple[int, ...]  # digits after the country code
    toll_free: tuple[str, ...]  # E.164 prefixes
    premium: tuple[str, ...]  # E.164 prefixes of information and premium services
    outside_line: str = ""  # an outside-line digit some lab dial plans keep (US '9')


#: Dialling conventions; the ranges are the public numbering plans' well-known blocks.
REGIONS: dict[str, Region] = {
    "US": Region("1", "1", "011", (10,), ("+1800", "+1833", "+1844", "+1855", "+1866", "+1877", "+1888"),
                 ("+1900", "+1976"), outside_line="9"),
    "CA": Region("1", "1", "011", (10,), ("+1800", "+1833", "+1844", "+1855", "+1866", "+1877", "+1888"),
                 ("+1900", "+1976"), outside_line="9"),
    "UK": Region("44", "0", "00", (9, 10), ("+44800", "+44808"), ("+449", "+44118")),
    "EU": Region("31", "0", "00", (9,), ("+31800",), ("+31900", "+31906", "+31909")),
    "AU": Region("61", "0", "0011", (9,), ("+611800",), ("+61190",)),
}

#: Country codes by length, for splitting an E.164 number (enough for rating; not exhaustive).
_COUNTRY_CODES = {
    "1", "7", "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46",
    "47", "48", "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63", "64", "65",
    "66", "81", "82", "84", "86", "90", "91", "92", "93", "94", "95", "98", "211", "212", "213", "216",
    "218", "220", "221", "222", "223", "224", "225", "226", "227", "228", "229", "230", "231", "232",
    "233", "234", "235", "236", "237", "238", "239", "240", "241", "242", "243", "244", "245", "246",
    "247", "248", "249", "250", "251", "252", "253", "254", "255", "256", "257", "258", "260", "261",
    "262", "263", "264", "265", "266", "267", "268", "269", "290", "291", "297", "298", "299", "350",
    "351", "352", "353", "354", "355", "356", "357", "358", "359", "370", "371", "372", "373", "374",
    "375", "376", "377", "378", "380", "381", "382", "383", "385", "386", "387", "389", "420", "421",
    "423", "500", "501", "502", "503", "504", "505", "506", "507", "508", "509", "590", "591", "592",
    "593", "594", "595", "596", "597", "598", "599", "670", "672", "673", "674", "675", "676", "677",
    "678", "679", "680", "681", "682", "683", "685", "686", "687", "688", "689", "690", "691", "692",
    "850", "852", "853", "855", "856", "880", "882", "883", "886", "960", "961", "962", "963", "964",
    "965", "966", "967", "968", "970", "971", "972", "973", "974", "975", "976", "977", "992", "993",
    "994", "995", "996", "998",
}


@dataclass(frozen=True, slots=True)
class Destination:
    kind: CallType
    e164: str | None  # '+<digits>' for PSTN destinations
    country_code: str | None


def country_code_of(e164: str) -> str | None:
    digits = e164.lstrip("+")
    for n in (1, 2, 3):
        if digits[:n] in _COUNTRY_CODES:
            return digits[:n]
    return None


def to_e164(dialled: str, region: str) -> str | None:
    """Normalise what a phone dialled to E.164, or None when it is not a telephone number."""
    text = dialled.replace("-", "").replace(" ", "").replace(".", "").replace("(", "").replace(")", "")
    if text.startswith("+"):
        return text if text[1:].isdigit() and 7 <= len(text) - 1 <= 15 else None
    if not text.isdigit():
        return None
    r = REGIONS.get(region, REGIONS["US"])
    if r.outside_line and text.startswith(r.outside_line) and len(text) - 1 in (
        *r.national_length, *(n + len(r.trunk_prefix) for n in r.national_length)
    ):
        text = text[len(r.outside_line):]  # 9 + number (lab PBX habit)
    if text.startswith(r.international_prefix) and len(text) > len(r.international_prefix) + 6:
        return "+" + text[len(r.international_prefix):]
    if r.trunk_prefix and text.startswith(r.trunk_prefix) and len(text) - len(r.trunk_prefix) in r.national_length:
        return "+" + r.country_code + text[len(r.trunk_prefix):]
    if len(text) in r.national_length and r.trunk_prefix == "1":  # NANP ten digits
        return "+" + r.country_code + text
    return None


def classify(dialled: str, region: str) -> Destination:
    """Type of a dialled string that is not an extension on the platform (the proxy checks that first)."""
    e164 = to_e164(dialled, region)
    if e164 is None:
        return Destination(CallType.ON_NET, None, None)
    r = REGIONS.get(region, REGIONS["US"])
    cc = country_code_of(e164)
    if e164.startswith(r.toll_free):
        return Destination(CallType.TOLL_FREE, e164, cc)
    if e164.startswith(r.premium):
        return Destination(CallType.PREMIUM, e164, cc)
    if cc == r.country_code:
        return Destination(CallType.DOMESTIC, e164, cc)
    return Destination(CallType.INTERNATIONAL, e164, cc)

