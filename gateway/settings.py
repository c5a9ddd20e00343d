"""Settings for ``voiplab serve``: command-line flags over ``VOIPLAB_*`` environment variables.

Embedded defaults run a complete lab on loopback with SQLite and in-memory
state, so ``voiplab serve`` needs nothing installed besides the package.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def split_hostport(value: str, default_port: int) -> tuple[str, int]:
    """'127.0.0.1:5060', '[::1]:5060', '::1', 'localhost' → (host, port)."""
    value = value.strip()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") and rest[1:] else default_port
        return host, port
    if value.count(":") == 1:
        host, port_text = value.split(":")
        return host, int(port_text) if port_text else default_port
    return value, default_port


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VOIPLAB_", extra="ignore")

    sip: list[str] = Field(default_factory=lambda: ["127.0.0.1:5060"],
                           description="SIP listen addresses (UDP and TCP on each)")
    api: str = "127.0.0.1:8080"
    db: str = "sqlite:///data/voiplab.db"
    domain: str = "voiplab.test"
    time_scale: float = 1.0
    data_dir: Path = Path("data")
    api_token: str | None = None
    tls: bool = False
    tls_port: int | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    advertise: str | None = None  # host written into Via/Record-Route; default: first SIP host
    digest_algorithms: list[str] = Field(default_factory=lambda: ["MD5", "SHA-256"])
    nonce_lifetime: float = 300.0
    min_expires: int = 60
    max_contacts: int = 10
    flood_window: float = 10.0  # R27 guard: attempts counted over this many seconds
    flood_per_line: int = 60  # …per calling line before it is banned
    flood_per_callee: int = 60  # …per dialled number before it is banned
    flood_ban_seconds: float = 300.0
    dialog_timeout: float = 12 * 3600.0  # a call whose BYE never crossed us ends after this
    demo: bool = False
    node: str = "gw1"
    log_level: str = "INFO"
    registrar_workers: int = Field(default=0, ge=0, le=64,
                                   description="extra processes that handle UDP REGISTER (gateway/regworkers.py)")

    @field_validator("time_scale")
    @classmethod
    def _positive_scale(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("time scale must be positive")
        return v

    def sip_addresses(self) -> list[tuple[str, int]]:
        return [split_hostport(s, 5060) for s in self.sip]

    def api_address(self) -> tuple[str, int]:
        return split_hostport(self.api, 8080)
