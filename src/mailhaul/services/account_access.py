"""Accounts as the web UI and the API reach them: every use case scoped to the actor.

An account outside the actor's reach is reported as missing (NotFound), never forbidden.
Non-admins may not aim an account at private or local addresses or unlisted ports, nor set
a CA file (a path on the server).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from mailhaul.adapters.db.records import RefusedRecord
from mailhaul.adapters.db.runs import RunRecord
from mailhaul.adapters.db.status import AccountScope
from mailhaul.adapters.host_addresses import own_addresses, resolve_host
from mailhaul.domain.access import Principal, Role
from mailhaul.domain.account import Account, AccountSpec, Trigger
from mailhaul.domain.addresses import normalise_address
from mailhaul.domain.errors import ConfigError, NotFound
from mailhaul.domain.source_policy import IpAddress, SourcePolicy
from mailhaul.domain.validation import FieldChecks, FieldError, password_needed, validated_spec
from mailhaul.services.accounts import AccountService
from mailhaul.services.connection_check import ConnectionReport, SourceFactory, check_connection
from mailhaul.services.status import AccountStatus, StatusService

Resolver = Callable[[str, int], list[IpAddress]]
MAX_PER_PAGE = 200


@dataclass(frozen=True)
class AccountPage:
    """One page of an account list."""

    items: list[AccountStatus]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        """How many pages there are (at least one)."""
        return max(1, -(-self.total // self.per_page))


def scope_of(actor: Principal) -> AccountScope:
    """The accounts ``actor`` may see."""
    if actor.role is Role.ADMIN:
        return AccountScope()
    if actor.role is Role.DOMAIN_ADMIN:
        return AccountScope(domains=actor.domains)
    return AccountScope(owner=actor.login)


@dataclass(frozen=True)
class AccountQuery:
    """Which accounts a list shows (None: any) and which page of them."""

    domain: str | None = None
    state: str | None = None
    search: str | None = None
    page: int = 1
    per_page: int = 50
    sort: str | None = None  # adapters.db.status.SORT_KEYS, "-" in front: descending


@dataclass(frozen=True)
class SourceConnector:
    """How "Test connection" reaches a source: the adapter factory and the network timeout."""

    open_source: SourceFactory
    timeout: float


@dataclass(frozen=True)
class HostLookups:
    """The lookups the source policy needs: a host's addresses and this machine's own."""

    resolve: Resolver = resolve_host
    own: Callable[[], list[IpAddress]] = own_addresses


class AccountAccess:
    """Account use cases for a principal (the web UI and API go through here)."""

    def __init__(
        self,
        accounts: AccountService,
        status: StatusService,
        policy: SourcePolicy,
        connector: SourceConnector,
        hosts: HostLookups | None = None,
    ) -> None:
        self.accounts = accounts
        self.status = status
        self.policy = policy
        self.connector = connector
        self.hosts = hosts or HostLookups()

    # reading -------------------------------------------------------------------------------
    def page(self, actor: Principal, query: AccountQuery | None = None) -> AccountPage:
        """A page of the actor's accounts, filtered."""
        query = query or AccountQuery()
        per_page = max(1, min(query.per_page, MAX_PER_PAGE))
        page = max(1, query.page)
        scope = replace(
            scope_of(actor),
            domain=query.domain,
            state=query.state,
            search=query.search,
            sort=query.sort,
        )
        items, total = self.status.page(scope, (page - 1) * per_page, per_page)
        return AccountPage(items=items, total=total, page=page, per_page=per_page)

    def domains(self, actor: Principal) -> list[str]:
        """The owner domains among the actor's accounts (the list's domain filter)."""
        if actor.role is Role.USER:
            return []
        return self.status.domains(None if actor.is_admin else actor.domains)

    def get(self, actor: Principal, account_id: int) -> Account:
        """One account within reach, else NotFound."""
        account = self.accounts.get(account_id)
        if not actor.may_see_address(account.spec.owner):
            raise NotFound(f"account {account_id} does not exist")
        return account

    def account_status(self, actor: Principal, account_id: int) -> AccountStatus:
        """An account's status and last log."""
        self.get(actor, account_id)
        return self.status.account(account_id)

    def runs(
        self,
        actor: Principal,
        account_id: int,
        limit: int = 50,
        before: int | None = None,
        hide_empty: bool = False,
    ) -> list[RunRecord]:
        """The run history, newest first (a page older than run ``before``; without the
        runs that found nothing when ``hide_empty``)."""
        self.get(actor, account_id)
        return self.accounts.runs_of(account_id, max(1, min(limit, 500)), before, hide_empty)

    def run(self, actor: Principal, account_id: int, run_id: int) -> RunRecord:
        """One run with its log (NotFound out of reach or gone)."""
        self.get(actor, account_id)
        return self.accounts.run_of(account_id, run_id)

    def last_log(self, actor: Principal, account_id: int) -> str | None:
        """The last finished run's log."""
        return self.account_status(actor, account_id).last_log

    def refused(self, actor: Principal, account_id: int) -> list[RefusedRecord]:
        """Messages the local backend refused for good."""
        self.get(actor, account_id)
        return self.accounts.refused_of(account_id)

    # changing ------------------------------------------------------------------------------
    def add(self, actor: Principal, spec: AccountSpec, password: str | None) -> Account:
        """Create an account the actor may own."""
        spec = self._checked_to_save(actor, spec, None, password)
        return self.accounts.add(spec, password)

    def edit(
        self, actor: Principal, account_id: int, spec: AccountSpec, password: str | None
    ) -> Account:
        """Replace an account's settings; ``password`` None keeps the stored one."""
        previous = self.get(actor, account_id)
        spec = self._checked_to_save(actor, spec, previous.spec, password)
        return self.accounts.edit(account_id, spec, password)

    def delete(self, actor: Principal, account_id: int) -> None:
        """Delete an account and its history (delivered mail stays)."""
        self.get(actor, account_id)
        self.accounts.delete(account_id)

    def set_active(self, actor: Principal, account_id: int, active: bool) -> Account:
        """Enable or disable an account."""
        self.get(actor, account_id)
        return self.accounts.set_active(account_id, active)

    def resume(self, actor: Principal, account_id: int) -> Account:
        """Unpause an account paused after login failures (due now)."""
        self.get(actor, account_id)
        return self.accounts.resume(account_id)

    def fetch_now(self, actor: Principal, account_id: int, by: Trigger) -> None:
        """Put the account at the head of the scheduler's queue, asked for ``by`` (web, api)."""
        self.get(actor, account_id)
        self.accounts.request_fetch(account_id, by)

    def poll_due(self, actor: Principal) -> int:
        """Request a fetch of every due account within reach ("start due polls now")."""
        scope = scope_of(actor)
        return self.accounts.request_due(owner=scope.owner, domains=scope.domains)

    def retry(self, actor: Principal, account_id: int, uid: str | None = None) -> int:
        """Forget refusals (all or one) so the next run tries again; how many."""
        self.get(actor, account_id)
        return self.accounts.retry(account_id, uid)

    def check_new(self, actor: Principal, spec: AccountSpec, password: str) -> ConnectionReport:
        """Test settings not saved yet."""
        spec = self._checked(actor, spec, previous=None)
        return check_connection(spec, password, self.connector.open_source, self.connector.timeout)

    def check_stored(
        self,
        actor: Principal,
        account_id: int,
        spec: AccountSpec | None = None,
        password: str | None = None,
    ) -> ConnectionReport:
        """Test an account's settings (or changed ones), with the stored password by default."""
        previous = self.get(actor, account_id)
        spec = self._checked(actor, spec or previous.spec, previous=previous.spec)
        if not password:
            needed = password_needed(previous.spec, spec)
            if needed is not None:
                raise needed  # the stored password goes to the stored server only
        secret = password if password else self.accounts.password_of(account_id)
        return check_connection(spec, secret, self.connector.open_source, self.connector.timeout)

    def _checked_to_save(
        self,
        actor: Principal,
        spec: AccountSpec,
        previous: AccountSpec | None,
        password: str | None,
    ) -> AccountSpec:
        """``_checked``, and what saving would refuse (password, CA file, checks), all in one
        FieldErrors."""
        checks = FieldChecks()
        checked = spec
        with checks.field():
            checked = self._checked(actor, spec, previous)
        with checks.field():
            self.accounts.check_fields(checked, password, previous)
        checks.raise_any()
        return checked

    def _checked(
        self, actor: Principal, spec: AccountSpec, previous: AccountSpec | None
    ) -> AccountSpec:
        """The spec validated and within the actor's reach and the source policy; every
        field's first error at once (FieldErrors for several)."""
        checks = FieldChecks()
        try:
            spec = validated_spec(spec)
        except FieldError as exc:
            with checks.field():
                raise exc
            spec = _addresses_normalised(spec)  # so the reach is judged on the stored form
        with checks.field():
            actor.check_account_addresses(spec.owner, spec.deliver_to)
        if not actor.is_admin:
            if spec.ca_file is not None and (previous is None or spec.ca_file != previous.ca_file):
                checks.add("ca_file", "only an admin may set a CA file")
            kept = previous is not None and (spec.host, spec.port) == (previous.host, previous.port)
            # an admin may have set this source: editing other fields keeps it
            if not kept and not {"host", "port"} & checks.errors.keys():
                with checks.field():
                    self.policy.check_port(spec.port, privileged=False)
                    addresses = self.hosts.resolve(spec.host, spec.port)
                    self.policy.check_addresses(
                        spec.host, addresses, self.hosts.own(), privileged=False
                    )
        checks.raise_any()
        return spec


def _addresses_normalised(spec: AccountSpec) -> AccountSpec:
    """The spec with whichever of its addresses are valid in their stored form."""
    return replace(spec, owner=_normalised(spec.owner), deliver_to=_normalised(spec.deliver_to))


def _normalised(address: str) -> str:
    """An address in its stored form, or as given when it is not valid (or empty)."""
    try:
        return normalise_address(address) if address else address
    except ConfigError:
        return address
