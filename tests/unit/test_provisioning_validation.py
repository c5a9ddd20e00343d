"""A device checked against its hardware profile: every rule at its boundary,
table-driven per model (pure: no database)."""

from __future__ import annotations

from typing import Any

import pytest

from hardware_profiles.catalog import HardwareCatalog, load_catalog, parse_profile
from provisioning.errors import Findings, Invalid
from provisioning.validation import LinePlan, assign_ports, check_device, resolve_profile

CATALOG = load_catalog()
YEALINK_MAC = "001565aabbcc"
GS_MAC = "000b82aabbcc"
POLY_MAC = "0004f2aabbcc"


def run(profile_id: str, *, mac: str | None = None, lines: list[LinePlan] | None = None,
        codecs: tuple[str, ...] = (), transport: str | None = None) -> Findings:
    profile = CATALOG.get(profile_id)
    assert profile is not None
    plans = assign_ports(profile, lines if lines is not None else [LinePlan()])
    return check_device(CATALOG, profile, mac=mac, lines=plans, codecs=codecs, transport=transport)


def errors(f: Findings) -> list[tuple[str, str, Any]]:
    return [(".".join(map(str, i.field)), i.rule, i.limit) for i in f.issues if i.severity == "error"]


def warnings(f: Findings) -> list[tuple[str, str]]:
    return [(".".join(map(str, i.field)), i.rule) for i in f.warnings]


# (profile, kwargs, expected errors) — each row one boundary
CASES: list[tuple[str, dict[str, Any], list[tuple[str, str, Any]]]] = [
    # SIP lines: at the limit fine, one more refused
    ("yealink-t54w", {"mac": YEALINK_MAC, "lines": [LinePlan()] * 16}, []),
    ("yealink-t54w", {"mac": YEALINK_MAC, "lines": [LinePlan()] * 17}, [("lines", "lines.max", 16)]),
    ("grandstream-ht802", {"mac": GS_MAC, "lines": [LinePlan(), LinePlan()]}, []),
    ("grandstream-ht802", {"mac": GS_MAC, "lines": [LinePlan()] * 3},
     [("lines", "lines.max", 2), ("lines.2.port", "port.fxs", 2)]),
    # ATA port index ≤ FXS ports
    ("grandstream-ht814", {"mac": GS_MAC, "lines": [LinePlan(port=4)]}, []),
    ("grandstream-ht814", {"mac": GS_MAC, "lines": [LinePlan(port=5)]}, [("lines.0.port", "port.fxs", 4)]),
    ("grandstream-ht814", {"mac": GS_MAC, "lines": [LinePlan(port=2), LinePlan(port=2)]},
     [("lines.1.port", "port.unique", None)]),
    # an FXO port carries no user line (HT813: port 1 FXS, port 2 FXO)
    ("grandstream-ht813", {"mac": GS_MAC, "lines": [LinePlan(port=1)]}, []),
    ("grandstream-ht813", {"mac": GS_MAC, "lines": [LinePlan(port=2)]},
     [("lines.0.port", "port.fxo_no_user_line", 1)]),
    ("grandstream-ht813", {"mac": GS_MAC, "lines": [LinePlan(), LinePlan()]},   # 2nd line lands on the FXO
     [("lines.1.port", "port.fxo_no_user_line", 1)]),
    # a fax port needs T.38
    ("grandstream-ht802", {"mac": GS_MAC, "lines": [LinePlan(purpose="fax")]}, []),
    ("cisco-spa112", {"mac": "0002fdff2103", "lines": [LinePlan(port=2, purpose="fax")]}, []),
    ("yealink-t54w", {"mac": YEALINK_MAC, "lines": [LinePlan(purpose="fax")]},
     [("lines.0.purpose", "fax.t38", None)]),
    ("yealink-t54w", {"mac": YEALINK_MAC, "lines": [LinePlan(port=1)]}, [("lines.0.port", "port.not_ata", None)]),
    # codecs ⊆ supported (HT802 has no G.722, HT814 has)
    ("grandstream-ht814", {"mac": GS_MAC, "codecs": ("g722", "pcmu")}, []),
    ("grandstream-ht802", {"mac": GS_MAC, "codecs": ("pcmu", "g722")},
     [("codecs.1", "codecs.supported", list(CATALOG.get("grandstream-ht802").codecs))]),  # type: ignore[union-attr]
    # MAC: required / forbidden / OUI of another vendor
    ("yealink-t54w", {"mac": None}, [("mac", "mac.required", None)]),
    ("softphone-mobile", {"mac": YEALINK_MAC}, [("mac", "mac.forbidden", None)]),
    ("softphone-mobile", {"mac": None}, []),
    ("grandstream-ht802", {"mac": YEALINK_MAC},
     [("mac", "mac.oui_vendor", ["000b82", "c074ad", "ec74d7"])]),
    ("poly-vvx450", {"mac": POLY_MAC, "lines": [LinePlan()] * 12}, []),
]


@pytest.mark.parametrize(("profile", "kwargs", "expected"), CASES)
def test_device_against_profile(profile: str, kwargs: dict[str, Any], expected: list[tuple[str, str, Any]]) -> None:
    assert errors(run(profile, **kwargs)) == expected


def test_unknown_oui_is_only_a_warning() -> None:
    f = run("grandstream-ht802", mac="020000aabbcc")
    assert errors(f) == [] and warnings(f) == [("mac", "mac.oui_unknown")]
    f = run("cisco-spa112", mac="0002fdff2103")  # Cisco is identified by UA, not OUI (notes §2.1)
    assert errors(f) == [] and warnings(f) == [("mac", "mac.oui_unknown")]


def test_checks_on_unverified_facts_only_warn() -> None:
    # Edge E350's 8 lines are unverified: a 9th line is a warning, not a refusal.
    f = run("poly-edge-e350", mac=POLY_MAC, lines=[LinePlan()] * 9)
    assert errors(f) == [] and warnings(f) == [("lines", "lines.max")]
    # OBi302's codec list is unverified too
    f = run("obihai-obi302", mac="9cadef000001", codecs=("opus",))
    assert errors(f) == [] and warnings(f) == [("codecs.0", "codecs.supported")]


def test_transport_must_be_supported() -> None:
    data = {"id": "acme-x1", "vendor": "Acme", "model": "X1", "kind": "desk_phone", "sip_lines": 2,
            "mac_policy": "required", "codecs": ["pcmu"], "transports": ["udp"], "config_format": "none",
            "provenance": {"transports": "verified: datasheet"}}
    profile = parse_profile(data, "acme-x1.toml")
    catalog = HardwareCatalog({"acme-x1": profile})
    f = check_device(catalog, profile, mac="020000000001", lines=[LinePlan()], transport="tls")
    assert errors(f) == [("transport", "transport.supported", ["udp"])]
    assert errors(check_device(catalog, profile, mac="020000000001", lines=[LinePlan()], transport="udp")) == []


def test_several_errors_come_back_together() -> None:
    f = run("grandstream-ht802", mac=YEALINK_MAC, lines=[LinePlan(port=9, purpose="fax")] * 3,
            codecs=("g722",))
    rules = [r for _, r, _ in errors(f)]
    assert rules[:2] == ["mac.oui_vendor", "lines.max"] and "codecs.supported" in rules
    with pytest.raises(Invalid) as err:
        f.raise_errors()
    assert len(err.value.issues) == len(errors(f)) and err.value.rule == "mac.oui_vendor"


def test_profile_resolution() -> None:
    f = Findings()
    assert resolve_profile(CATALOG, "nope", f) is None and f.issues[0].rule == "hardware_profile.known"
    f = Findings()
    assert resolve_profile(CATALOG, "logitech-rally-bar", f) is None
    assert f.issues[0].rule == "hardware_profile.kind"
    f = check_device(CATALOG, None, mac=None, lines=[LinePlan()])
    assert errors(f) == [("mac", "mac.required", None)]  # a model-less device must have a MAC


def test_port_assignment() -> None:
    ht814 = CATALOG.get("grandstream-ht814")
    plans = assign_ports(ht814, [LinePlan(port=2), LinePlan(), LinePlan(purpose="fax")])
    assert [(p.port, p.purpose) for p in plans] == [(2, "voice"), (1, "voice"), (3, "fax")]
    t54w = CATALOG.get("yealink-t54w")
    assert [p.port for p in assign_ports(t54w, [LinePlan(), LinePlan()])] == [None, None]
