"""Account management: add, edit, list, delete, enable/disable, rotate the key."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Connection

from mailhaul.adapters.db.accounts import AccountStore
from mailhaul.adapters.db.database import Database
from mailhaul.adapters.db.oauth_providers import OAuthProviderStore
from mailhaul.adapters.db.records import MessageRecords, RefusedRecord
from mailhaul.adapters.db.runs import RunRecord, RunStore
from mailhaul.adapters.db.sign_in import SignInStore
from mailhaul.adapters.db.workers import WorkerStore
from mailhaul.adapters.secrets import Purpose, SecretBox
from mailhaul.domain.account import Account, AccountSpec, Trigger
from mailhaul.domain.errors import NotFound
from mailhaul.domain.filtering import FilterOptions, SpamAction, VirusAction
from mailhaul.domain.oauth import NOT_CONNECTED, Grant, OAuthProvider
from mailhaul.domain.options import SignInMethod
from mailhaul.domain.validation import (
    FieldChecks,
    FieldError,
    check_password,
    password_needed,
    validated_spec,
)


def _check_ca_file(spec: AccountSpec) -> None:
    if spec.ca_file is None:
        return
    try:
        is_file = Path(spec.ca_file).is_file()
    except (OSError, ValueError):  # e.g. a name too long for the file system
        is_file = False
    if not is_file:
        raise FieldError("ca_file", f"{spec.ca_file} is not a readable file")


def _provider_of(conn: Connection, spec: AccountSpec) -> OAuthProvider:
    """The provider an OAuth2 spec names (a FieldError if there is none)."""
    if spec.oauth_provider_id is None:
        raise FieldError("oauth_provider", "an OAuth2 account needs a provider")
    try:
        return OAuthProviderStore().get(conn, spec.oauth_provider_id)
    except NotFound:
        raise FieldError("oauth_provider", "no such OAuth provider") from None


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
        self.scanners: Callable[[], tuple[bool, bool]] = lambda: (True, True)
        """Whether this server has (a spam scanner, a virus scanner): bootstrap reads the
        settings in force."""
        self.on_request: Callable[[], None] = lambda: None
        """Told after each "fetch now" request (a running service wakes its scheduler)."""
        self.files_folders: Callable[[str], bool] = lambda destination: True
        """Whether the delivery of an address files mail into folders (bootstrap asks the
        sink in force)."""

    def check_fields(
        self, spec: AccountSpec, password: str | None, before: AccountSpec | None
    ) -> None:
        """Every problem ``add`` (``before`` None) or ``edit`` would find in these fields,
        at once (FieldErrors for several), so a form reports them in one round trip."""
        checks = FieldChecks()
        oauth = spec.sign_in is SignInMethod.OAUTH2
        with checks.field():
            if oauth and password:
                raise FieldError("password", "an account signing in with OAuth2 has no password")
            if not oauth and (before is None or password is not None):
                check_password(password or "")
        with checks.field():
            _check_ca_file(spec)
        with checks.field():
            _check_filters(spec, before, self.scanners())
        rules = spec.options.rules
        if rules.asks_for_folders and not self.files_folders(spec.destination):
            checks.add(
                "into" if rules.into else "map",
                f"mail for {spec.destination} is delivered where mailhaul cannot choose a "
                "folder (SMTP, an MDA, or LMTP without delivery.lmtp_folder_detail): "
                "leave out --into and --map to a folder",
            )
        if before is not None and password is None and not oauth:
            needed = password_needed(before, spec)
            if before.sign_in is not SignInMethod.PASSWORD:
                needed = FieldError("password", "a password is needed to stop using OAuth2")
            if needed is not None:
                checks.add(needed.field, needed.message)
        checks.raise_any()

    def add(self, spec: AccountSpec, password: str | None) -> Account:
        """Create an account; returns it as stored. An OAuth2 account has no password; one
        whose owner must consent waits in "sign-in needed" until it is connected."""
        spec = validated_spec(spec)
        oauth = spec.sign_in is SignInMethod.OAUTH2
        self.check_fields(spec, password, None)
        with self.db.begin() as conn:
            account_id = self.accounts.add(conn, spec, time.time())
            if oauth:
                if _provider_of(conn, spec).grant is Grant.USER:
                    SignInStore().sign_in_needed(conn, account_id, NOT_CONNECTED)
            else:
                token = self.secret_box.encrypt(password or "", account_id)
                self.accounts.set_password(conn, account_id, token)
            return self.accounts.get(conn, account_id)

    def edit(self, account_id: int, spec: AccountSpec, password: str | None = None) -> Account:
        """Replace an account's settings (and its password, when given).

        Without a password, an edit may not send the stored one anywhere else (another host,
        port or protocol, no TLS, no certificate check, another CA file): FieldError. An
        OAuth2 account's tokens are not sent there either: it has to be connected again.
        """
        spec = validated_spec(spec)
        oauth = spec.sign_in is SignInMethod.OAUTH2
        with self.db.begin() as conn:
            before = self.accounts.get(conn, account_id).spec
            self.check_fields(spec, password, before)
            reconnect = oauth and (
                before.sign_in is not SignInMethod.OAUTH2
                or before.oauth_provider_id != spec.oauth_provider_id
                or password_needed(before, spec) is not None
            )
            if oauth:
                _provider_of(conn, spec)
            self.accounts.update_spec(conn, account_id, spec, time.time())
            if reconnect:
                why = "the server or provider changed" if before.sign_in is spec.sign_in else ""
                SignInStore().sign_in_needed(conn, account_id, why or NOT_CONNECTED)
                self.accounts.set_password(conn, account_id, "")
            elif not oauth and before.sign_in is SignInMethod.OAUTH2:
                SignInStore().signed_out(conn, account_id)
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

    def runs_of(
        self, account_id: int, limit: int = 50, before: int | None = None, hide_empty: bool = False
    ) -> list[RunRecord]:
        """An account's run history, newest first (see ``RunStore.history``)."""
        with self.db.begin() as conn:
            self.accounts.get(conn, account_id)
            return self.runs.history(conn, account_id, limit, before, hide_empty)

    def run_of(self, account_id: int, run_id: int) -> RunRecord:
        """One run of the account, with its log; NotFound if it has no such run (any more:
        runs past ``runs.keep_days`` are pruned)."""
        with self.db.begin() as conn:
            self.accounts.get(conn, account_id)
            run = self.runs.one(conn, account_id, run_id)
        if run is None:
            raise NotFound(f"account {account_id} has no run {run_id}")
        return run

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
        recorded as asked for ``by``. New mail a push watcher saw while the account's daily
        download budget is spent asks for nothing: the poll at the budget's end takes it (a
        person's "Fetch now" still runs, and its log says why it downloads nothing)."""
        now = time.time()
        with self.db.begin() as conn:
            if by == Trigger.PUSH and self.accounts.budget_spent(conn, account_id, now):
                return
            self.accounts.request_fetch(conn, account_id, now, by)
        self.on_request()

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
        secrets, OAuth2 tokens), then drop the old keys.

        The new key is written before the database changes and old keys are dropped only
        after the commit, so a crash at any point leaves every secret decryptable.
        Returns (new key id, secrets re-encrypted, dropped key ids).
        """
        box = self.secret_box
        new_id = box.add_key()
        providers, sign_ins = OAuthProviderStore(), SignInStore()
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
            token_sets = sign_ins.all_sealed_tokens(conn)
            for account_id, sealed in token_sets:
                plain = box.decrypt(sealed, account_id, Purpose.ACCOUNT_TOKENS)
                sign_ins.store_tokens(
                    conn, account_id, box.encrypt(plain, account_id, Purpose.ACCOUNT_TOKENS)
                )
        dropped = box.drop_keys_except_current()
        return new_id, len(tokens) + len(secrets) + len(token_sets), dropped


def _check_filters(
    spec: AccountSpec, before: AccountSpec | None, available: tuple[bool, bool]
) -> None:
    """Refuse a check this server cannot make (no scanner set) when it is being turned on;
    one already on stays (its runs say that the scanner is missing)."""
    spam, virus = available
    old = before.filters if before is not None else FilterOptions()
    turned_on = spec.filters
    if turned_on.antispam is not SpamAction.OFF and old.antispam is SpamAction.OFF and not spam:
        raise FieldError(
            "antispam",
            "this server has no spam scanner (an admin sets filter.rspamd or filter.spamd)",
        )
    if (
        turned_on.antivirus is not VirusAction.OFF
        and old.antivirus is VirusAction.OFF
        and not virus
    ):
        raise FieldError(
            "antivirus", "this server has no virus scanner (an admin sets filter.clamd)"
        )
