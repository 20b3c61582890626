"""`mailhaul export --json` and `mailhaul import json`: every account with its options and
retrieval state (delivered/refused records, folder UIDVALIDITYs), for backup and moves.

Passwords are included only on request, then encrypted to a passphrase: scrypt (random
salt) derives an AES-256-GCM key; each password has its own random nonce and is bound to
its account's identity (owner, host, port, username) as associated data.
"""

from __future__ import annotations

import base64
import datetime
import os
import time
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from mailhaul.adapters.db.folders import FolderRecords
from mailhaul.adapters.db.oauth_providers import OAuthProviderStore
from mailhaul.adapters.db.records import MessageRecords
from mailhaul.domain.errors import ConfigError
from mailhaul.domain.filtering import FilterOptions, spam_action, virus_action
from mailhaul.domain.folders import FolderRules
from mailhaul.domain.options import Protocol, Security
from mailhaul.importers.common import OAUTH2_NOTE, ImportedAccount, ImportProblem, ParseResult
from mailhaul.services.accounts import AccountService
from mailhaul.services.importing import AccountState, StateFor

FORMAT = "mailhaul-export"
VERSION = 1
_SCRYPT = {"n": 2**15, "r": 8, "p": 1}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: object, what: str) -> bytes:
    try:
        return base64.b64decode(str(text), validate=True)
    except ValueError:
        raise ConfigError(f"{what} is not base64") from None


def _key(passphrase: str, salt: bytes, params: dict[str, int]) -> bytes:
    if not passphrase:
        raise ConfigError("the passphrase is empty")
    kdf = Scrypt(salt=salt, length=32, n=params["n"], r=params["r"], p=params["p"])
    return kdf.derive(passphrase.encode())


def _aad(data: dict[str, Any]) -> bytes:
    return (
        f"mailhaul-export/{data['owner']}/{data['host']}/{data['port']}/{data['username']}".encode()
    )


def export_data(
    service: AccountService,
    records: MessageRecords | None = None,
    passphrase: str | None = None,
) -> dict[str, Any]:
    """Every account as JSON-ready data; passwords only with a passphrase (encrypted)."""
    records = records or MessageRecords()
    out: dict[str, Any] = {"format": FORMAT, "version": VERSION, "exported_at": time.time()}
    key: bytes | None = None
    if passphrase is not None:
        salt = os.urandom(16)
        key = _key(passphrase, salt, _SCRYPT)
        out["passwords"] = {"kdf": "scrypt", **_SCRYPT, "salt": _b64(salt), "cipher": "aes-256-gcm"}
    accounts: list[dict[str, Any]] = []
    with service.db.read() as conn:  # providers by name: their ids mean nothing elsewhere
        providers = {p.id: p.name for p in OAuthProviderStore().list_all(conn)}
    for account in service.list_all():
        spec = account.spec
        data: dict[str, Any] = {
            **{k: v for k, v in spec.as_dict().items() if k != "oauth_provider_id"},
            "oauth_provider": providers.get(spec.oauth_provider_id or 0),
            "id": account.id,
            "last_run_at": account.last_run_at,
            "last_result": account.last_result,
        }
        with service.db.begin() as conn:
            data["folder_uidvalidity"] = FolderRecords().folder_uidvalidities(conn, account.id)
            data["messages"] = records.handled_rows(conn, account.id)
            token = service.accounts.password_token(conn, account.id)
        if key is not None and token:
            plain = service.secret_box.decrypt(token, account.id)
            nonce = os.urandom(12)
            sealed = AESGCM(key).encrypt(nonce, plain.encode(), _aad(data))
            data["password"] = {"nonce": _b64(nonce), "ciphertext": _b64(sealed)}
        accounts.append(data)
    out["accounts"] = accounts
    return out


def has_passwords(data: dict[str, Any]) -> bool:
    """Whether an export holds (encrypted) passwords."""
    return isinstance(data.get("passwords"), dict)


def parse_export(
    data: object, file: str, passphrase: str | None
) -> tuple[ParseResult, dict[str, AccountState]]:
    """The accounts of an export and their state (keyed by source), ready for ImportService."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(f'{file}: not a mailhaul export (no "format": "{FORMAT}")')
    if data.get("version") != VERSION:
        raise ConfigError(f"{file}: export version {data.get('version')} is not supported")
    key: bytes | None = None
    if has_passwords(data) and passphrase is not None:
        params = data["passwords"]
        try:
            scrypt = {name: int(params[name]) for name in ("n", "r", "p")}
        except (KeyError, TypeError, ValueError):
            raise ConfigError(f"{file}: the passwords section is malformed") from None
        key = _key(passphrase, _unb64(params.get("salt"), "the salt"), scrypt)
    result = ParseResult()
    states: dict[str, AccountState] = {}
    for number, item in enumerate(data.get("accounts") or [], 1):
        try:
            imported = _account(item, file, number, key)
        except (KeyError, TypeError, ValueError) as exc:
            result.problems.append(ImportProblem(file, number, f"account {number}: {exc!r}"))
            continue
        states[imported.source] = AccountState(
            records=[dict(r) for r in item.get("messages") or []],
            folders={str(k): int(v) for k, v in (item.get("folder_uidvalidity") or {}).items()},
        )
        result.accounts.append(imported)
    return result, states


def _account(item: dict[str, Any], file: str, number: int, key: bytes | None) -> ImportedAccount:
    password: str | None = None
    if key is not None and isinstance(item.get("password"), dict):
        sealed = item["password"]
        try:
            plain = AESGCM(key).decrypt(
                _unb64(sealed["nonce"], "a nonce"),
                _unb64(sealed["ciphertext"], "a ciphertext"),
                _aad(item),
            )
        except InvalidTag:
            raise ConfigError(
                f"{file}: account {number}: the password does not decrypt (wrong passphrase?)"
            ) from None
        password = plain.decode()
    protocol = Protocol(item["protocol"])
    oauth2 = item.get("sign_in") == "oauth2"
    imported = ImportedAccount(
        file=file,
        line=number,
        protocol=protocol,
        host=str(item["host"]),
        username=str(item["username"]),
        password=password,
        port=int(item["port"]),
        security=Security(item["security"]),
        verify_cert=bool(item["verify_cert"]),
        ca_file=item.get("ca_file"),
        keep=bool(item["keep"]),
        fetchall=bool(item["fetchall"]),
        flush=bool(item["flush"]),
        max_size=int(item["max_size"]),
        folders=tuple(str(f) for f in item["folders"]),
        owner=str(item["owner"]),
        deliver_to=str(item.get("deliver_to") or "") or None,
        interval=int(item["interval"]),
        active=bool(item["active"]),
        oauth2=oauth2,
        oauth_provider=str(item["oauth_provider"]) if item.get("oauth_provider") else None,
        filters=FilterOptions(
            spam_action(item.get("antispam", "off")), virus_action(item.get("antivirus", "off"))
        ),
        push=item["push"] if isinstance(item.get("push"), bool) else None,
        rules=_rules(item.get("folder_rules")),
        delete_after_days=_count(item.get("delete_after_days")),
        max_messages_per_run=_count(item.get("max_messages_per_run")),
        max_bytes_per_run=_count(item.get("max_bytes_per_run")),
        move_to=str(item.get("move_to") or ""),
        new_only=bool(item.get("new_only", False)),
        since=datetime.date.fromisoformat(str(item["since"])) if item.get("since") else None,
        push_folders=tuple(str(name) for name in item.get("push_folders") or ()),
    )
    if oauth2:
        imported.password = None
        imported.note(number, OAUTH2_NOTE)
    return imported


def _count(value: object) -> int | None:
    """A whole number of an export, or None."""
    return None if value is None else int(str(value))


def _rules(value: object) -> FolderRules | None:
    """An export's folder rules (None in an export made before they existed)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError("folder_rules: expected an object")
    return FolderRules.from_dict(value)


def state_reader(states: dict[str, AccountState]) -> StateFor:
    """The state of each account of an export, for ImportService.apply."""

    def state_for(imported: ImportedAccount, _spec: object) -> AccountState:
        return states.get(imported.source, AccountState())

    return state_for
