"""Cisco SPA112/122 flat profile.

The factory `Profile_Rule` fetches `/spa$PSN.cfg` (`spa112.cfg`), model-keyed,
not MAC-keyed; ours points `Profile_Rule_C` at `<base>/$MA.xml`, the
per-device profile (WPP wazo_cisco_spa/common/install.md, spa-ata.xml).
Per line `N` = FXS port N: `Proxy_N_`, `User_ID_N_`, `Auth_ID_N_`, codecs
`Preferred_Codec_N_`…, and on fax ports `FAX_Enable_T38_N_` with re-INVITE
passthrough and echo canceller off (WPP base.tpl; FPBX cisco/spa112/{$mac}.xml).
"""

from __future__ import annotations

from xml.sax.saxutils import escape

from hardware_profiles.catalog import HardwareProfile
from provisioning.configs.model import DeviceConfig, LineConfig, clean

TRANSPORT = {"udp": "UDP", "tcp": "TCP", "tls": "TLS"}
CODEC = {"pcmu": "G711u", "pcma": "G711a", "g729": "G729a", "g726": "G726-32", "g722": "G722"}
PREFERENCE_KEYS = ("Preferred_Codec", "Second_Preferred_Codec", "Third_Preferred_Codec")


def _el(key: str, value: str) -> str:
    return f"  <{key}>{escape(clean(value))}</{key}>"


def common(profile: HardwareProfile, name: str, base_url: str) -> str:
    return "\n".join([f"<!-- voiplab: bootstrap for {profile.vendor} {profile.model} -->", "<flat-profile>",
                      _el("Profile_Rule_C", f"{base_url}/$MA.xml"), "</flat-profile>", ""])


def device(profile: HardwareProfile, name: str, cfg: DeviceConfig) -> str:
    out = [f"<!-- voiplab: {profile.vendor} {profile.model} {cfg.mac} -->", "<flat-profile>"]
    chosen = [CODEC[c] for c in cfg.codecs if c in CODEC] or ["G711u"]
    for port in range(1, profile.fxs_ports + 1):
        ln = cfg.line_on_port(port)
        out += _port(port, ln, cfg, chosen) if ln else [_el(f"Line_Enable_{port}_", "No")]
    out += [_el("Profile_Rule", f"{cfg.provisioning_url}/$MA.xml"), "</flat-profile>", ""]
    return "\n".join(out)


def _port(n: int, ln: LineConfig, cfg: DeviceConfig, chosen: list[str]) -> list[str]:
    out = [
        _el(f"Line_Enable_{n}_", "Yes"),
        _el(f"Proxy_{n}_", cfg.sip_server),
        _el(f"SIP_Port_{n}_", str(cfg.sip_port)),
        _el(f"SIP_Transport_{n}_", TRANSPORT[cfg.transport]),
        _el(f"Register_{n}_", "Yes"),
        _el(f"Display_Name_{n}_", ln.display_name),
        _el(f"User_ID_{n}_", ln.user),
        _el(f"Password_{n}_", ln.password),
        _el(f"Use_Auth_ID_{n}_", "Yes"),
        _el(f"Auth_ID_{n}_", ln.auth_user),
    ]
    out += [_el(f"{key}_{n}_", codec) for key, codec in zip(PREFERENCE_KEYS, chosen, strict=False)]
    out.append(_el(f"Use_Pref_Codec_Only_{n}_", "No"))
    if ln.purpose == "fax":
        out += [_el(f"FAX_Enable_T38_{n}_", "Yes"), _el(f"FAX_T38_Redundancy_{n}_", "1"),
                _el(f"FAX_Passthru_Method_{n}_", "ReINVITE"), _el(f"FAX_Passthru_Codec_{n}_", "G711u"),
                _el(f"FAX_Disable_ECAN_{n}_", "Yes")]
    else:
        out.append(_el(f"FAX_Enable_T38_{n}_", "No"))
    return out
