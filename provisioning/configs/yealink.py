"""Yealink `y0000000000XX.cfg` (common) and `<mac>.cfg` (per device).

Keys: `account.N.*` and `account.N.codec.<name>.enable/priority` (WPP
wazo_yealink/v86/templates/base.tpl; FPBX yealink/t54w/{$mac}.cfg);
`transport_type` 0 UDP, 1 TCP, 2 TLS (WPP); `static.auto_provision.server.url`
for later boots. Every codec the model supports is written, disabled unless
chosen, so the phone's own defaults never decide.
"""

from __future__ import annotations

from hardware_profiles.catalog import HardwareProfile
from provisioning.configs.model import DeviceConfig, clean

TRANSPORT = {"udp": 0, "tcp": 1, "tls": 2}
CODEC_KEY = {"pcmu": "pcmu", "pcma": "pcma", "g722": "g722", "g729": "g729", "g726": "g726_32",
             "g723": "g723_53", "ilbc": "ilbc", "opus": "opus"}
HEADER = "#!version:1.0.0.1"


def common(profile: HardwareProfile, name: str, base_url: str) -> str:
    return "\n".join([
        HEADER,
        f"## voiplab: common settings for {profile.vendor} {profile.model} ({name})",
        f"static.auto_provision.server.url = {clean(base_url)}/",
        "",
    ])


def device(profile: HardwareProfile, name: str, cfg: DeviceConfig) -> str:
    out = [HEADER, f"## voiplab: {profile.vendor} {profile.model} {cfg.mac}"]
    chosen = [c for c in cfg.codecs if c in CODEC_KEY]
    others = [c for c in profile.codecs if c in CODEC_KEY and c not in chosen]
    for ln in cfg.lines:
        n = ln.index
        out += [
            f"account.{n}.enable = 1",
            f"account.{n}.label = {clean(ln.label)}",
            f"account.{n}.display_name = {clean(ln.display_name)}",
            f"account.{n}.user_name = {clean(ln.user)}",
            f"account.{n}.auth_name = {clean(ln.auth_user)}",
            f"account.{n}.password = {clean(ln.password)}",
            f"account.{n}.sip_server.1.address = {clean(cfg.sip_server)}",
            f"account.{n}.sip_server.1.port = {cfg.sip_port}",
            f"account.{n}.sip_server.1.transport_type = {TRANSPORT[cfg.transport]}",
        ]
        for rank, codec in enumerate(chosen, start=1):
            out += [f"account.{n}.codec.{CODEC_KEY[codec]}.enable = 1",
                    f"account.{n}.codec.{CODEC_KEY[codec]}.priority = {rank}"]
        out += [f"account.{n}.codec.{CODEC_KEY[c]}.enable = 0" for c in others]
    out += [f"static.auto_provision.server.url = {clean(cfg.provisioning_url)}/", ""]
    return "\n".join(out)
