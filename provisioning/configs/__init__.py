"""Vendor configuration renderers: one neutral `DeviceConfig` in, the bytes a
real phone of that vendor expects out. Pure and deterministic (same input,
same bytes), so golden files pin every renderer.

`render(profile, file_name, config | None, base_url)` dispatches on the
profile's `renderer` (hardware_profiles data): common files (no MAC) get
`config=None`. Key names and encodings come from the cited templates in
notes/provisioning.md §1.5; each renderer module says which.
"""

from provisioning.configs.model import DeviceConfig, LineConfig, RenderError
from provisioning.configs.render import content_type, render

__all__ = ["DeviceConfig", "LineConfig", "RenderError", "content_type", "render"]
