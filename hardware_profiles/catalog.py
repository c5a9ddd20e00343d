"""Hardware profile catalog: device models as data files, validated at load.

Why data and not code: every vendor number (SIP lines, FXS/FXO ports, codecs,
file names, User-Agent shape) lives in `hardware_profiles/data/<id>.toml`, so
adding a model is a data change that this loader checks. Each field carries a
provenance note, `verified: <source>`, `derived: <source>` or `unverified: …`,
because many vendor facts are unconfirmed (notes/provisioning.md): checks built
on an *unverified* field only warn (`HardwareProfile.is_verified`).

Pure: reads the TOML files it is pointed at, imports nothing of ours.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KINDS = ("desk_phone", "dect", "conference", "ata", "softphone", "room_kit_component")
MAC_POLICIES = ("required", "optional", "forbidden")
TRANSPORTS = ("udp", "tcp", "tls")
CODECS = ("pcmu", "pcma", "g722", "g729", "g726", "g723", "ilbc", "opus", "siren", "dolby-voice")
CONFIG_FORMATS = ("yealink-cfg", "polycom-xml", "cisco-spa-xml", "grandstream-xml", "obihai-xml", "none")
RENDERERS = ("yealink", "poly", "cisco-spa", "grandstream-ht80x", "grandstream-ht81x")
ROOM_KIT_ROLES = ("audio", "camera", "computer", "input")
PROVENANCE_WORDS = ("verified", "derived", "unverified")
FILE_PLACEHOLDERS = ("{mac}", "{MAC}")
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
_OUI_RE = re.compile(r"^[0-9a-f]{6}$")
_FILE_RE = re.compile(r"^[A-Za-z0-9._{}$-]{1,80}$")

DEFAULT_DATA_DIR = Path(__file__).resolve().parent / "data"

#: Every field a profile file may (or must) have; `provenance` may annotate any of them.
FIELDS = ("id", "vendor", "model", "kind", "sip_lines", "fxs_ports", "fxo_ports", "line_keys",
          "codecs", "t38", "transports", "poe_class", "network_ports", "firmware_pattern",
          "ouis", "mac_policy", "ua_pattern", "config_format", "renderer", "files_common",
          "files_device", "room_kit_roles", "notes", "provenance")
REQUIRED = ("id", "vendor", "model", "kind", "sip_lines", "mac_policy", "codecs", "transports",
            "config_format")


class CatalogError(ValueError):
    """A profile file is malformed; names the file and the field."""

    def __init__(self, source: str, field_name: str, message: str) -> None:
        super().__init__(f"{source}: {field_name}: {message}")
        self.source = source
        self.field = field_name
        self.message = message


@dataclass(frozen=True, slots=True)
class UaMatch:
    """What a User-Agent says about the device (any part may be missing)."""

    profile_id: str
    firmware: str | None
    mac: str | None  # 12 lowercase hex digits


@dataclass(frozen=True, slots=True)
class HardwareProfile:
    """One device model as the platform sees it (notes/provisioning.md §4.1).

    Ports: FXS ports are numbered 1..fxs_ports, FXO ports follow them
    (fxs_ports+1 .. fxs_ports+fxo_ports). `files_common` / `files_device` are
    the names a phone of this model requests; `{mac}` / `{MAC}` stand for its
    MAC in lower / upper case. `ua_pattern` is a regular expression with the
    named group `firmware` and optionally `mac`.
    """

    id: str
    vendor: str
    model: str
    kind: str
    sip_lines: int
    mac_policy: str
    codecs: tuple[str, ...]
    transports: tuple[str, ...]
    config_format: str
    fxs_ports: int = 0
    fxo_ports: int = 0
    line_keys: int = 0
    t38: bool = False
    poe_class: str | None = None
    network_ports: tuple[str, ...] = ()
    firmware_pattern: str | None = None
    ouis: tuple[str, ...] = ()
    ua_pattern: str | None = None
    renderer: str | None = None
    files_common: tuple[str, ...] = ()
    files_device: tuple[str, ...] = ()
    room_kit_roles: tuple[str, ...] = ()
    notes: str = ""
    provenance: Mapping[str, str] = field(default_factory=dict)
    _ua_re: re.Pattern[str] | None = field(default=None, repr=False, compare=False)
    _fw_re: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    @property
    def max_lines(self) -> int:
        """SIP registrations the device can hold (alias kept for #2 callers)."""
        return self.sip_lines

    def provenance_word(self, field_name: str) -> str:
        """`verified`, `derived` or `unverified` (a field without a note is unverified)."""
        note = self.provenance.get(field_name, "unverified:")
        return note.split(":", 1)[0].strip()

    def is_verified(self, field_name: str) -> bool:
        """A fact good enough for a hard rule: verified or derived from a cited source."""
        return self.provenance_word(field_name) in ("verified", "derived")

    def port_kind(self, port: int) -> str | None:
        """`fxs`, `fxo`, or None when the device has no such port."""
        if 1 <= port <= self.fxs_ports:
            return "fxs"
        if self.fxs_ports < port <= self.fxs_ports + self.fxo_ports:
            return "fxo"
        return None

    def match_ua(self, user_agent: str) -> UaMatch | None:
        if self._ua_re is None:
            return None
        m = self._ua_re.search(user_agent)
        if m is None:
            return None
        groups = m.groupdict()
        mac = groups.get("mac")
        mac = re.sub(r"[^0-9a-fA-F]", "", mac).lower() if mac else None
        return UaMatch(self.id, groups.get("firmware"), mac if mac and len(mac) == 12 else None)

    def firmware_ok(self, firmware: str) -> bool | None:
        """Whether `firmware` fits the expected pattern (None when no pattern is known)."""
        if self._fw_re is None:
            return None
        return self._fw_re.fullmatch(firmware) is not None

    def file_names(self, mac: str) -> tuple[str, ...]:
        """The per-device file names for this MAC (12 lowercase hex digits)."""
        return tuple(f.replace("{mac}", mac).replace("{MAC}", mac.upper()) for f in self.files_device)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "vendor": self.vendor, "model": self.model, "kind": self.kind,
            "sip_lines": self.sip_lines, "max_lines": self.sip_lines,
            "fxs_ports": self.fxs_ports, "fxo_ports": self.fxo_ports, "line_keys": self.line_keys,
            "codecs": list(self.codecs), "t38": self.t38, "transports": list(self.transports),
            "poe_class": self.poe_class, "network_ports": list(self.network_ports),
            "firmware_pattern": self.firmware_pattern, "ouis": list(self.ouis),
            "mac_policy": self.mac_policy, "ua_pattern": self.ua_pattern,
            "config_format": self.config_format, "renderer": self.renderer,
            "files_common": list(self.files_common), "files_device": list(self.files_device),
            "room_kit_roles": list(self.room_kit_roles), "notes": self.notes,
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

    def vendor_of_oui(self, oui: str) -> str | None:
        """Which catalog vendor an OUI (6 lowercase hex digits) is registered to, if known."""
        for profile in self.profiles.values():
            if oui in profile.ouis:
                return profile.vendor
        return None

    def match_ua(self, user_agent: str) -> list[UaMatch]:
        """Every profile whose User-Agent pattern matches (normally zero or one)."""
        found = (p.match_ua(user_agent) for p in self)
        return [m for m in found if m is not None]

    def common_files(self) -> dict[str, tuple[HardwareProfile, ...]]:
        """Lower-cased common file name → the profiles that request it."""
        table: dict[str, list[HardwareProfile]] = {}
        for p in self:
            for name in p.files_common:
                table.setdefault(name.lower(), []).append(p)
        return {k: tuple(v) for k, v in table.items()}


# --- parsing ---------------------------------------------------------------------------------

def _str(data: Mapping[str, Any], key: str, source: str, *, required: bool = True) -> str | None:
    value = data.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise CatalogError(source, key, "required non-empty string")
    return value.strip()


def _str_list(data: Mapping[str, Any], key: str, source: str, *, unique: bool = True) -> tuple[str, ...]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise CatalogError(source, key, "must be a list of non-empty strings")
    if unique and len(set(value)) != len(value):
        raise CatalogError(source, key, "duplicate entry")
    return tuple(value)


def _int(data: Mapping[str, Any], key: str, source: str, lo: int, hi: int, default: int | None = None) -> int:
    value = data.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise CatalogError(source, key, f"integer between {lo} and {hi}")
    return value


def _choices(values: tuple[str, ...], allowed: tuple[str, ...], key: str, source: str) -> None:
    bad = [v for v in values if v not in allowed]
    if bad:
        raise CatalogError(source, key, f"unknown value {bad[0]!r}; one of {', '.join(allowed)}")


def _regex(pattern: str | None, key: str, source: str) -> re.Pattern[str] | None:
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise CatalogError(source, key, f"invalid regular expression: {exc}") from None


def parse_profile(data: Mapping[str, Any], source: str) -> HardwareProfile:
    """Validate one decoded TOML document; raise CatalogError naming the bad field."""
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise CatalogError(source, unknown[0], "unknown field")
    for key in REQUIRED:
        if key not in data:
            raise CatalogError(source, key, "required")
    profile_id = _str(data, "id", source)
    assert profile_id is not None
    if not _ID_RE.match(profile_id):
        raise CatalogError(source, "id", "lowercase letters, digits and '-' (2-63 chars)")
    kind = _str(data, "kind", source)
    if kind not in KINDS:
        raise CatalogError(source, "kind", f"one of {', '.join(KINDS)}")
    sip_lines = _int(data, "sip_lines", source, 0, 1000)
    fxs, fxo = _int(data, "fxs_ports", source, 0, 64, 0), _int(data, "fxo_ports", source, 0, 64, 0)
    if kind == "ata" and fxs + fxo == 0:
        raise CatalogError(source, "fxs_ports", "an ATA has at least one FXS or FXO port")
    if kind != "ata" and fxs + fxo:
        raise CatalogError(source, "fxs_ports", "only ATAs have FXS/FXO ports")
    if kind != "room_kit_component" and sip_lines < 1:
        raise CatalogError(source, "sip_lines", "at least 1 for a calling device")
    mac_policy = _str(data, "mac_policy", source)
    if mac_policy not in MAC_POLICIES:
        raise CatalogError(source, "mac_policy", f"one of {', '.join(MAC_POLICIES)}")
    if kind == "softphone" and mac_policy != "forbidden":
        raise CatalogError(source, "mac_policy", "a softphone has no MAC: forbidden")
    codecs = _str_list(data, "codecs", source)
    _choices(codecs, CODECS, "codecs", source)
    transports = _str_list(data, "transports", source)
    _choices(transports, TRANSPORTS, "transports", source)
    t38 = data.get("t38", False)
    if not isinstance(t38, bool):
        raise CatalogError(source, "t38", "true or false")
    ouis = tuple(o.lower().replace(":", "").replace("-", "") for o in _str_list(data, "ouis", source))
    bad = [o for o in ouis if not _OUI_RE.match(o)]
    if bad:
        raise CatalogError(source, "ouis", f"not a 6-hex-digit OUI: {bad[0]!r}")
    config_format = _str(data, "config_format", source)
    assert config_format is not None
    _choices((config_format,), CONFIG_FORMATS, "config_format", source)
    renderer = _str(data, "renderer", source, required=False)
    if renderer is not None:
        _choices((renderer,), RENDERERS, "renderer", source)
    files_common = _str_list(data, "files_common", source)
    files_device = _str_list(data, "files_device", source)
    for key, names in (("files_common", files_common), ("files_device", files_device)):
        bad = [n for n in names if not _FILE_RE.match(n)]
        if bad:
            raise CatalogError(source, key, f"not a plain file name: {bad[0]!r}")
    if any(p in n for n in files_common for p in FILE_PLACEHOLDERS):
        raise CatalogError(source, "files_common", "common files carry no MAC")
    if any(not any(p in n for p in FILE_PLACEHOLDERS) for n in files_device):
        raise CatalogError(source, "files_device", "each device file name contains {mac} or {MAC}")
    if renderer is not None and config_format == "none":
        raise CatalogError(source, "renderer", "a renderer needs a config_format")
    if renderer is not None and not files_device:
        raise CatalogError(source, "files_device", "a rendered profile names its device files")
    ua_pattern = _str(data, "ua_pattern", source, required=False)
    ua_re = _regex(ua_pattern, "ua_pattern", source)
    if ua_re is not None and "firmware" not in ua_re.groupindex:
        raise CatalogError(source, "ua_pattern", "needs a named group (?P<firmware>…)")
    firmware_pattern = _str(data, "firmware_pattern", source, required=False)
    fw_re = _regex(firmware_pattern, "firmware_pattern", source)
    roles = _str_list(data, "room_kit_roles", source)
    _choices(roles, ROOM_KIT_ROLES, "room_kit_roles", source)
    if (kind == "room_kit_component") != bool(roles):
        raise CatalogError(source, "room_kit_roles", "room kit components, and only they, list their roles")
    poe = _str(data, "poe_class", source, required=False)
    provenance = data.get("provenance", {})
    if not isinstance(provenance, dict):
        raise CatalogError(source, "provenance", "must be a table")
    for key, note in provenance.items():
        if key not in FIELDS or key == "provenance":
            raise CatalogError(source, f"provenance.{key}", "names no profile field")
        if not isinstance(note, str) or note.split(":", 1)[0].strip() not in PROVENANCE_WORDS:
            raise CatalogError(source, f"provenance.{key}",
                               "must start with verified:, derived: or unverified:")
        word, _, why = note.partition(":")
        if word.strip() != "unverified" and not why.strip():
            raise CatalogError(source, f"provenance.{key}", "verified/derived facts name their source")
    notes = data.get("notes", "")
    if not isinstance(notes, str):
        raise CatalogError(source, "notes", "must be a string")
    return HardwareProfile(
        id=profile_id, vendor=_str(data, "vendor", source) or "", model=_str(data, "model", source) or "",
        kind=kind, sip_lines=sip_lines, mac_policy=mac_policy, codecs=codecs, transports=transports,
        config_format=config_format, fxs_ports=fxs, fxo_ports=fxo,
        line_keys=_int(data, "line_keys", source, 0, 1000, 0), t38=t38, poe_class=poe,
        network_ports=_str_list(data, "network_ports", source, unique=False), firmware_pattern=firmware_pattern,
        ouis=ouis, ua_pattern=ua_pattern, renderer=renderer, files_common=files_common,
        files_device=files_device, room_kit_roles=roles, notes=notes, provenance=dict(provenance),
        _ua_re=ua_re, _fw_re=fw_re,
    )


def load_catalog(data_dir: Path | None = None) -> HardwareCatalog:
    """Load every `<id>.toml` in `data_dir`; the file name must equal the profile id.

    Cross-file check: an OUI belongs to one vendor only."""
    directory = data_dir or DEFAULT_DATA_DIR
    profiles: dict[str, HardwareProfile] = {}
    oui_owner: dict[str, str] = {}
    for path in sorted(directory.glob("*.toml")):
        source = path.name
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise CatalogError(source, "-", f"invalid TOML: {exc}") from exc
        profile = parse_profile(data, source)
        if profile.id != path.stem:
            raise CatalogError(source, "id", f"must match the file name {path.stem!r}")
        for oui in profile.ouis:
            owner = oui_owner.setdefault(oui, profile.vendor)
            if owner != profile.vendor:
                raise CatalogError(source, "ouis", f"{oui} already belongs to {owner}")
        profiles[profile.id] = profile
    if not profiles:
        raise CatalogError(str(directory), "-", "no hardware profiles found")
    return HardwareCatalog(profiles=profiles)
