"""Account management: add, edit, list, delete, enable/disable, rotate the key."""

from __future__ import annotations

import time
from pathlib import Path

from mailhaul.adapters.db.accounts import AccountStore
from mailhaul.adapters.db.database import Database
from mailhaul.adapters.db.oauth_providers import OAuthProviderStore
from mailhaul.adapters.db.records import MessageRecords, RefusedRecord
from mailhaul.adapters.db.runs import RunRecord, RunStore
from mailhaul.adapters.db.workers import WorkerStore
from mailhaul.adapters.secrets import Purpose, SecretBox
from mailhaul.domain.account import Account, AccountSpec, Trigger
from mailhaul.domain.validation import FieldError, check_password, password_needed, validated_spec


def _check_ca_file(spec: AccountSpec) -> None:
    if spec.ca_file is None:
        return
    try:
        is_file = Path(spec.ca_file).is_file()
    except (OSError, ValueError):  # e.g. a name too long for the file system
        is_file = False
    if not is_file:
        raise FieldError("ca_file", f"{spec.ca_file} is not a readable file")


class AccountService:
    """Use cases on accounts; passwords go in encrypted and never come out here."""

    def __init__(
        self,
        db: Database,
        accounts: AccountStore,
        runs: RunStore,
        secret_box: SecretBox,
        records: MessageRecords | None = None,
    ) -> None:
        self.db = db
        self.accounts = accounts
        self.runs = runs
        self.secret_box = secret_box
        self.records = records or MessageRecords()

    def add(self, spec: AccountSpec, password: str) -> Account:
        """Create an account; returns it as stored."""
        spec = validated_spec(spec)
        check_password(password)
        _check_ca_file(spec)
        with self.db.begin() as conn:
            account_id = self.accounts.add(conn, spec, time.time())
            token = self.secret_box.encrypt(password, account_id)
            self.accounts.set_password(conn, account_id, token)
            return self.accounts.get(conn, account_id)

    def edit(self, account_id: int, spec: AccountSpec, password: str | None = None) -> Account:
        """Replace an account's settings (and its password, when given).

        Without a password, an edit may not send the stored one anywhere else (another host,
        port or protocol, no TLS, no certificate check, another CA file): FieldError.
        """
        spec = validated_spec(spec)
        if password is not None:
            check_password(password)
        _check_ca_file(spec)
        with self.db.begin() as conn:
            if password is None:
                needed = password_needed(self.accounts.get(conn, account_id).spec, spec)
                if needed is not None:
                    raise needed
            self.accounts.update_spec(conn, account_id, spec, time.time())
            if password is not None:
                self.accounts.set_password(
                    conn, account_id, self.secret_box.encrypt(password, account_id)
                )
            return self.accounts.get(conn, account_id)

    def get(self, account_id: int) -> Account:
        """One account."""
        with self.db.begin() as conn:
            return self.accounts.get(conn, account_id)

    def password_of(self, account_id: int) -> str:
        """The decrypted source password (for a connection test; never shown)."""
        with self.db.begin() as conn:
            token = self.accounts.password_token(conn, account_id)
        return self.secret_box.decrypt(token, account_id)

    def list_all(self) -> list[Account]:
        """Every account."""
        with self.db.begin() as conn:
            return self.accounts.list_all(conn)

    def delete(self, account_id: int) -> None:
        """Delete an account and its history (delivered mail is untouched)."""
        with self.db.begin() as conn:
            self.accounts.delete(conn, account_id)

    def set_active(self, account_id: int, active: bool) -> Account:
        """Enable or disable polling of an account."""
        with self.db.begin() as conn:
            self.accounts.set_active(conn, account_id, active, time.time())
            return self.accounts.get(conn, account_id)

    def resume(self, account_id: int) -> Account:
        """Unpause an account (paused after login failures): due now, failures forgiven.

        A disabled account stays disabled; enabling resumes too.
        """
        with self.db.begin() as conn:
            self.accounts.resume(conn, account_id, time.time())
            return self.accounts.get(conn, account_id)

    def runs_of(self, account_id: int, limit: int = 50) -> list[RunRecord]:
        """An account's run history, newest first."""
        with self.db.begin() as conn:
            self.accounts.get(conn, account_id)
            return self.runs.history(conn, account_id, limit)

    def refused_of(self, account_id: int) -> list[RefusedRecord]:
        """Messages the local backend refused for good (they stay on the server)."""
        with self.db.begin() as conn:
            self.accounts.get(conn, account_id)
            return self.records.refused(conn, account_id)

    def retry(self, account_id: int, uid: str | None = None) -> int:
        """Forget refusals (all, or one UID) and make the account due now; how many."""
        with self.db.begin() as conn:
            account = self.accounts.get(conn, account_id)
            cleared = self.records.clear_refused(conn, account_id, uid)
            if account.spec.active:
                self.accounts.set_active(conn, account_id, True, time.time())
            return cleared

    def request_fetch(self, account_id: int, by: Trigger) -> None:
        """Put the account at the head of the running service's queue; its run will be
        recorded as asked for ``by``."""
        with self.db.begin() as conn:
            self.accounts.request_fetch(conn, account_id, time.time(), by)

    def request_due(self, owner: str | None = None, domains: frozenset[str] | None = None) -> int:
        """Put every due account (of ``owner`` / in ``domains``) at the head of the queue
        (their runs are recorded with the trigger ``cron``)."""
        with self.db.begin() as conn:
            return self.accounts.request_due(conn, time.time(), owner, domains, Trigger.CRON)

    def workers_alive(self) -> int:
        """How many `serve`/`worker` processes beat recently."""
        with self.db.begin() as conn:
            return WorkerStore().alive(conn, time.time())

    def rotate_key(self) -> tuple[str, int, list[str]]:
        """Add a new key, re-encrypt every stored secret with it (passwords, OAuth client
        secrets), then drop the old keys.

        The new key is written before the database changes and old keys are dropped only
        after the commit, so a crash at any point leaves every secret decryptable.
        Returns (new key id, secrets re-encrypted, dropped key ids).
        """
        box = self.secret_box
        new_id = box.add_key()
        providers = OAuthProviderStore()
        with self.db.begin() as conn:
            tokens = self.accounts.all_password_tokens(conn)
            for account_id, token in tokens:
                if not token:
                    continue
                plain = box.decrypt(token, account_id)
                self.accounts.set_password(conn, account_id, box.encrypt(plain, account_id))
            secrets = providers.all_secrets(conn)
            for provider_id, sealed in secrets:
                plain = box.decrypt(sealed, provider_id, Purpose.CLIENT_SECRET)
                providers.set_secret(
                    conn, provider_id, box.encrypt(plain, provider_id, Purpose.CLIENT_SECRET)
                )
        dropped = box.drop_keys_except_current()
        return new_id, len(tokens) + len(secrets), dropped
