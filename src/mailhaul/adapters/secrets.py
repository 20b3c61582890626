"""Secrets encrypted at rest (source passwords, OAuth2 tokens, OAuth client secrets):
AES-256-GCM bound to their row and purpose, with key ids.

The key file (mode 0600, outside the database) holds one key per line, ``<id> <base64>``;
the last line is the current key. A ciphertext is ``v1.<key id>.<base64(nonce|ct)>`` and
its associated data names the purpose and the row, so a ciphertext copied to another row,
or from a password column to a token column, fails.
"""

from __future__ import annotations

import base64
import os
import secrets
from enum import StrEnum
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mailhaul.domain.errors import ConfigError

_VERSION = "v1"


class Purpose(StrEnum):
    """What a ciphertext holds, and so which row id it is bound to."""

    ACCOUNT_PASSWORD = "account-password"  # noqa: S105 (a name); bound to the account id
    ACCOUNT_TOKENS = "account-oauth-tokens"  # bound to the account id
    CLIENT_SECRET = "oauth-client-secret"  # noqa: S105 (bound to the provider id)


_NOUNS = {
    Purpose.ACCOUNT_PASSWORD: ("account", "password"),
    Purpose.ACCOUNT_TOKENS: ("account", "OAuth2 tokens"),
    Purpose.CLIENT_SECRET: ("OAuth provider", "client secret"),
}


def _aad(row_id: int, purpose: Purpose) -> bytes:
    return f"mailhaul/{purpose}/{row_id}".encode()


class SecretBox:
    """Encrypts and decrypts account passwords with the keys of one key file."""

    def __init__(self, key_file: Path) -> None:
        self.key_file = key_file
        self._keys = self._load()

    def _load(self) -> dict[str, bytes]:
        try:
            text = self.key_file.read_text("ascii")
        except FileNotFoundError:
            raise ConfigError(f"key file {self.key_file} is missing: run `mailhaul init`") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read key file {self.key_file}: {exc}") from exc
        keys: dict[str, bytes] = {}
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                key_id, encoded = line.split()
                key = base64.b64decode(encoded, validate=True)
            except ValueError:
                raise ConfigError(f"{self.key_file}:{number}: not a key line") from None
            if len(key) != 32:
                raise ConfigError(f"{self.key_file}:{number}: key is not 256 bits")
            keys[key_id] = key
        if not keys:
            raise ConfigError(f"key file {self.key_file} holds no key")
        return keys

    @property
    def current_key_id(self) -> str:
        """The id of the key new ciphertexts use."""
        return next(reversed(self._keys))

    def encrypt(
        self, plaintext: str, row_id: int, purpose: Purpose = Purpose.ACCOUNT_PASSWORD
    ) -> str:
        """Encrypt a secret for one row (an account's password unless ``purpose`` says)."""
        key_id = self.current_key_id
        nonce = os.urandom(12)
        aad = _aad(row_id, purpose)
        sealed = AESGCM(self._keys[key_id]).encrypt(nonce, plaintext.encode(), aad)
        return f"{_VERSION}.{key_id}.{base64.b64encode(nonce + sealed).decode()}"

    def decrypt(self, token: str, row_id: int, purpose: Purpose = Purpose.ACCOUNT_PASSWORD) -> str:
        """Decrypt a secret; a wrong key, row, purpose or tampered text is a ConfigError."""
        row, noun = _NOUNS[purpose]
        try:
            version, key_id, body = token.split(".")
            raw = base64.b64decode(body, validate=True)
        except ValueError:
            raise ConfigError(f"{row} {row_id}: stored {noun} is malformed") from None
        if version != _VERSION or key_id not in self._keys:
            raise ConfigError(
                f"{row} {row_id}: {noun} was encrypted with key {key_id!r}, "
                f"which is not in {self.key_file}"
            )
        try:
            plain = AESGCM(self._keys[key_id]).decrypt(raw[:12], raw[12:], _aad(row_id, purpose))
        except InvalidTag:
            raise ConfigError(f"{row} {row_id}: stored {noun} fails its check") from None
        return plain.decode()

    def key_id_of(self, token: str) -> str:
        """The key id a ciphertext was made with."""
        return token.split(".")[1] if token.count(".") == 2 else ""

    def add_key(self) -> str:
        """Append a fresh key as the current one; returns its id."""
        key_id = secrets.token_hex(4)
        self._keys[key_id] = AESGCM.generate_key(bit_length=256)
        self._write()
        return key_id

    def drop_keys_except_current(self) -> list[str]:
        """Forget every key but the current one; returns the dropped ids."""
        current = self.current_key_id
        dropped = [key_id for key_id in self._keys if key_id != current]
        self._keys = {current: self._keys[current]}
        self._write()
        return dropped

    def _write(self) -> None:
        lines = "".join(f"{kid} {base64.b64encode(k).decode()}\n" for kid, k in self._keys.items())
        write_private_file(self.key_file, lines)

    @classmethod
    def create(cls, key_file: Path) -> SecretBox:
        """Create a key file with one key unless it exists; returns the box."""
        if not key_file.exists():
            key_id = secrets.token_hex(4)
            key = base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()
            write_private_file(key_file, f"{key_id} {key}\n")
        return cls(key_file)


def write_private_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically with mode 0600 (fsync'd before the rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
