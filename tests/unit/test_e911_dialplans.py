"""Emergency dial plans per region (e911/dialplans.py + e911/data/dialplans.toml)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from e911.civic import DATA_DIR
from e911.dialplans import (
    URN_SOS,
    URN_TEST,
    DialPlanError,
    EmergencyKind,
    classify,
    default_dialplans,
    dialled_string,
    is_sos_urn,
    is_test_urn,
    load_dialplans,
)

E, T, N = EmergencyKind.EMERGENCY, EmergencyKind.TEST, EmergencyKind.NONE

# The table (#4 "Deliver" 3), written out independently of the data file.
EXPECTED_ROWS = {
    ("US", "911"): (E, URN_SOS), ("US", "9911"): (E, URN_SOS), ("US", "933"): (T, URN_TEST),
    ("CA", "911"): (E, URN_SOS), ("CA", "9911"): (E, URN_SOS),
    ("EU", "112"): (E, URN_SOS),
    ("UK", "999"): (E, URN_SOS), ("UK", "112"): (E, URN_SOS),
    ("AU", "000"): (E, URN_SOS), ("AU", "112"): (E, URN_SOS),
}


def _file_rows() -> list[tuple[str, str]]:
    raw = tomllib.loads((DATA_DIR / "dialplans.toml").read_text())
    return [(region, row["dial"]) for region, table in raw["regions"].items() for row in table["numbers"]]


def test_the_data_file_has_exactly_the_expected_rows() -> None:
    assert sorted(_file_rows()) == sorted(EXPECTED_ROWS)


@pytest.mark.parametrize(("region", "dial"), _file_rows())
def test_every_dial_plan_row(region: str, dial: str) -> None:
    kind, urn = EXPECTED_ROWS[(region, dial)]
    for target in (dial, f"sip:{dial}@gw.example.net", f"sip:{dial}@gw.example.net;user=phone",
                   f"tel:{dial};phone-context=+1", f"<sips:{dial}@gw:5061;transport=tls>"):
        result = classify(target, region)
        assert (result.kind, result.urn, result.dialled) == (kind, urn, dial), target
        assert result.rule is not None and result.rule.source and result.legacy


@pytest.mark.parametrize(("dial", "region"), [
    ("112", "US"), ("999", "US"), ("000", "US"), ("933", "CA"), ("933", "EU"), ("911", "EU"),
    ("911", "UK"), ("911", "AU"), ("9112", "EU"), ("91", "US"), ("1911", "US"), ("+1911", "US"),
    ("9111", "US"), ("1001", "US"), ("", "US"), ("sip:alice@gw", "US"),
])
def test_other_numbers_are_not_emergency_calls(dial: str, region: str) -> None:
    result = classify(dial, region)
    assert result.kind is N and result.urn is None and not result.is_emergency


@pytest.mark.parametrize("dial", ["9-1-1", "(911)", "9 1 1", "9.1.1", "9%2D1%2D1"])
def test_visual_separators_are_ignored(dial: str) -> None:
    assert classify(dial, "US").kind is E


@pytest.mark.parametrize(("target", "kind", "urn"), [
    ("urn:service:sos", E, URN_SOS),
    ("URN:service:sos", E, URN_SOS),
    ("urn:service:sos.fire", E, "urn:service:sos.fire"),
    ("urn:service:sos.police", E, "urn:service:sos.police"),
    ("urn:service:sos.unheard-of", E, URN_SOS),
    ("urn:service:test.sos", T, URN_TEST),
    ("urn:service:test.sos.fire", T, "urn:service:test.sos.fire"),
    ("<urn:service:sos>", E, URN_SOS),
    ("urn:service:counseling", N, None),
    ("urn:service:sosx", N, None),
])
@pytest.mark.parametrize("region", ["US", "CA", "EU", "UK", "AU"])
def test_service_urns_are_recognised_in_every_region(target: str, kind: EmergencyKind, urn: str | None,
                                                     region: str) -> None:
    result = classify(target, region)
    assert (result.kind, result.urn) == (kind, urn)
    assert not result.legacy


def test_unknown_region_falls_back_to_every_regions_numbers() -> None:
    for dial in ("911", "112", "999", "000"):
        result = classify(dial, "ZZ")
        assert result.is_emergency and result.region_known is False
    assert classify("1234", "ZZ").kind is N
    assert classify("urn:service:sos", "ZZ").region_known is False


def test_region_codes_are_case_insensitive_and_plans_list_dial_strings() -> None:
    plans = default_dialplans()
    assert plans.classify("999", "uk").is_emergency
    assert plans.dial_strings(T) == {"933"}
    assert plans.dial_strings(E) == {"911", "9911", "112", "999", "000"}
    us = plans.plan("US")
    assert us is not None and us.country == "US" and us.outside_line_prefix == "9"
    eu = plans.plan("EU")
    assert eu is not None and eu.country is None


@pytest.mark.parametrize(("target", "expected"), [
    ("sip:911@gw;user=phone", "911"), ("tel:+1-217-555-0123", "+1-217-555-0123"), ("911", "911"),
    ("911;phone-context=x", "911"), ("911@gw", "911"), ("sip:gw.example.net", ""), ("urn:service:sos", "urn:service:sos"),
])
def test_dialled_string(target: str, expected: str) -> None:
    assert dialled_string(target) == expected


def test_urn_predicates() -> None:
    assert is_sos_urn("urn:service:sos.ambulance") and not is_sos_urn("urn:service:test.sos")
    assert is_test_urn("urn:service:test.sos") and not is_test_urn("urn:service:sos")
    assert not is_sos_urn("sip:911@gw")


@pytest.mark.parametrize(("content", "message"), [
    ('[regions.usa]\n', "two upper-case"),
    ('[regions.US]\n[[regions.US.numbers]]\ndial = "9x1"\nkind = "emergency"\nurn = "urn:service:sos"\n',
     "not a dial string"),
    ('[regions.US]\n[[regions.US.numbers]]\ndial = "911"\nkind = "panic"\nurn = "urn:service:sos"\n', "kind"),
    ('[regions.US]\n[[regions.US.numbers]]\ndial = "933"\nkind = "test"\nurn = "urn:service:sos"\n',
     "does not fit"),
    ('[regions.US]\n[[regions.US.numbers]]\ndial = "911"\nkind = "emergency"\nurn = "urn:service:sos"\n'
     '[[regions.US.numbers]]\ndial = "911"\nkind = "emergency"\nurn = "urn:service:sos"\n', "twice"),
    ("", "no regions"),
    ("[regions", "table declaration"),
])
def test_bad_dial_plan_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "dialplans.toml"
    path.write_text(content)
    with pytest.raises(DialPlanError, match=message):
        load_dialplans(path)


def test_a_custom_plan_file_is_used(tmp_path: Path) -> None:
    path = tmp_path / "dialplans.toml"
    path.write_text('[regions.NZ]\ncountry = "NZ"\n[[regions.NZ.numbers]]\ndial = "111"\nkind = "emergency"\n'
                    'urn = "urn:service:sos"\n')
    plans = load_dialplans(path)
    assert classify("111", "NZ", plans).is_emergency
    assert classify("911", "NZ", plans).kind is N
