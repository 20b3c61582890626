"""Account rows as domain values, and back."""

from __future__ import annotations

import datetime
import json
from typing import Any

from sqlalchemy import Row

from mailhaul.adapters.db.tables import accounts
from mailhaul.domain.access import domain_of
from mailhaul.domain.account import Account, AccountSpec
from mailhaul.domain.errors import ConfigError
from mailhaul.domain.filtering import FilterOptions, SpamAction, VirusAction
from mailhaul.domain.folders import FolderRules
from mailhaul.domain.options import Protocol, RetrievalOptions, Security, SignInMethod

# What an Account is read from: not who asked for a fetch (only the scheduler's
# `take_triggers` reads that) nor the sealed OAuth2 tokens (only `SignInStore` reads them).
READ = [c for c in accounts.c if c.name not in ("fetch_requested_by", "oauth_tokens_enc")]


# keys of AccountSpec.as_dict() that are no column of their own
_NOT_COLUMNS = frozenset(
    {"sign_in", "folder_rules", "delete_after_days", "max_messages_per_run", "max_bytes_per_run"}
    | {"new_only", "since", "move_to", "push_folders"}
)


def spec_values(spec: AccountSpec) -> dict[str, Any]:
    """An AccountSpec as column values."""
    values = spec.as_dict()
    return {
        **{k: v for k, v in values.items() if k not in _NOT_COLUMNS},
        "auth_method": values["sign_in"],
        "folders": json.dumps(list(spec.options.folders)),
        "rules": _rules_json(spec.options),
        "owner_domain": domain_of(spec.owner),
    }


# RetrievalOptions stored in the ``rules`` JSON beside the folder rules (absent: None)
_IN_RULES = ("delete_after_days", "max_messages_per_run", "max_bytes_per_run")


def _rules_json(options: RetrievalOptions) -> str | None:
    """The folder rules, retention and per-run limits as stored: None for the defaults."""
    values = {} if options.rules == FolderRules() else options.rules.as_dict()
    values.update({k: getattr(options, k) for k in _IN_RULES if getattr(options, k) is not None})
    if options.new_only:
        values["new_only"] = True
    if options.move_to:
        values["move_to"] = options.move_to
    if options.since is not None:
        values["since"] = options.since.isoformat()
    if options.push_folders:
        values["push_folders"] = list(options.push_folders)
    return json.dumps(values) if values else None


def _rules_of(stored: str | None) -> dict[str, Any]:
    """RetrievalOptions' fields from the ``rules`` column."""
    values = json.loads(stored) if stored else {}
    found: dict[str, Any] = {"rules": FolderRules.from_dict(values)}
    found.update({k: int(values[k]) for k in _IN_RULES if values.get(k) is not None})
    found["new_only"] = bool(values.get("new_only", False))
    found["move_to"] = str(values.get("move_to") or "")
    found["push_folders"] = tuple(str(name) for name in values.get("push_folders") or ())
    since = values.get("since")
    found["since"] = datetime.date.fromisoformat(since) if since else None
    return found


def _options_of(row: Row[Any]) -> tuple[RetrievalOptions, str | None]:
    """The row's retrieval options, and why they are only the defaults (None: they are the
    row's): a folder list or rules column that cannot be read (changed by hand, cut short)
    gives the defaults and a reason, which the account's polls stop at."""
    base = {"keep": row.keep, "fetchall": row.fetchall, "flush": row.flush}
    try:
        folders = tuple(str(name) for name in json.loads(row.folders))
        options = RetrievalOptions(
            **base, max_size=row.max_size, folders=folders, **_rules_of(row.rules)
        )
    except (ValueError, TypeError, KeyError, AttributeError, ConfigError) as exc:
        damaged = (
            f"the account's stored folders or folder rules cannot be read "
            f"({type(exc).__name__}: {str(exc)[:200]}): save the account again (web form or "
            "`mailhaul account edit`) to set them"
        )
        return RetrievalOptions(**base, max_size=row.max_size), damaged
    return options, None


def account_from_row(row: Row[Any]) -> Account:
    """An accounts row (columns as in READ) as an Account."""
    options, damaged = _options_of(row)
    spec = AccountSpec(
        owner=row.owner,
        protocol=Protocol(row.protocol),
        host=row.host,
        port=row.port,
        security=Security(row.security),
        username=row.username,
        verify_cert=row.verify_cert,
        ca_file=row.ca_file,
        options=options,
        deliver_to=row.deliver_to,
        interval=row.interval,
        active=row.active,
        sign_in=SignInMethod(row.auth_method),
        oauth_provider_id=row.oauth_provider_id,
        filters=FilterOptions(SpamAction(row.antispam), VirusAction(row.antivirus)),
        push=row.push,
    )
    return Account(
        id=row.id,
        spec=spec,
        state=row.state,
        last_run_at=row.last_run_at,
        last_result=row.last_result,
        next_poll_at=row.next_poll_at,
        consecutive_failures=row.consecutive_failures,
        last_error=row.last_error,
        paused_reason=row.paused_reason,
        fetch_requested_at=row.fetch_requested_at,
        sign_in_problem=row.sign_in_problem,
        damaged=damaged,
    )
