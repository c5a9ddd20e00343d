"""Hardware profile catalog: device models as data files, validated at load.

Why data and not code: the architecture keeps every vendor number (lines per
model, codecs, MAC policy) in `hardware_profiles/data/<id>.toml`, so adding a
model is a data change that the loader checks. Each field may carry a
provenance note (verified / derived / unverified + source) because many vendor
facts are unconfirmed; later issues turn only *verified* facts into hard rules.

Pure: reads TOML files it is pointed at, imports nothing of ours.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KINDS = ("desk", "dect", "conference", "ata", "softphone")
MAC_POLICIES = ("required", "optional", "forbidden")
TRANSPORTS = ("udp", "tcp", "tls")
PROVENANCE_WORDS = ("verified", "derived", "unverified")
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
_OUI_RE = re.compile(r"^[0-9a-f]{6}$")

DEFAULT_DATA_DIR = Path(__file__).resolve().parent / "data"


class CatalogError(ValueError):
    """A profile file is malformed; names the file and the field."""

    def __init__(self, source: str, field_name: str, message: str) -> None:
        super().__init__(f"{source}: {field_name}: {message}")
        self.source = source
        self.field = field_name
        self.message = message


@dataclass(frozen=True, slots=True)
class HardwareProfile:
    """One device model as the platform sees it (a subset of notes §4.1; #3 grows it)."""

    id: str
    vendor: str
    model: str
    kind: str
    max_lines: int
    mac_policy: str
    codecs: tuple[str, ...] = ()
    transports: tuple[str, ...] = ("udp",)
    ouis: tuple[str, ...] = ()
    provenance: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "vendor": self.vendor,
            "model": self.model,
            "kind": self.kind,
            "max_lines": self.max_lines,
            "mac_policy": self.mac_policy,
            "codecs": list(self.codecs),
            "transports": list(self.transports),
            "ouis": list(self.ouis),
            "provenance": dict(self.provenance),
        }


@dataclass(frozen=True)
class HardwareCatalog:
    """Immutable id → profile map, loaded once by the composition root and passed in."""

    profiles: Mapping[str, HardwareProfile]

    def get(self, profile_id: str) -> HardwareProfile | None:
        return self.profiles.get(profile_id)

    def __contains__(self, profile_id: object) -> bool:
        return profile_id in self.profiles

    def __iter__(self) -> Iterator[HardwareProfile]:
        return iter(sorted(self.profiles.values(), key=lambda p: p.id))

    def __len__(self) -> int:
        return len(self.profiles)


def _str(data: Mapping[str, Any], key: str, source: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise CatalogError(source, key, "required non-empty string")
    return value.strip()


def _str_list(data: Mapping[str, Any], key: str, source: str) -> tuple[str, ...]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise CatalogError(source, key, "must be a list of non-empty strings")
    return tuple(value)


def parse_profile(data: Mapping[str, Any], source: str) -> HardwareProfile:
    """Validate one decoded TOML document; raise CatalogError naming the bad field."""
    known = {"id", "vendor", "model", "kind", "max_lines", "mac_policy", "codecs",
             "transports", "ouis", "provenance"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise CatalogError(source, unknown[0], "unknown field")
    profile_id = _str(data, "id", source)
    if not _ID_RE.match(profile_id):
        raise CatalogError(source, "id", "lowercase letters, digits and '-' (2-63 chars)")
    kind = _str(data, "kind", source)
    if kind not in KINDS:
        raise CatalogError(source, "kind", f"one of {', '.join(KINDS)}")
    max_lines = data.get("max_lines")
    if not isinstance(max_lines, int) or isinstance(max_lines, bool) or not 1 <= max_lines <= 1000:
        raise CatalogError(source, "max_lines", "integer between 1 and 1000")
    mac_policy = _str(data, "mac_policy", source)
    if mac_policy not in MAC_POLICIES:
        raise CatalogError(source, "mac_policy", f"one of {', '.join(MAC_POLICIES)}")
    transports = _str_list(data, "transports", source) or ("udp",)
    bad = [t for t in transports if t not in TRANSPORTS]
    if bad:
        raise CatalogError(source, "transports", f"unknown transport {bad[0]!r}")
    ouis = tuple(o.lower().replace(":", "").replace("-", "") for o in _str_list(data, "ouis", source))
    bad = [o for o in ouis if not _OUI_RE.match(o)]
    if bad:
        raise CatalogError(source, "ouis", f"not a 6-hex-digit OUI: {bad[0]!r}")
    provenance = data.get("provenance", {})
    if not isinstance(provenance, dict):
        raise CatalogError(source, "provenance", "must be a table")
    for key, note in provenance.items():
        if key not in known:
            raise CatalogError(source, f"provenance.{key}", "names no profile field")
        if not isinstance(note, str) or note.split(":", 1)[0].strip() not in PROVENANCE_WORDS:
            raise CatalogError(source, f"provenance.{key}",
                               "must start with verified:, derived: or unverified:")
    return HardwareProfile(
        id=profile_id,
        vendor=_str(data, "vendor", source),
        model=_str(data, "model", source),
        kind=kind,
        max_lines=max_lines,
        mac_policy=mac_policy,
        codecs=_str_list(data, "codecs", source),
        transports=transports,
        ouis=ouis,
        provenance=dict(provenance),
    )


def load_catalog(data_dir: Path | None = None) -> HardwareCatalog:
    """Load every `<id>.toml` in `data_dir`; the file name must equal the profile id."""
    directory = data_dir or DEFAULT_DATA_DIR
    profiles: dict[str, HardwareProfile] = {}
    for path in sorted(directory.glob("*.toml")):
        source = path.name
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise CatalogError(source, "-", f"invalid TOML: {exc}") from exc
        profile = parse_profile(data, source)
        if profile.id != path.stem:
            raise CatalogError(source, "id", f"must match the file name {path.stem!r}")
        profiles[profile.id] = profile
    if not profiles:
        raise CatalogError(str(directory), "-", "no hardware profiles found")
    return HardwareCatalog(profiles=profiles)
