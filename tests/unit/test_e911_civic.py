"""Civic addresses: schema order, country profiles, normalisation, validation, dispatchable
location and E.164 callback numbers (e911/civic.py)."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from e911.civic import (
    CIVIC_FIELDS,
    ELEMENT_NAMES,
    IN_BUILDING_FIELDS,
    CallbackError,
    CivicAddress,
    ProfileError,
    SiteNeeds,
    check,
    default_profiles,
    differences,
    dispatchable_problems,
    format_address,
    is_e164,
    load_profiles,
    normalise,
    refine,
    region_country,
    to_e164,
    validate,
)

# RFC 5139 §4 civicAddress sequence, as the notes list it (notes/e911.md §1.1)
RFC5139_ORDER = ["country", "A1", "A2", "A3", "A4", "A5", "A6", "PRM", "PRD", "RD", "STS", "POD",
                 "POM", "RDSEC", "RDBR", "RDSUBBR", "HNO", "HNS", "LMK", "LOC", "FLR", "NAM", "PC",
                 "BLD", "UNIT", "ROOM", "SEAT", "PLC", "PCN", "POBOX", "ADDCODE"]

SPRINGFIELD = {"country": "US", "a1": "IL", "a2": "Sangamon", "a3": "Springfield", "prd": "E",
               "rd": "Main", "sts": "ST", "hno": "100", "flr": "4", "nam": "Example Corp",
               "pc": "62701", "bld": "North Tower", "room": "410"}


def problems_of(data: dict[str, str]) -> set[tuple[str, str]]:
    _, problems = check(data)
    return {(p.field, p.problem) for p in problems}


def test_fields_follow_the_rfc5139_schema_order() -> None:
    assert [ELEMENT_NAMES[f] for f in CIVIC_FIELDS] == RFC5139_ORDER
    assert tuple(f.name for f in fields(CivicAddress)) == CIVIC_FIELDS


def test_elements_come_out_in_schema_order_whatever_the_input_order() -> None:
    addr = CivicAddress.from_mapping({"ROOM": "1", "HNO": "5", "RD": "Elm", "A1": "TX", "country": "US"})
    assert list(addr.rfc_elements()) == ["country", "A1", "RD", "HNO", "ROOM"]


def test_from_mapping_ignores_non_civic_keys_and_empty_values() -> None:
    addr = CivicAddress.from_mapping({**SPRINGFIELD, "id": 7, "callback_number": "+12175550123",
                                      "unit": "", "seat": None})
    assert addr.elements() == SPRINGFIELD


def test_the_notes_example_address_is_valid_and_unchanged_by_normalisation() -> None:
    addr, problems = check(SPRINGFIELD)
    assert problems == []
    assert addr.elements() == SPRINGFIELD


@pytest.mark.parametrize(("given", "field", "expected"), [
    ({"a1": "illinois"}, "a1", "IL"),
    ({"a1": "il"}, "a1", "IL"),
    ({"pc": "627011234"}, "pc", "62701-1234"),
    ({"pc": " 62701 "}, "pc", "62701"),
    ({"sts": "Street"}, "sts", "ST"),
    ({"sts": "Ave."}, "sts", "AVE"),
    ({"prd": "north"}, "prd", "N"),
    ({"pod": "Southwest"}, "pod", "SW"),
    ({"rd": "  Main   Street  "}, "rd", "Main Street"),
    ({"country": "us"}, "country", "US"),
])
def test_us_normalisation(given: dict[str, str], field: str, expected: str) -> None:
    addr = normalise(CivicAddress.from_mapping({**SPRINGFIELD, **given}))
    assert getattr(addr, field) == expected


def test_numeric_house_number_suffix_moves_to_hns() -> None:
    addr = normalise(CivicAddress.from_mapping({**SPRINGFIELD, "hno": "100b"}))
    assert (addr.hno, addr.hns) == ("100", "B")
    half = normalise(CivicAddress.from_mapping({**SPRINGFIELD, "hno": "12 1/2"}))
    assert (half.hno, half.hns) == ("12", "1/2")


@pytest.mark.parametrize(("country", "pc", "expected"), [
    ("CA", "k1a0b1", "K1A 0B1"),
    ("GB", "sw1a2aa", "SW1A 2AA"),
    ("GB", "M1 1AE", "M1 1AE"),
    ("NL", "1012ab", "1012 AB"),
    ("DE", "10 115", "10115"),
    ("IE", "d02x285", "D02 X285"),
])
def test_postal_code_formats(country: str, pc: str, expected: str) -> None:
    assert normalise(CivicAddress(country=country, pc=pc)).pc == expected


@pytest.mark.parametrize(("missing", "problem"), [
    ("a1", "required"), ("a3", "required"), ("rd", "required"), ("hno", "required"), ("pc", "required"),
])
def test_us_profile_required_fields(missing: str, problem: str) -> None:
    data = {k: v for k, v in SPRINGFIELD.items() if k != missing}
    assert problems_of(data) == {(missing, problem)}


def test_every_failing_element_is_reported_at_once() -> None:
    bad = {"country": "US", "a1": "ZZ", "pc": "6270", "hno": "1x2", "prd": "Up"}
    assert problems_of(bad) == {("a3", "required"), ("rd", "required"), ("a1", "unknown_subdivision"),
                                ("pc", "invalid_format"), ("hno", "not_numeric"), ("prd", "invalid_value")}


def test_problem_rows_are_machine_readable() -> None:
    _, problems = check({k: v for k, v in SPRINGFIELD.items() if k != "hno"})
    assert [p.as_dict() for p in problems] == [{
        "field": "hno", "element": "HNO", "problem": "required",
        "message": "HNO (house number) is required in United States"}]


@pytest.mark.parametrize("country", ["US", "CA", "GB", "IE", "DE", "AT", "FR", "NL", "BE", "ES", "IT", "AU"])
def test_each_profile_rejects_an_empty_address_and_names_its_fields(country: str) -> None:
    profile = default_profiles()[country]
    found = problems_of({"country": country})
    assert {(name, "required") for name in profile.required if name != "country"} <= found
    for group in profile.required_any:
        assert (group[0], "required_one_of") in found


@pytest.mark.parametrize("address", [
    {"country": "CA", "a1": "Ontario", "a3": "Ottawa", "rd": "Wellington", "sts": "St", "hno": "111",
     "pc": "K1A 0A9"},
    {"country": "GB", "a3": "London", "rd": "Downing Street", "hno": "10", "pc": "SW1A 2AA"},
    {"country": "GB", "a3": "Bath", "rd": "Royal Crescent", "nam": "No Name House", "pc": "BA1 2LR"},
    {"country": "DE", "a1": "Berlin", "a3": "Berlin", "rd": "Platz der Republik", "hno": "1", "pc": "11011"},
    {"country": "FR", "a3": "Paris", "rd": "Rue de Rivoli", "hno": "99", "pc": "75001"},
    {"country": "NL", "a3": "Amsterdam", "rd": "Dam", "hno": "1", "pc": "1012JS"},
    {"country": "AU", "a1": "New South Wales", "a3": "Sydney", "rd": "Macquarie", "sts": "St",
     "hno": "2", "pc": "2000"},
    {"country": "IE", "a3": "Dublin", "rd": "Merrion Street Upper", "bld": "Government Buildings"},
])
def test_valid_addresses_per_country(address: dict[str, str]) -> None:
    _, problems = check(address)
    assert problems == []


def test_uk_named_house_needs_a_number_a_building_or_a_name() -> None:
    assert problems_of({"country": "GB", "a3": "Bath", "rd": "Royal Crescent", "pc": "BA1 2LR"}) == {
        ("hno", "required_one_of")}


@pytest.mark.parametrize(("country", "problem"), [("XX", "unsupported_country"), ("usa", "invalid_country"),
                                                  ("", "invalid_country")])
def test_country_problems(country: str, problem: str) -> None:
    assert problems_of({"country": country, "a3": "x"}) == {("country", problem)}


def test_long_and_control_character_values_are_refused() -> None:
    found = problems_of({**SPRINGFIELD, "rd": "M" * 201, "nam": "Evil\x07Corp"})
    assert found == {("rd", "too_long"), ("nam", "control_characters")}


def test_dispatchable_location_needs_what_the_site_needs() -> None:
    site = normalise(CivicAddress.from_mapping({k: v for k, v in SPRINGFIELD.items()
                                                 if k not in IN_BUILDING_FIELDS}))
    tower = SiteNeeds(building=True, floor=True, room=True)
    assert {(p.field, p.problem) for p in dispatchable_problems(site, tower)} == {
        ("bld", "required_for_dispatch"), ("flr", "required_for_dispatch"), ("room", "required_for_dispatch")}
    device = refine(site, {"bld": "North Tower", "flr": "4", "room": "410"})
    assert dispatchable_problems(device, tower) == []
    assert dispatchable_problems(site, SiteNeeds()) == []  # a small single-storey office


def test_a_refinement_cannot_move_the_street_address() -> None:
    site = CivicAddress.from_mapping(SPRINGFIELD)
    with pytest.raises(ValueError, match="rd"):
        refine(site, {"flr": "2", "rd": "Elsewhere"})
    assert refine(site, None) is site


def test_differences_are_field_by_field_in_schema_order() -> None:
    registered = CivicAddress.from_mapping(SPRINGFIELD)
    conveyed = CivicAddress.from_mapping({**SPRINGFIELD, "flr": "3", "room": None, "seat": "WS 1"})
    assert differences(conveyed, registered) == [("flr", "3", "4"), ("room", None, "410"),
                                                 ("seat", "WS 1", None)]
    spaced = CivicAddress.from_mapping({**SPRINGFIELD, "rd": " Main "})
    assert differences(spaced, registered) == []  # xs:token collapses whitespace in transit


def test_format_address_reads_like_an_address() -> None:
    addr = CivicAddress.from_mapping({**SPRINGFIELD, "hns": "A"})
    assert format_address(addr) == ("Example Corp, 100A E Main ST, North Tower, Floor 4, Room 410, "
                                     "Springfield, IL 62701, US")
    assert format_address(addr, one_line=False).splitlines()[1] == "100A E Main ST"


@pytest.mark.parametrize(("number", "country", "expected"), [
    ("(217) 555-0123", "US", "+12175550123"),
    ("1-217-555-0123", "US", "+12175550123"),
    ("+1 217 555 0123", "US", "+12175550123"),
    ("011 44 20 7946 0000", "US", "+442079460000"),
    ("613-555-0199", "CA", "+16135550199"),
    ("020 7946 0000", "GB", "+442079460000"),
    ("0044 20 7946 0000", "GB", "+442079460000"),
    ("030 1234567", "DE", "+49301234567"),
    ("01 23 45 67 89", "FR", "+33123456789"),
    ("020-1234567", "NL", "+31201234567"),
    ("(02) 9999 0000", "AU", "+61299990000"),
    ("0011 1 217 555 0123", "AU", "+12175550123"),
    ("06 1234 5678", "IT", "+390612345678"),
    ("912 345 678", "ES", "+34912345678"),
])
def test_callback_numbers_to_e164(number: str, country: str, expected: str) -> None:
    result = to_e164(number, country)
    assert result == expected and is_e164(result)


@pytest.mark.parametrize(("number", "country", "problem"), [
    ("", "US", "required"),
    ("911", "US", "invalid_number"),
    ("555-0100", "US", "invalid_number"),
    ("+1 911 555 0100", "US", "invalid_number"),  # N11 area code
    ("+1 217 911 0100", "US", "invalid_number"),  # N11 exchange
    ("+1 017 555 0100", "US", "invalid_number"),
    ("217555012x", "US", "invalid_number"),
    ("+0123456789", "US", "invalid_number"),
    ("+1234567890123456", "US", "invalid_number"),
    ("020 794", "GB", "invalid_number"),
    ("0201234567", "XX", "unsupported_country"),
])
def test_bad_callback_numbers(number: str, country: str, problem: str) -> None:
    with pytest.raises(CallbackError) as info:
        to_e164(number, country)
    assert info.value.problem == problem
    assert info.value.as_problem().field == "callback_number"


@pytest.mark.parametrize(("region", "address_country", "expected"), [
    ("US", None, "US"), ("CA", "US", "CA"), ("UK", None, "GB"), ("AU", None, "AU"),
    ("EU", "de", "DE"), ("EU", None, None),
])
def test_region_default_numbering_country(region: str, address_country: str | None,
                                          expected: str | None) -> None:
    assert region_country(region, address_country) == expected


def test_profile_file_errors_are_clear(tmp_path: Path) -> None:
    bad = tmp_path / "countries.toml"
    bad.write_text('[US]\nrequired = ["street"]\n')
    with pytest.raises(ProfileError, match="'street' is not a civic field"):
        load_profiles(bad)
    bad.write_text('[usa]\nname = "x"\n')
    with pytest.raises(ProfileError, match="alpha-2"):
        load_profiles(bad)
    bad.write_text('[US]\npostal_code = "("\n')
    with pytest.raises(ProfileError, match="postal_code"):
        load_profiles(bad)
    bad.write_text('[US]\ncolour = "red"\n')
    with pytest.raises(ProfileError, match="unknown keys"):
        load_profiles(bad)


def test_validate_accepts_a_custom_profile_set(tmp_path: Path) -> None:
    path = tmp_path / "countries.toml"
    path.write_text('[SE]\nname = "Sweden"\nrequired = ["country", "a3", "rd"]\n')
    profiles = load_profiles(path)
    assert validate(CivicAddress(country="SE", a3="Stockholm", rd="Drottninggatan"), profiles) == []
    assert [p.problem for p in validate(CivicAddress(country="US"), profiles)] == ["unsupported_country"]
