"""Dispatch to the renderer a hardware profile names."""

from __future__ import annotations

from collections.abc import Callable

from hardware_profiles.catalog import HardwareProfile
from provisioning.configs import cisco_spa, grandstream, poly, yealink
from provisioning.configs.model import DeviceConfig, RenderError

Common = Callable[[HardwareProfile, str, str], str]
Device = Callable[[HardwareProfile, str, DeviceConfig], str]

RENDERERS: dict[str, tuple[Common, Device, str]] = {
    "yealink": (yealink.common, yealink.device, "text/plain; charset=utf-8"),
    "poly": (poly.common, poly.device, "application/xml"),
    "cisco-spa": (cisco_spa.common, cisco_spa.device, "application/xml"),
    "grandstream-ht80x": (grandstream.common, grandstream.device_ht80x, "application/xml"),
    "grandstream-ht81x": (grandstream.common, grandstream.device_ht81x, "application/xml"),
}


def _renderer(profile: HardwareProfile) -> tuple[Common, Device, str]:
    if profile.renderer is None or profile.renderer not in RENDERERS:
        raise RenderError(f"no configuration renderer for {profile.vendor} {profile.model}")
    return RENDERERS[profile.renderer]


def content_type(profile: HardwareProfile) -> str:
    return _renderer(profile)[2]


def render(profile: HardwareProfile, file_name: str, config: DeviceConfig | None, base_url: str) -> bytes:
    """Bytes of `file_name` for `profile`; `config` None means a common file."""
    common, device, _ = _renderer(profile)
    base = base_url.rstrip("/")
    if config is None:
        if file_name.lower() not in (f.lower() for f in profile.files_common):
            raise RenderError(f"{file_name} is not a common file of {profile.model}")
        return common(profile, file_name, base).encode()
    if file_name.lower() not in (f.lower() for f in profile.file_names(config.mac)):
        raise RenderError(f"{file_name} is not a file of {profile.model} {config.mac}")
    return device(profile, file_name, config).encode()
