"""Applying imported accounts: validate, match, create or update, and carry state over.

An account is matched to a stored one by (owner, host, port, username, folders); a match is
updated, not duplicated, so importing the same file twice changes nothing the second time.
Already-seen state (UIDs the old tool delivered) is written before the account can be
polled: a new account is created switched off, its state written, then switched on, so a
crash in between leaves nothing that could deliver old mail again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mailhaul.adapters.db.folders import FolderRecords
from mailhaul.adapters.db.records import MessageRecords
from mailhaul.domain.account import Account, AccountSpec
from mailhaul.domain.errors import ConfigError
from mailhaul.domain.filtering import FilterOptions
from mailhaul.domain.folders import FolderRules
from mailhaul.domain.messages import RecordState
from mailhaul.domain.options import RetrievalOptions, SignInMethod, default_port
from mailhaul.domain.validation import FieldError, check_password, validated_spec
from mailhaul.importers.common import ImportedAccount, ImportProblem, ParseResult
from mailhaul.importers.getmailrc import address_from_maildir
from mailhaul.services.accounts import AccountService

MatchKey = tuple[str, str, int, str, tuple[str, ...]]


@dataclass(frozen=True)
class ImportDefaults:
    """What the command line says for what a file leaves open."""

    owner: str | None = None
    deliver_to: str | None = None
    local_domain: str | None = None
    interval: int = 300
    max_size: int = 100 * 1024 * 1024
    maildir_template: str = "{home}/mail/{domain}/{local}"
    home: str = ""
    oauth_hosts: dict[str, int] = field(default_factory=dict)
    """Mail servers of the registered preset providers (imap.gmail.com, …) → provider id."""
    oauth_provider: int | None = None
    """The provider of OAuth2 accounts on other servers (``--oauth-provider``)."""
    oauth_names: dict[str, int] = field(default_factory=dict)
    """Every registered provider by name (an export names its accounts' providers)."""
    filters: FilterOptions = field(default_factory=FilterOptions)
    """New accounts' spam and virus checks (``filter.antispam``, ``filter.antivirus``)."""

    def provider_for(self, host: str, name: str | None = None) -> int:
        """The OAuth2 provider of an account on ``host``, or named ``name`` by the file
        (ConfigError if none fits)."""
        if name is not None and name in self.oauth_names:
            return self.oauth_names[name]
        provider = self.oauth_hosts.get(host.lower(), self.oauth_provider)
        if provider is None:
            raise ConfigError(
                "it signs in with OAuth2: register its provider (`mailhaul oauth provider "
                "add`) or name one with --oauth-provider"
            )
        return provider


@dataclass
class AccountState:
    """Records to carry over for one account: message rows and folder UIDVALIDITYs."""

    records: list[dict[str, Any]] = field(default_factory=list)
    folders: dict[str, int] = field(default_factory=dict)


@dataclass
class Outcome:
    """What happened (or would happen) to one imported account."""

    action: str  # created | updated | unchanged | skipped
    source: str
    description: str
    account_id: int | None = None
    reason: str | None = None
    notes: list[str] = field(default_factory=list)
    seen: int = 0  # UIDs recorded as already delivered

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (no password, by construction)."""
        return {
            "action": self.action,
            "source": self.source,
            "account": self.description,
            "id": self.account_id,
            "reason": self.reason,
            "notes": self.notes,
            "already_seen": self.seen,
        }


@dataclass
class ImportSummary:
    """The result of one import: per-account outcomes, and notes about the files."""

    kind: str
    dry_run: bool
    outcomes: list[Outcome] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def count(self, action: str) -> int:
        """How many outcomes have this action."""
        return sum(1 for o in self.outcomes if o.action == action)

    def skip(self, problem: ImportProblem) -> None:
        """Record a row the parser could not read."""
        self.outcomes.append(Outcome("skipped", problem.source, "-", reason=problem.message))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "kind": self.kind,
            "dry_run": self.dry_run,
            **{a: self.count(a) for a in ("created", "updated", "unchanged", "skipped")},
            "already_seen": sum(o.seen for o in self.outcomes),
            "accounts": [o.to_dict() for o in self.outcomes],
            "notes": self.notes,
        }


StateFor = Callable[[ImportedAccount, AccountSpec], AccountState]


def match_key(spec: AccountSpec) -> MatchKey:
    """The identity of an account for re-imports: owner, host, port, username, folders."""
    return (
        spec.owner,
        spec.host,
        spec.port,
        spec.username,
        tuple(sorted(spec.options.folders)),
    )


def describe(spec: AccountSpec) -> str:
    """``pop3/ssl petrov@mail.example.net:995 -> i.petrov@mydomain.ru``."""
    return (
        f"{spec.protocol}/{spec.security} {spec.username}@{spec.host}:{spec.port} "
        f"-> {spec.destination}"
    )


def build_spec(imported: ImportedAccount, defaults: ImportDefaults) -> AccountSpec:
    """The validated spec of an imported account, or FieldError/ConfigError saying why not."""
    if imported.skip:
        raise ConfigError(imported.skip)
    deliver_to = imported.deliver_to
    if not deliver_to and imported.local_name:
        if defaults.local_domain:
            deliver_to = f"{imported.local_name}@{defaults.local_domain}"
        elif not defaults.deliver_to:
            raise ConfigError(
                f"local name {imported.local_name!r} is not an address: "
                "give --local-domain or --deliver-to"
            )
    if not deliver_to and imported.maildir:
        deliver_to = address_from_maildir(
            imported.maildir, defaults.maildir_template, defaults.home
        )
        if not deliver_to and not defaults.deliver_to:
            raise ConfigError(
                f"Maildir {imported.maildir} does not name a local address: give --deliver-to"
            )
    deliver_to = deliver_to or defaults.deliver_to or ""
    owner = imported.owner or defaults.owner or deliver_to
    if not owner:
        raise ConfigError("no local address to deliver to: give --deliver-to or --owner")
    spec = AccountSpec(
        owner=owner,
        protocol=imported.protocol,
        host=imported.host,
        port=imported.port or default_port(imported.protocol, imported.security),
        security=imported.security,
        username=imported.username,
        verify_cert=imported.verify_cert,
        ca_file=imported.ca_file,
        options=RetrievalOptions(
            keep=imported.keep,
            fetchall=imported.fetchall,
            flush=imported.flush,
            max_size=imported.max_size or defaults.max_size,
            folders=imported.folders,
            # fetchmail and getmail deliver every folder into the one mailbox: so does mailhaul
            rules=imported.rules or FolderRules.flat(imported.folders),
            delete_after_days=imported.delete_after_days,
            max_messages_per_run=imported.max_messages_per_run,
            max_bytes_per_run=imported.max_bytes_per_run,
            move_to=imported.move_to,
            new_only=imported.new_only,
            since=imported.since,
            push_folders=imported.push_folders,
        ),
        deliver_to=deliver_to,
        interval=imported.interval or defaults.interval,
        active=imported.active,
        filters=imported.filters or defaults.filters,
        push=imported.push,
    )
    if imported.oauth2:
        provider = defaults.provider_for(imported.host, imported.oauth_provider)
        spec = replace(spec, sign_in=SignInMethod.OAUTH2, oauth_provider_id=provider)
    spec = validated_spec(spec)
    if spec.deliver_to == spec.owner:
        spec = replace(spec, deliver_to="")
    if imported.password is not None:
        check_password(imported.password)
    if spec.ca_file is not None and not Path(spec.ca_file).is_file():
        raise FieldError("ca_file", f"{spec.ca_file} is not a readable file")
    return spec


@dataclass(frozen=True)
class KnownAccounts:
    """The accounts one import has met: those stored, by match key (the import adds what it
    creates), and where each account of this import was read (to skip a second mention)."""

    index: dict[MatchKey, Account | None]
    sources: dict[MatchKey, str] = field(default_factory=dict)


class ImportService:
    """Creates and updates accounts from parsed files, with their already-seen state."""

    def __init__(self, accounts: AccountService, records: MessageRecords | None = None) -> None:
        self.accounts = accounts
        self.records = records or MessageRecords()
        self.folders = FolderRecords()

    def apply(
        self,
        kind: str,
        parsed: ParseResult,
        defaults: ImportDefaults,
        *,
        dry_run: bool = False,
        state_for: StateFor | None = None,
    ) -> ImportSummary:
        """Import every parsed account (or, with dry_run, say what would happen)."""
        summary = ImportSummary(kind, dry_run, notes=list(parsed.global_notes))
        for problem in parsed.problems:
            summary.skip(problem)
        known = KnownAccounts(index={match_key(a.spec): a for a in self.accounts.list_all()})
        for imported in parsed.accounts:
            outcome = self._one(imported, defaults, known, dry_run, state_for)
            summary.outcomes.append(outcome)
        summary.outcomes.sort(key=_source_order)
        return summary

    def _one(
        self,
        imported: ImportedAccount,
        defaults: ImportDefaults,
        known: KnownAccounts,
        dry_run: bool,
        state_for: StateFor | None,
    ) -> Outcome:
        index, sources = known.index, known.sources
        notes = imported.notes  # the state reader may add to them
        try:
            spec = build_spec(imported, defaults)
        except ConfigError as exc:
            return Outcome(
                "skipped", imported.source, _brief(imported), reason=str(exc), notes=notes
            )
        key = match_key(spec)
        if key in sources:
            return Outcome(
                "skipped",
                imported.source,
                describe(spec),
                notes=notes,
                reason=f"the same account as {sources[key]}",
            )
        sources[key] = imported.source
        state = state_for(imported, spec) if state_for is not None else AccountState()
        existing = index.get(key)
        try:
            if existing is None:
                action, account_id, seen = self._create(spec, imported.password, state, dry_run)
                if imported.password is None and not imported.oauth2:
                    notes.append(
                        "no password: created switched off; set it with `mailhaul account edit "
                        f"{account_id or 'ID'} --password-stdin`, then `account enable`"
                    )
            else:
                action, seen = self._update(existing, spec, imported.password, state, dry_run)
                account_id = existing.id
        except FieldError as exc:
            return Outcome("skipped", imported.source, describe(spec), reason=str(exc), notes=notes)
        index[key] = None if account_id is None else self.accounts.get(account_id)
        return Outcome(action, imported.source, describe(spec), account_id, notes=notes, seen=seen)

    def _create(
        self, spec: AccountSpec, password: str | None, state: AccountState, dry_run: bool
    ) -> tuple[str, int | None, int]:
        if dry_run:
            return "created", None, len(_handled(state.records))
        if spec.sign_in is SignInMethod.OAUTH2:  # waits in "sign-in needed" until connected
            account_id = self.accounts.add(spec, None).id
            return "created", account_id, self._write_state(account_id, spec, state)
        if password is None:
            with self.accounts.db.begin() as conn:
                account_id = self.accounts.accounts.add(
                    conn, replace(spec, active=False), time.time()
                )
        else:
            account_id = self.accounts.add(replace(spec, active=False), password).id
        seen = self._write_state(account_id, spec, state)
        if spec.active and password is not None:
            self.accounts.set_active(account_id, True)
        return "created", account_id, seen

    def _update(
        self,
        existing: Account,
        spec: AccountSpec,
        password: str | None,
        state: AccountState,
        dry_run: bool,
    ) -> tuple[str, int]:
        same_password = password is None or self._password_of(existing.id) == password
        action = "unchanged" if existing.spec == spec and same_password else "updated"
        if dry_run:
            return action, len(self._new_records(existing.id, state))
        seen = self._write_state(existing.id, spec, state)
        if action == "updated":
            # The file's password goes with it: a change of server needs it again.
            self.accounts.edit(existing.id, spec, password)
        return action, seen

    def _password_of(self, account_id: int) -> str | None:
        with self.accounts.db.begin() as conn:
            token = self.accounts.accounts.password_token(conn, account_id)
        try:
            return self.accounts.secret_box.decrypt(token, account_id) if token else None
        except ConfigError:
            return None

    def _new_records(self, account_id: int, state: AccountState) -> list[dict[str, Any]]:
        rows = _handled(state.records)
        with self.accounts.db.begin() as conn:
            known: dict[tuple[str, int], set[str]] = {}
            for folder, uidvalidity in {(r["folder"], r["uidvalidity"]) for r in rows}:
                known[folder, uidvalidity] = self.records.recorded_uids(
                    conn, account_id, folder, uidvalidity
                )
        return [r for r in rows if r["uid"] not in known[r["folder"], r["uidvalidity"]]]

    def _write_state(self, account_id: int, spec: AccountSpec, state: AccountState) -> int:
        """Record the UIDs the old tool delivered (skipping known ones), in one transaction."""
        rows = [
            {**r, "destination": r.get("destination") or spec.destination}
            for r in self._new_records(account_id, state)
        ]
        with self.accounts.db.begin() as conn:
            self.records.add_handled(conn, account_id, rows, time.time())
            for folder, uidvalidity in state.folders.items():
                if self.folders.folder_uidvalidity(conn, account_id, folder) is None:
                    self.folders.set_folder_uidvalidity(conn, account_id, folder, uidvalidity)
        return len(rows)


def _handled(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    states = {RecordState.DELIVERED.value, RecordState.REFUSED.value, RecordState.BASELINE.value}
    unique: dict[tuple[str, int, str], dict[str, Any]] = {}
    for r in records:
        if r.get("state", "delivered") in states:
            unique.setdefault((r["folder"], r["uidvalidity"], r["uid"]), r)
    return list(unique.values())


def _brief(imported: ImportedAccount) -> str:
    return f"{imported.protocol} {imported.username}@{imported.host}"


def _source_order(outcome: Outcome) -> tuple[str, int]:
    file, _, line = outcome.source.rpartition(":")
    return (file, int(line)) if line.isdigit() else (outcome.source, 0)
