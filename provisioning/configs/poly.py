"""Poly (UCS) master file and per-device files.

- `000000000000.cfg` (common) and `<mac>.cfg` (per device) are master files:
  `<APPLICATION APP_FILE_PATH="sip.ld" CONFIG_FILES="…">`; the common one uses
  the phone's `[PHONE_MAC_ADDRESS]` macro (Poly SIP 3.1 guide App. A; WPP
  wazo_polycom/v6_4_6/var/tftpboot/000000000000.cfg).
- `<mac>-phone.cfg`: `<polycomConfig>` with `reg.N.*` attributes and
  `voice.codecPref.*` ranks (WPP base.tpl; FPBX poly/edge-e550, polycom/ccx500);
  transport `UDPOnly`/`TCPOnly`/`TLS`; codec value = rank, empty = disabled.
"""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

from hardware_profiles.catalog import HardwareProfile
from provisioning.configs.model import DeviceConfig, clean

TRANSPORT = {"udp": "UDPOnly", "tcp": "TCPOnly", "tls": "TLS"}
CODEC_KEY = {"pcmu": "G711_Mu", "pcma": "G711_A", "g722": "G722", "g729": "G729_AB", "opus": "Opus",
             "siren": "Siren14"}
XML_DECL = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'


def _master(config_files: str, comment: str) -> str:
    return "\n".join([XML_DECL, f"<!-- voiplab: {comment} -->",
                      f'<APPLICATION APP_FILE_PATH="sip.ld" CONFIG_FILES={quoteattr(config_files)}/>', ""])


def common(profile: HardwareProfile, name: str, base_url: str) -> str:
    return _master("[PHONE_MAC_ADDRESS]-phone.cfg", "Poly master file for every phone")


def device(profile: HardwareProfile, name: str, cfg: DeviceConfig) -> str:
    if name.lower().endswith("-phone.cfg"):
        return _phone(profile, cfg)
    return _master(f"{cfg.mac}-phone.cfg", f"{profile.vendor} {profile.model} {cfg.mac}")


def _phone(profile: HardwareProfile, cfg: DeviceConfig) -> str:
    attrs: list[tuple[str, str]] = []
    for ln in cfg.lines:
        n = ln.index
        attrs += [
            (f"reg.{n}.address", ln.user),
            (f"reg.{n}.auth.userId", ln.auth_user),
            (f"reg.{n}.auth.password", ln.password),
            (f"reg.{n}.displayName", ln.display_name),
            (f"reg.{n}.label", ln.label),
            (f"reg.{n}.server.1.address", cfg.sip_server),
            (f"reg.{n}.server.1.port", str(cfg.sip_port)),
            (f"reg.{n}.server.1.transport", TRANSPORT[cfg.transport]),
        ]
    chosen = [c for c in cfg.codecs if c in CODEC_KEY]
    attrs += [(f"voice.codecPref.{CODEC_KEY[c]}", str(rank)) for rank, c in enumerate(chosen, start=1)]
    attrs += [(f"voice.codecPref.{CODEC_KEY[c]}", "") for c in profile.codecs
              if c in CODEC_KEY and c not in chosen]
    body = "\n".join(f"  {key}={quoteattr(clean(value))}" for key, value in attrs)
    return "\n".join([XML_DECL, f"<!-- voiplab: {profile.vendor} {profile.model} {cfg.mac} -->",
                      "<polycomConfig", body, "/>", ""])
