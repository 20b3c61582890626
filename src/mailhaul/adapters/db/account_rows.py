"""Account rows as domain values, and back."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Row

from mailhaul.adapters.db.tables import accounts
from mailhaul.domain.access import domain_of
from mailhaul.domain.account import Account, AccountSpec
from mailhaul.domain.filtering import FilterOptions, SpamAction, VirusAction
from mailhaul.domain.options import Protocol, RetrievalOptions, Security, SignInMethod

# What an Account is read from: not who asked for a fetch (only the scheduler's
# `take_triggers` reads that) nor the sealed OAuth2 tokens (only `SignInStore` reads them).
READ = [c for c in accounts.c if c.name not in ("fetch_requested_by", "oauth_tokens_enc")]


def spec_values(spec: AccountSpec) -> dict[str, Any]:
    """An AccountSpec as column values."""
    values = spec.as_dict()
    return {
        **{k: v for k, v in values.items() if k != "sign_in"},
        "auth_method": values["sign_in"],
        "folders": json.dumps(list(spec.options.folders)),
        "owner_domain": domain_of(spec.owner),
    }


def account_from_row(row: Row[Any]) -> Account:
    """An accounts row (columns as in READ) as an Account."""
    spec = AccountSpec(
        owner=row.owner,
        protocol=Protocol(row.protocol),
        host=row.host,
        port=row.port,
        security=Security(row.security),
        username=row.username,
        verify_cert=row.verify_cert,
        ca_file=row.ca_file,
        options=RetrievalOptions(
            keep=row.keep,
            fetchall=row.fetchall,
            flush=row.flush,
            max_size=row.max_size,
            folders=tuple(json.loads(row.folders)),
        ),
        deliver_to=row.deliver_to,
        interval=row.interval,
        active=row.active,
        sign_in=SignInMethod(row.auth_method),
        oauth_provider_id=row.oauth_provider_id,
        filters=FilterOptions(SpamAction(row.antispam), VirusAction(row.antivirus)),
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
    )
