"""Source passwords encrypted at rest: AES-256-GCM bound to the account row, with key ids.

The key file (mode 0600, outside the database) holds one key per line, ``<id> <base64>``;
the last line is the current key. A ciphertext is ``v1.<key id>.<base64(nonce|ct)>`` and
its associated data names the account, so a ciphertext copied to another row fails.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mailhaul.domain.errors import ConfigError

_VERSION = "v1"


def _aad(account_id: int) -> bytes:
    return f"mailhaul/account-password/{account_id}".encode()


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

    def encrypt(self, plaintext: str, account_id: int) -> str:
        """Encrypt a password for one account row."""
        key_id = self.current_key_id
        nonce = os.urandom(12)
        sealed = AESGCM(self._keys[key_id]).encrypt(nonce, plaintext.encode(), _aad(account_id))
        return f"{_VERSION}.{key_id}.{base64.b64encode(nonce + sealed).decode()}"

    def decrypt(self, token: str, account_id: int) -> str:
        """Decrypt a password; a wrong key, row or tampered text is a ConfigError."""
        try:
            version, key_id, body = token.split(".")
            raw = base64.b64decode(body, validate=True)
        except ValueError:
            raise ConfigError(f"account {account_id}: stored password is malformed") from None
        if version != _VERSION or key_id not in self._keys:
            raise ConfigError(
                f"account {account_id}: password was encrypted with key {key_id!r}, "
                f"which is not in {self.key_file}"
            )
        try:
            plain = AESGCM(self._keys[key_id]).decrypt(raw[:12], raw[12:], _aad(account_id))
        except InvalidTag:
            raise ConfigError(f"account {account_id}: stored password fails its check") from None
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
