"""Grandstream HT80x and HT81x `cfg<mac>.xml` (`<gs_provision version="1">` P-values).

HT80x: one SIP account per FXS port with its own server, codecs and fax mode.
Port 1: P271 active, P270 name, P47 server, P35 user, P36 auth ID, P34
password, P3 display name, P130 transport, P57-P62 vocoders, P228 fax mode,
P4417 re-INVITE after fax tone (WPP common_ata; notes §1.5). Port 2 (HT802):
P401 active, P747 server, P830 transport, P735 user, P736 auth ID, P734
password, P703 display name, P757-P762 vocoders, P710 fax mode (FPBX
grandstream/ht802/{$mac}.xml, firmware 1.0.10.6; the same P7xx account keys
as WPP common_ata/templates/HT802V2.tpl).

HT81x: ports are not accounts. Each port x (0-based) has P406x user, P409x
auth ID, P412x password, P418x name and P415x = the server profile it uses
(FPBX grandstream/ht814, notes §1.5). We put every port on profile 1 (P47
server, P130 transport, P57-P62 vocoders) and switch the profile's fax mode
to T.38 (P228=0, P4417=1) when a port is a fax port; the HT81x has no
per-port fax switch in our sources.

Vocoder numbers: 0 PCMU, 8 PCMA, 4 G.723, 18 G.729, 2 G.726-32, 97 iLBC,
123 Opus, 9 G.722 (HT81x). Unused choice slots repeat the first codec.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

from hardware_profiles.catalog import HardwareProfile
from provisioning.configs.model import DeviceConfig, LineConfig, RenderError, clean

TRANSPORT = {"udp": "0", "tcp": "1", "tls": "2"}
VOCODER = {"pcmu": "0", "pcma": "8", "g723": "4", "g729": "18", "g726": "2", "ilbc": "97", "opus": "123",
           "g722": "9"}

# HT80x per-port account keys: port → field → P-value
HT80X_PORTS: dict[int, dict[str, str]] = {
    1: {"active": "P271", "name": "P270", "server": "P47", "user": "P35", "auth": "P36", "password": "P34",
        "display": "P3", "transport": "P130", "fax": "P228", "reinvite": "P4417"},
    2: {"active": "P401", "server": "P747", "user": "P735", "auth": "P736", "password": "P734",
        "display": "P703", "transport": "P830", "fax": "P710"},
}
HT80X_VOCODERS = {1: ("P57", "P58", "P59", "P60", "P61", "P62"),
                  2: ("P757", "P758", "P759", "P760", "P761", "P762")}


def _el(key: str, value: str, note: str = "") -> str:
    comment = f"  <!-- {note} -->" if note else ""
    return f"    <{key}>{escape(clean(value))}</{key}>{comment}"


def _wrap(cfg: DeviceConfig, profile: HardwareProfile, body: list[str]) -> str:
    return "\n".join(['<?xml version="1.0" encoding="UTF-8"?>',
                      f"<!-- voiplab: {profile.vendor} {profile.model} {cfg.mac} -->",
                      '<gs_provision version="1">', f"  <mac>{cfg.mac}</mac>", '  <config version="1">',
                      *body, "  </config>", "</gs_provision>", ""])


def _vocoders(slots: tuple[str, ...], cfg: DeviceConfig, profile: HardwareProfile) -> list[str]:
    chosen = [VOCODER[c] for c in cfg.codecs if c in VOCODER and c in profile.codecs] or ["0"]
    values = (chosen + [chosen[0]] * len(slots))[:len(slots)]
    return [_el(slot, v, f"vocoder choice {i}") for i, (slot, v) in enumerate(zip(slots, values, strict=True), 1)]


def common(profile: HardwareProfile, name: str, base_url: str) -> str:
    raise RenderError(f"{profile.model} has no common file")


def device_ht80x(profile: HardwareProfile, name: str, cfg: DeviceConfig) -> str:
    body: list[str] = []
    for port in range(1, profile.fxs_ports + 1):
        keys = HT80X_PORTS.get(port)
        if keys is None:
            raise RenderError(f"no P-value map for port {port} of {profile.model}")
        ln = cfg.line_on_port(port)
        body.append(f"    <!-- FXS port {port} -->")
        if ln is None:
            body.append(_el(keys["active"], "0", "account active"))
            continue
        body += _account80x(keys, ln, cfg)
        body += _vocoders(HT80X_VOCODERS[port], cfg, profile)
        body.append(_el(keys["fax"], "0" if ln.purpose == "fax" else "1", "fax mode: 0 T.38, 1 pass-through"))
        if "reinvite" in keys and ln.purpose == "fax":
            body.append(_el(keys["reinvite"], "1", "re-INVITE after fax tone"))
    return _wrap(cfg, profile, body)


def _account80x(keys: dict[str, str], ln: LineConfig, cfg: DeviceConfig) -> list[str]:
    out = [_el(keys["active"], "1", "account active")]
    if "name" in keys:
        out.append(_el(keys["name"], ln.display_name, "account name"))
    out += [_el(keys["server"], cfg.sip_server if cfg.sip_port == 5060 else f"{cfg.sip_server}:{cfg.sip_port}",
                "primary SIP server"),
            _el(keys["user"], ln.user, "SIP user ID"), _el(keys["auth"], ln.auth_user, "authenticate ID"),
            _el(keys["password"], ln.password, "password"), _el(keys["display"], ln.display_name, "display name"),
            _el(keys["transport"], TRANSPORT[cfg.transport], "SIP transport: 0 UDP, 1 TCP, 2 TLS")]
    return out


def device_ht81x(profile: HardwareProfile, name: str, cfg: DeviceConfig) -> str:
    server = cfg.sip_server if cfg.sip_port == 5060 else f"{cfg.sip_server}:{cfg.sip_port}"
    body = ["    <!-- profile 1 -->", _el("P271", "1", "profile active"), _el("P47", server, "primary SIP server"),
            _el("P130", TRANSPORT[cfg.transport], "SIP transport: 0 UDP, 1 TCP, 2 TLS"),
            *_vocoders(HT80X_VOCODERS[1], cfg, profile)]
    fax = any(ln.purpose == "fax" for ln in cfg.lines)
    body.append(_el("P228", "0" if fax else "1", "fax mode: 0 T.38, 1 pass-through"))
    if fax:
        body.append(_el("P4417", "1", "re-INVITE after fax tone"))
    for port in range(1, profile.fxs_ports + 1):
        x = port - 1
        ln = cfg.line_on_port(port)
        body.append(f"    <!-- FXS port {port} -->")
        if ln is None:
            body.append(_el(f"P406{x}", "", "SIP user ID (port unused)"))
            continue
        body += [_el(f"P406{x}", ln.user, "SIP user ID"), _el(f"P409{x}", ln.auth_user, "authenticate ID"),
                 _el(f"P412{x}", ln.password, "password"), _el(f"P418{x}", ln.display_name, "name"),
                 _el(f"P415{x}", "0", "server profile 1")]
    return _wrap(cfg, profile, body)
