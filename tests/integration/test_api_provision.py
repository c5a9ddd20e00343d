"""Phones fetch their files over HTTP with their real User-Agent strings
(notes/provisioning.md §1.4); the results parse and carry the credentials the
API handed out. Unknown MACs, UA policies, digest, model learning, lifecycle.
SQLite and PostgreSQL."""

from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET
from typing import Any

import httpx
import pytest

from tests import conftest_db
from tests.conftest_db import SIP_DOMAIN, Api

db_url, prov = conftest_db.db_url, conftest_db.prov

UA = {
    "yealink": "Yealink SIP-T54W 96.86.0.45 {colon_mac}",
    "poly": "FileTransport PolycomVVX-VVX_450-UA/5.9.1.0615 Type/Application",
    "cisco": "Cisco/SPA112-1.4.1(SR5) ({MAC})(CBT141400UK)",
    "grandstream": "Grandstream Model HW HT802V2 V1.0A SW 1.0.5.4 DevId {mac}",
    "ht814": "Grandstream Model HW HT814 SW 1.0.9.1 DevId {mac}",
}


def mac_with(oui: str) -> str:
    return oui + secrets.token_hex(3)


def ua(kind: str, mac: str) -> str:
    colon = ":".join(mac[i:i + 2] for i in range(0, 12, 2))
    return UA[kind].format(mac=mac, MAC=mac.upper(), colon_mac=colon)


def fetch(prov: Api, name: str, agent: str, **kw: Any) -> httpx.Response:
    return prov.anon.get(f"/provision/{name}", headers={"User-Agent": agent}, **kw)


def device(prov: Api, profile: str, mac: str | None, lines: list[dict[str, Any]] | None = None,
           **kw: Any) -> dict[str, Any]:
    acc = prov.account()["id"]
    specs = lines or [{}]
    users = [prov.user(acc, str(2000 + i), display_name=f"Phone {i + 1}")["id"] for i in range(len(specs))]
    body = {"hardware_profile": profile, "name": "d", "lines": [{"user_id": u, **s} for u, s in zip(users, specs,
                                                                                                   strict=True)], **kw}
    if mac is not None:
        body["mac"] = mac
    r = prov.post(f"/accounts/{acc}/devices", body)
    assert r.status_code == 201, r.text
    return r.json()


def test_yealink_fetches_common_and_device_file(prov: Api) -> None:
    mac = mac_with("805ec0")
    dev = device(prov, "yealink-t54w", mac, [{}, {}], codecs=["g722", "pcmu"])
    agent = ua("yealink", mac)
    common = fetch(prov, "y000000000096.cfg", agent)
    assert common.status_code == 200 and common.text.startswith("#!version:1.0.0.1")
    assert common.headers["content-type"].startswith("text/plain")
    r = fetch(prov, f"{mac}.cfg", agent)
    assert r.status_code == 200, r.text
    keys = dict(ln.split(" = ", 1) for ln in r.text.splitlines()[1:] if " = " in ln)
    for i, line in enumerate(dev["lines"], start=1):
        assert keys[f"account.{i}.user_name"] == line["sip_username"]
        assert keys[f"account.{i}.password"] == line["sip_password"]
        assert keys[f"account.{i}.sip_server.1.address"] == SIP_DOMAIN
    assert keys["account.1.codec.g722.priority"] == "1"
    assert keys["account.1.display_name"] == "Phone 1"
    assert r.headers["etag"] and fetch(prov, f"{mac}.cfg", agent).headers["etag"] == r.headers["etag"]
    shown = prov.get(f"/devices/{dev['id']}").json()
    assert shown["last_fetch"]["user_agent"] == agent and shown["last_fetch"]["firmware"] == "96.86.0.45"
    assert shown["last_fetch"]["file"] == f"{mac}.cfg" and shown["last_fetch"]["ip"] == "127.0.0.1"
    assert shown["ua_mismatch"] is None


def test_poly_master_and_phone_file(prov: Api) -> None:
    mac = mac_with("0004f2")
    dev = device(prov, "poly-vvx450", mac, transport="tls")
    agent = ua("poly", mac)
    assert ET.fromstring(fetch(prov, "000000000000.cfg", agent).content).tag == "APPLICATION"
    master = ET.fromstring(fetch(prov, f"{mac.upper()}.cfg", agent).content)  # either case
    assert master.get("CONFIG_FILES") == f"{mac}-phone.cfg"
    phone = ET.fromstring(fetch(prov, f"{mac}-phone.cfg", agent).content)
    assert phone.get("reg.1.address") == dev["lines"][0]["sip_username"]
    assert phone.get("reg.1.auth.password") == dev["lines"][0]["sip_password"]
    assert phone.get("reg.1.server.1.transport") == "TLS" and phone.get("reg.1.server.1.port") == "5061"


def test_cisco_bootstrap_then_mac_profile_with_fax(prov: Api) -> None:
    mac = mac_with("0002fd")
    dev = device(prov, "cisco-spa112", mac, [{}, {"purpose": "fax"}])
    agent = ua("cisco", mac)
    boot = ET.fromstring(fetch(prov, "spa112.cfg", agent).content)
    rule = boot.find("Profile_Rule_C")
    assert rule is not None and rule.text == f"{prov.anon.base_url}/provision/$MA.xml"
    flat = {el.tag: el.text for el in ET.fromstring(fetch(prov, f"{mac}.xml", agent).content)}
    assert flat["User_ID_2_"] == dev["lines"][1]["sip_username"] and flat["FAX_Enable_T38_2_"] == "Yes"
    assert flat["Password_1_"] == dev["lines"][0]["sip_password"] and flat["FAX_Enable_T38_1_"] == "No"


@pytest.mark.parametrize(("profile", "kind", "oui"), [("grandstream-ht802", "grandstream", "ec74d7"),
                                                       ("grandstream-ht814", "ht814", "c074ad")])
def test_grandstream_pvalues(prov: Api, profile: str, kind: str, oui: str) -> None:
    mac = mac_with(oui)
    dev = device(prov, profile, mac, [{"purpose": "fax"}, {}])
    r = fetch(prov, f"cfg{mac}.xml", ua(kind, mac))
    assert r.status_code == 200, r.text
    p = {el.tag: el.text for el in ET.fromstring(r.content).find("config")}  # type: ignore[union-attr]
    first = dev["lines"][0]
    user_key, pw_key = ("P35", "P34") if kind == "grandstream" else ("P4060", "P4120")
    assert (p[user_key], p[pw_key]) == (first["sip_username"], first["sip_password"])
    assert p["P228"] == "0"  # T.38 for the fax port


def test_unknown_mac_is_404_logged_and_never_created(prov: Api) -> None:
    mac = mac_with("805ec0")
    r = fetch(prov, f"{mac}.cfg", ua("yealink", mac))
    assert r.status_code == 404
    refused = prov.get("/provision/refused").json()
    assert any(x["file"] == f"{mac}.cfg" and "unknown device" in x["reason"] for x in refused)
    assert prov.anon.get("/api/v1/provision/refused").status_code == 401
    for junk in ("..%2F..%2Fetc%2Fpasswd", "x" * 200, "y000000000999.cfg"):
        assert prov.anon.get(f"/provision/{junk}").status_code == 404


def test_ua_policies_enforce_flag_off(prov: Api) -> None:
    enforce_mac, flag_mac, off_mac = (mac_with("805ec0") for _ in range(3))
    enforced = device(prov, "yealink-t54w", enforce_mac, ua_policy="enforce")
    flagged = device(prov, "yealink-t54w", flag_mac)
    device(prov, "yealink-t54w", off_mac, ua_policy="off")
    wrong_model = "Yealink SIP-T46U 108.86.0.90 {}"
    r = fetch(prov, f"{enforce_mac}.cfg", wrong_model.format(enforce_mac))
    assert r.status_code == 403 and "SIP-T46U" in r.text
    events = prov.get("/audit", entity="device", entity_id=enforced["id"]).json()
    assert events[0]["action"] == "device.fetch_refused"
    other_mac = ua("yealink", mac_with("805ec0"))
    assert fetch(prov, f"{enforce_mac}.cfg", other_mac).status_code == 403   # right model, another MAC
    assert fetch(prov, f"{enforce_mac}.cfg", ua("yealink", enforce_mac)).status_code == 200
    r = fetch(prov, f"{flag_mac}.cfg", "Mozilla/5.0")
    assert r.status_code == 200
    assert "is not a Yealink SIP-T54W" in prov.get(f"/devices/{flagged['id']}").json()["ua_mismatch"]
    assert fetch(prov, f"{flag_mac}.cfg", ua("yealink", flag_mac)).status_code == 200
    assert prov.get(f"/devices/{flagged['id']}").json()["ua_mismatch"] is None
    old_fw = f"Yealink SIP-T54W 28.72.0.1 {enforce_mac}"  # right model, unexpected firmware: flag only
    assert fetch(prov, f"{enforce_mac}.cfg", old_fw).status_code == 200
    assert "firmware 28.72.0.1" in prov.get(f"/devices/{enforced['id']}").json()["ua_mismatch"]
    assert fetch(prov, f"{off_mac}.cfg", "curl/8.5.0").status_code == 200


def test_digest_protected_device(prov: Api) -> None:
    mac = mac_with("805ec0")
    dev = device(prov, "yealink-t54w", mac, provisioning_password="correct horse")
    assert dev["provisioning_digest"] is True
    agent = ua("yealink", mac)
    r = fetch(prov, f"{mac}.cfg", agent)
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Digest ")
    assert fetch(prov, f"{mac}.cfg", agent, auth=httpx.DigestAuth(mac, "wrong password")).status_code == 401
    ok = fetch(prov, f"{mac}.cfg", agent, auth=httpx.DigestAuth(mac, "correct horse"))
    assert ok.status_code == 200 and dev["lines"][0]["sip_password"] in ok.text
    assert fetch(prov, "y000000000096.cfg", agent).status_code == 200  # common files stay open
    assert "correct horse" not in prov.get("/audit", entity="device", entity_id=dev["id"]).text


def test_model_comes_from_the_first_fetch(prov: Api) -> None:
    mac = mac_with("ec74d7")
    dev = device(prov, None, mac, [{}, {"purpose": "fax"}])  # type: ignore[arg-type]
    assert dev["hardware_profile"] is None and dev["kind"] == "unknown"
    assert prov.post(f"/devices/{dev['id']}/activate").status_code == 409
    r = fetch(prov, f"cfg{mac}.xml", ua("grandstream", mac))
    assert r.status_code == 200, r.text
    learnt = prov.get(f"/devices/{dev['id']}").json()
    assert (learnt["hardware_profile"], learnt["kind"]) == ("grandstream-ht802", "ata")
    assert [ln["port"] for ln in learnt["lines"]] == [1, 2]
    actions = [e["action"] for e in prov.get("/audit", entity="device", entity_id=dev["id"]).json()]
    assert "device.model_learned" in actions
    # a model-less device whose lines do not fit the phone that shows up is not adopted
    mac2 = mac_with("805ec0")
    big = device(prov, None, mac2, [{}, {"purpose": "fax"}])  # type: ignore[arg-type]
    r = fetch(prov, f"{mac2}.cfg", ua("yealink", mac2))
    assert r.status_code == 409 and prov.get(f"/devices/{big['id']}").json()["hardware_profile"] is None


def test_suspended_403_retired_404(prov: Api) -> None:
    mac = mac_with("805ec0")
    dev = device(prov, "yealink-t54w", mac)
    agent = ua("yealink", mac)
    prov.post(f"/devices/{dev['id']}/suspend")
    assert fetch(prov, f"{mac}.cfg", agent).status_code == 403
    prov.post(f"/devices/{dev['id']}/resume")
    assert fetch(prov, f"{mac}.cfg", agent).status_code == 200
    prov.post(f"/devices/{dev['id']}/retire")
    assert fetch(prov, f"{mac}.cfg", agent).status_code == 404


def test_a_device_cannot_fetch_a_file_of_another_model(prov: Api) -> None:
    mac = mac_with("805ec0")
    device(prov, "yealink-t54w", mac)
    assert fetch(prov, f"cfg{mac}.xml", ua("yealink", mac)).status_code == 404
