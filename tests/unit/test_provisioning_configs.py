"""Vendor renderers: golden files (byte for byte, deterministic) and a parse of
each output checking the keys mean what we set.

Regenerate after an intended change: VOIPLAB_UPDATE_GOLDEN=1 pytest this file,
then review the diff of tests/data/golden/ like code.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hardware_profiles.catalog import load_catalog
from provisioning.configs import DeviceConfig, LineConfig, RenderError, content_type, render

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden"
CATALOG = load_catalog()
BASE = "http://prov.lab.example:8080/provision"


def line(i: int, *, port: int | None = None, purpose: str = "voice") -> LineConfig:
    return LineConfig(index=i, user=f"100{i}-abcdef", auth_user=f"100{i}-abcdef", password=f"s3cret<{i}>&\"",
                      display_name=f"Desk {i}", label=f"100{i}", port=port, purpose=purpose)


def cfg(mac: str, lines: list[LineConfig], codecs: tuple[str, ...], transport: str = "udp") -> DeviceConfig:
    return DeviceConfig(mac=mac, sip_server="gw.lab.example", sip_port=5060, transport=transport, codecs=codecs,
                        lines=tuple(lines), provisioning_url=BASE)


YEALINK = cfg("001565aabbcc", [line(1), line(2)], ("pcmu", "g722", "opus"), "tls")
POLY = cfg("0004f2aabbcc", [line(1)], ("g722", "pcmu"), "tcp")
SPA = cfg("0002fdff2103", [line(1, port=1), line(2, port=2, purpose="fax")], ("pcmu", "g729"))
HT802 = cfg("000b82aabbcc", [line(1, port=1, purpose="fax"), line(2, port=2)], ("pcmu", "pcma", "g729"))
HT814 = cfg("c074ad273a10", [line(1, port=1), line(2, port=3, purpose="fax")], ("g722", "pcmu"))

# (golden name, profile, requested file, config or None for a common file)
CASES = [
    ("yealink-t54w-common.cfg", "yealink-t54w", "y000000000096.cfg", None),
    ("yealink-t54w-device.cfg", "yealink-t54w", "001565aabbcc.cfg", YEALINK),
    ("poly-vvx450-common.cfg", "poly-vvx450", "000000000000.cfg", None),
    ("poly-vvx450-master.cfg", "poly-vvx450", "0004F2AABBCC.cfg", POLY),
    ("poly-vvx450-phone.cfg", "poly-vvx450", "0004f2aabbcc-phone.cfg", POLY),
    ("cisco-spa112-bootstrap.cfg", "cisco-spa112", "spa112.cfg", None),
    ("cisco-spa112-device.xml", "cisco-spa112", "0002fdff2103.xml", SPA),
    ("grandstream-ht802-device.xml", "grandstream-ht802", "cfg000b82aabbcc.xml", HT802),
    ("grandstream-ht814-device.xml", "grandstream-ht814", "cfgc074ad273a10.xml", HT814),
]


def rendered(profile: str, name: str, config: DeviceConfig | None) -> bytes:
    p = CATALOG.get(profile)
    assert p is not None
    return render(p, name, config, BASE + "/")


@pytest.mark.parametrize(("golden", "profile", "name", "config"), CASES, ids=[c[0] for c in CASES])
def test_golden(golden: str, profile: str, name: str, config: DeviceConfig | None) -> None:
    out = rendered(profile, name, config)
    assert out == rendered(profile, name, config)  # deterministic
    path = GOLDEN / golden
    if os.environ.get("VOIPLAB_UPDATE_GOLDEN"):
        path.write_bytes(out)
    assert path.exists(), f"missing golden file {path}: run with VOIPLAB_UPDATE_GOLDEN=1 and review it"
    assert out == path.read_bytes(), f"{golden} changed; if intended, regenerate and review the diff"


def yealink_keys(text: str) -> dict[str, str]:
    lines = text.splitlines()
    assert lines[0] == "#!version:1.0.0.1"  # the header must come first
    pairs = [ln.split(" = ", 1) for ln in lines[1:] if ln and not ln.startswith("#")]
    return {k: v for k, v in pairs}


def test_yealink_keys() -> None:
    keys = yealink_keys(rendered("yealink-t54w", "001565aabbcc.cfg", YEALINK).decode())
    assert keys["account.2.user_name"] == "1002-abcdef" and keys["account.2.password"] == 's3cret<2>&"'
    assert keys["account.1.sip_server.1.transport_type"] == "2"  # TLS
    assert (keys["account.1.codec.pcmu.priority"], keys["account.1.codec.g722.priority"],
            keys["account.1.codec.opus.priority"]) == ("1", "2", "3")
    assert keys["account.1.codec.g729.enable"] == "0"
    assert "account.3.enable" not in keys


def test_yealink_values_cannot_inject_keys() -> None:
    evil = cfg("001565aabbcc", [LineConfig(1, "u", "u", "pw\naccount.9.enable = 1", "x", "1")], ("pcmu",))
    keys = yealink_keys(rendered("yealink-t54w", "001565aabbcc.cfg", evil).decode())
    assert "account.9.enable" not in keys and keys["account.1.password"].startswith("pw ")


def test_poly_keys() -> None:
    master = ET.fromstring(rendered("poly-vvx450", "0004f2aabbcc.cfg", POLY))
    assert master.tag == "APPLICATION" and master.get("CONFIG_FILES") == "0004f2aabbcc-phone.cfg"
    common = ET.fromstring(rendered("poly-vvx450", "000000000000.cfg", None))
    assert common.get("CONFIG_FILES") == "[PHONE_MAC_ADDRESS]-phone.cfg"
    phone = ET.fromstring(rendered("poly-vvx450", "0004f2aabbcc-phone.cfg", POLY))
    assert phone.tag == "polycomConfig"
    assert phone.get("reg.1.auth.password") == 's3cret<1>&"' and phone.get("reg.1.server.1.transport") == "TCPOnly"
    assert (phone.get("voice.codecPref.G722"), phone.get("voice.codecPref.G711_Mu")) == ("1", "2")
    assert phone.get("voice.codecPref.G729_AB") == ""  # supported, not chosen: disabled


def flat(xml: bytes) -> dict[str, str]:
    root = ET.fromstring(xml)
    assert root.tag == "flat-profile"
    return {el.tag: el.text or "" for el in root}


def test_cisco_spa_keys() -> None:
    boot = flat(rendered("cisco-spa112", "spa112.cfg", None))
    assert boot == {"Profile_Rule_C": BASE + "/$MA.xml"}
    dev = flat(rendered("cisco-spa112", "0002fdff2103.xml", SPA))
    assert dev["User_ID_2_"] == "1002-abcdef" and dev["Password_2_"] == 's3cret<2>&"'
    assert (dev["FAX_Enable_T38_1_"], dev["FAX_Enable_T38_2_"]) == ("No", "Yes")
    assert dev["FAX_Passthru_Method_2_"] == "ReINVITE"
    assert (dev["Preferred_Codec_1_"], dev["Second_Preferred_Codec_1_"]) == ("G711u", "G729a")


def pvalues(xml: bytes) -> dict[str, str]:
    root = ET.fromstring(xml)
    assert root.tag == "gs_provision"
    return {el.tag: el.text or "" for el in root.find("config")}  # type: ignore[union-attr]


def test_grandstream_ht80x_keys() -> None:
    p = pvalues(rendered("grandstream-ht802", "cfg000b82aabbcc.xml", HT802))
    assert (p["P35"], p["P34"], p["P47"]) == ("1001-abcdef", 's3cret<1>&"', "gw.lab.example")
    assert (p["P228"], p["P4417"]) == ("0", "1")      # port 1 is the fax port: T.38
    assert (p["P735"], p["P734"], p["P710"]) == ("1002-abcdef", 's3cret<2>&"', "1")  # port 2 voice
    assert [p[k] for k in ("P57", "P58", "P59", "P60")] == ["0", "8", "18", "0"]
    assert [p[k] for k in ("P757", "P758", "P759")] == ["0", "8", "18"]


def test_grandstream_ht81x_keys() -> None:
    p = pvalues(rendered("grandstream-ht814", "cfgc074ad273a10.xml", HT814))
    assert (p["P4060"], p["P4120"], p["P4150"]) == ("1001-abcdef", 's3cret<1>&"', "0")
    assert p["P4062"] == "1002-abcdef" and p["P4061"] == "" and p["P4063"] == ""
    assert (p["P228"], p["P4417"]) == ("0", "1")
    assert (p["P57"], p["P58"]) == ("9", "0")  # G.722 first (HT81x supports it)


def test_ht802_drops_codecs_it_lacks() -> None:
    no_g722 = cfg("000b82aabbcc", [line(1, port=1)], ("g722", "pcma"))
    p = pvalues(rendered("grandstream-ht802", "cfg000b82aabbcc.xml", no_g722))
    assert p["P57"] == "8" and "9" not in {p[k] for k in ("P57", "P58", "P59", "P60", "P61", "P62")}


def test_wrong_files_and_missing_renderer() -> None:
    with pytest.raises(RenderError):
        rendered("yealink-t54w", "0004f2aabbcc.cfg", YEALINK)  # another MAC's file
    with pytest.raises(RenderError):
        rendered("yealink-t54w", "y000000000108.cfg", None)     # the T46U's common file
    obi = CATALOG.get("obihai-obi302")
    assert obi is not None
    with pytest.raises(RenderError, match="no configuration renderer"):
        content_type(obi)
