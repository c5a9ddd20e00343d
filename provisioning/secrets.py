"""Sealing SIP passwords so phone configs can carry them.

Why: the registrar needs only HA1 digests, but a phone fetching its config
needs the clear password. We keep it sealed (Fernet: AES-128-CBC + HMAC) with
a key that lives outside the database, so a copied database alone reveals no
password. Without a key (`SecretBox` absent) lines keep only their HA1 and
their configs cannot be rendered until the password is rotated.

The key is passed in (no globals): `SecretBox.from_file(path)` reads it or
creates it with mode 0600; `SecretBox.generate()` makes a throwaway one for
tests or a process whose database is throwaway too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken


class SealError(ValueError):
    """A sealed value does not open with this key (wrong key, or tampered)."""


@dataclass(frozen=True)
class SecretBox:
    key: bytes

    def __post_init__(self) -> None:
        Fernet(self.key)  # validates the key format early

    @classmethod
    def generate(cls) -> SecretBox:
        return cls(Fernet.generate_key())

    @classmethod
    def from_file(cls, path: Path) -> SecretBox:
        """Read the key, or create the file (0600) with a new key when it is missing."""
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(Fernet.generate_key())
        return cls(path.read_bytes().strip())

    def seal(self, plaintext: str) -> str:
        return Fernet(self.key).encrypt(plaintext.encode()).decode("ascii")

    def open(self, sealed: str) -> str:
        try:
            return Fernet(self.key).decrypt(sealed.encode("ascii")).decode()
        except (InvalidToken, ValueError) as exc:
            raise SealError("sealed value does not open with this key") from exc
