"""Hardware profile catalog: the shipped devices with provenance, the loader's
checks naming file and field, User-Agent matching, and the civic field list."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from e911.civic import CIVIC_FIELDS, CivicAddress
from hardware_profiles.catalog import DEFAULT_DATA_DIR, CatalogError, load_catalog, parse_profile
from provisioning.models import Location
from provisioning.schemas import LocationCreate, LocationOut

CATALOG = load_catalog()

GOOD: dict[str, Any] = {
    "id": "acme-x1", "vendor": "Acme", "model": "X1", "kind": "desk_phone", "sip_lines": 2,
    "mac_policy": "required", "codecs": ["pcmu"], "transports": ["udp"], "config_format": "yealink-cfg",
    "renderer": "yealink", "files_common": ["y000000000001.cfg"], "files_device": ["{mac}.cfg"]}

# The list of real devices, each by its profile id.
REQUIRED_DEVICES = {
    "yealink-t54w": ("desk_phone", 16), "yealink-t46u": ("desk_phone", 16), "yealink-w76p": ("dect", 10),
    "yealink-cp920": ("conference", 1), "poly-vvx450": ("desk_phone", 12),
    "poly-edge-e350": ("desk_phone", 8), "poly-trio-c60": ("conference", 1),
    "cisco-spa112": ("ata", 2), "grandstream-ht802": ("ata", 2), "grandstream-ht813": ("ata", 2),
    "grandstream-ht814": ("ata", 4), "obihai-obi302": ("ata", 4), "softphone-desktop": ("softphone", 1),
    "softphone-mobile": ("softphone", 1), "logitech-rally-bar": ("room_kit_component", 0),
    "logitech-tap-ip": ("room_kit_component", 0), "poly-studio-x30": ("room_kit_component", 0),
    "poly-tc8": ("room_kit_component", 0), "dolby-voice-room": ("room_kit_component", 0),
}


def test_every_listed_device_is_in_the_catalog() -> None:
    for pid, (kind, lines) in REQUIRED_DEVICES.items():
        p = CATALOG.get(pid)
        assert p is not None, pid
        assert (p.kind, p.sip_lines) == (kind, lines), pid


def test_ports_t38_and_codecs_of_the_atas() -> None:
    ht802, ht813, ht814, spa = (CATALOG.get(i) for i in ("grandstream-ht802", "grandstream-ht813",
                                                          "grandstream-ht814", "cisco-spa112"))
    assert ht802 and ht813 and ht814 and spa
    assert (ht802.fxs_ports, ht802.fxo_ports, ht802.t38) == (2, 0, True)
    assert "g722" not in ht802.codecs and "g722" in ht814.codecs  # HT802 lacks G.722 (verified)
    assert (ht813.fxs_ports, ht813.fxo_ports) == (1, 1)
    assert ht813.port_kind(1) == "fxs" and ht813.port_kind(2) == "fxo" and ht813.port_kind(3) is None
    assert ht814.fxs_ports == 4 and spa.fxs_ports == 2 and spa.t38


def test_every_profile_states_provenance_and_phones_say_how_they_provision() -> None:
    for p in CATALOG:
        assert p.provenance, p.id
        if p.kind in ("desk_phone", "dect", "conference", "ata"):
            assert p.ua_pattern and p.files_device and p.config_format != "none", p.id
            assert p.renderer or p.id == "obihai-obi302", p.id  # OBi: format known, no renderer yet
            assert p.mac_policy == "required"
        if p.kind == "softphone":
            assert p.mac_policy == "forbidden" and p.sip_lines == 1 and not p.files_device
        if p.kind == "room_kit_component":
            assert p.room_kit_roles and p.sip_lines == 0


def test_verified_and_unverified_facts() -> None:
    t54w, e350 = CATALOG.get("yealink-t54w"), CATALOG.get("poly-edge-e350")
    assert t54w and e350
    assert t54w.provenance["sip_lines"].startswith("verified:") and t54w.is_verified("sip_lines")
    assert e350.provenance_word("sip_lines") == "unverified" and not e350.is_verified("sip_lines")
    assert not t54w.is_verified("line_keys_that_do_not_exist")


def test_the_room_kits_cover_r40_roles() -> None:
    covered = set(CATALOG.get("logitech-rally-bar").room_kit_roles)  # type: ignore[union-attr]
    covered |= set(CATALOG.get("logitech-tap-ip").room_kit_roles)  # type: ignore[union-attr]
    assert covered == {"audio", "camera", "computer", "input"}
    poly = set(CATALOG.get("poly-studio-x30").room_kit_roles) | set(CATALOG.get("poly-tc8").room_kit_roles)  # type: ignore[union-attr]
    assert poly == covered


# Real User-Agent strings (notes/provisioning.md §1.4) and what they must match.
UAS = [
    ("Yealink SIP-T54W 96.86.0.45 80:5e:c0:d5:7d:72", "yealink-t54w", "96.86.0.45", "805ec0d57d72"),
    ("Yealink SIP-T54W  96.86.0.45 805ec0d57d72", "yealink-t54w", "96.86.0.45", "805ec0d57d72"),
    ("yealink SIP-T46U 108.86.0.90 24:9a:d8:88:d0:f4", "yealink-t46u", "108.86.0.90", "249ad888d0f4"),
    ("Yealink W70B 146.87.0.15 80:5e:0c:1d:65:4e", "yealink-w76p", "146.87.0.15", "805e0c1d654e"),
    ("FileTransport PolycomVVX-VVX_450-UA/5.9.1.0615 Type/Application", "poly-vvx450", "5.9.1.0615", None),
    ("Cisco/SPA112-1.4.1(SR5) (0002FDFF2103)(CBT141400UK)", "cisco-spa112", "1.4.1(SR5)", "0002fdff2103"),
    ("Cisco/SPA112-1.3.2(014)", "cisco-spa112", "1.3.2(014)", None),
    ("Grandstream Model HW HT802V2 V1.0A SW 1.0.5.4 DevId ec74d763e419", "grandstream-ht802", "1.0.5.4",
     "ec74d763e419"),
    ("Grandstream Model HW HT814 SW 1.0.9.1 DevId c074ad273a10", "grandstream-ht814", "1.0.9.1", "c074ad273a10"),
]


@pytest.mark.parametrize(("ua", "profile", "firmware", "mac"), UAS)
def test_real_user_agents_match_exactly_one_profile(ua: str, profile: str, firmware: str, mac: str | None) -> None:
    matches = CATALOG.match_ua(ua)
    assert [(m.profile_id, m.firmware, m.mac) for m in matches] == [(profile, firmware, mac)]


@pytest.mark.parametrize("ua", ["Mozilla/5.0 (X11; Linux x86_64)", "curl/8.5.0", "",
                                "Yealink SIP-T48G 35.72.0.6 00:15:65:5c:60:82",
                                "Grandstream Model HW GXP2135 SW 1.0.7.97 DevId 000b828aa872"])
def test_other_user_agents_match_nothing(ua: str) -> None:
    assert CATALOG.match_ua(ua) == []


def test_firmware_pattern() -> None:
    t54w = CATALOG.get("yealink-t54w")
    assert t54w is not None
    assert t54w.firmware_ok("96.86.0.45") and t54w.firmware_ok("96.87.0.15")
    assert t54w.firmware_ok("28.72.0.1") is False
    assert CATALOG.get("generic-room-pc").firmware_ok("1.0") is None  # type: ignore[union-attr]


def test_file_names_and_ouis() -> None:
    t54w, vvx = CATALOG.get("yealink-t54w"), CATALOG.get("poly-vvx450")
    assert t54w and vvx
    assert t54w.file_names("805ec0d57d72") == ("805ec0d57d72.cfg",)
    assert vvx.file_names("0004f2aabbcc") == ("0004f2aabbcc.cfg", "0004f2aabbcc-phone.cfg")
    assert CATALOG.vendor_of_oui("001565") == "Yealink"
    assert CATALOG.vendor_of_oui("0004f2") == "Poly"
    assert CATALOG.vendor_of_oui("abcdef") is None
    assert {p.id for p in CATALOG.common_files()["y000000000096.cfg"]} == {"yealink-t54w"}


@pytest.mark.parametrize(("patch", "field"), [
    ({"kind": "toaster"}, "kind"),
    ({"sip_lines": 0}, "sip_lines"),
    ({"sip_lines": True}, "sip_lines"),
    ({"mac_policy": "maybe"}, "mac_policy"),
    ({"id": "Has Spaces"}, "id"),
    ({"vendor": ""}, "vendor"),
    ({"transports": ["carrier-pigeon"]}, "transports"),
    ({"codecs": ["mp3"]}, "codecs"),
    ({"ouis": ["00:15"]}, "ouis"),
    ({"colour": "red"}, "colour"),
    ({"t38": "yes"}, "t38"),
    ({"fxs_ports": 2}, "fxs_ports"),                              # ports on a desk phone
    ({"kind": "ata"}, "fxs_ports"),                               # an ATA without ports
    ({"kind": "softphone", "mac_policy": "required"}, "mac_policy"),
    ({"ua_pattern": "(unclosed"}, "ua_pattern"),
    ({"ua_pattern": "^Acme X1"}, "ua_pattern"),                   # no firmware group
    ({"files_common": ["{mac}.cfg"]}, "files_common"),
    ({"files_device": ["common.cfg"]}, "files_device"),
    ({"files_device": ["../../etc/passwd{mac}"]}, "files_device"),
    ({"config_format": "none"}, "renderer"),
    ({"config_format": "docx"}, "config_format"),
    ({"room_kit_roles": ["audio"]}, "room_kit_roles"),            # roles on a phone
    ({"provenance": {"sip_lines": "trust me"}}, "provenance.sip_lines"),
    ({"provenance": {"sip_lines": "verified:"}}, "provenance.sip_lines"),   # verified without a source
    ({"provenance": {"weight": "verified: scale"}}, "provenance.weight"),
])
def test_bad_profile_names_file_and_field(patch: dict[str, object], field: str) -> None:
    data = {**GOOD, **patch}
    data = {k: v for k, v in data.items() if v is not None}
    with pytest.raises(CatalogError) as err:
        parse_profile(data, "acme-x1.toml")
    assert err.value.field == field and err.value.source == "acme-x1.toml"


def test_good_profile_parses() -> None:
    p = parse_profile(GOOD, "acme-x1.toml")
    assert p.max_lines == 2 and p.is_verified("sip_lines") is False


def test_loader_checks_file_name_toml_and_oui_owners(tmp_path: Path) -> None:
    t54w = (DEFAULT_DATA_DIR / "yealink-t54w.toml").read_text()
    (tmp_path / "acme-x2.toml").write_text(t54w)
    with pytest.raises(CatalogError, match="must match the file name"):
        load_catalog(tmp_path)
    (tmp_path / "acme-x2.toml").write_text("id = [unterminated")
    with pytest.raises(CatalogError, match="invalid TOML"):
        load_catalog(tmp_path)
    (tmp_path / "acme-x2.toml").unlink()
    with pytest.raises(CatalogError, match="no hardware profiles"):
        load_catalog(tmp_path)
    (tmp_path / "yealink-t54w.toml").write_text(t54w)
    (tmp_path / "fake-x.toml").write_text(t54w.replace('id = "yealink-t54w"', 'id = "fake-x"')
                                          .replace('vendor = "Yealink"', 'vendor = "Fake"'))
    with pytest.raises(CatalogError, match=r"001565 already belongs to (Fake|Yealink)"):
        load_catalog(tmp_path)


def test_civic_fields_agree_across_layers() -> None:
    assert tuple(f.name for f in fields(CivicAddress)) == CIVIC_FIELDS
    assert set(CIVIC_FIELDS) <= set(Location.model_fields)
    assert set(CIVIC_FIELDS) <= set(LocationCreate.model_fields)
    assert set(CIVIC_FIELDS) <= set(LocationOut.model_fields)


def test_civic_elements_in_schema_order() -> None:
    addr = CivicAddress(country="US", room="301", a1="TX", hno="100", rd="Congress")
    assert list(addr.elements()) == ["country", "a1", "rd", "hno", "room"]
