"""OpenAPI-driven fuzzing: no input, valid or not, makes `/api/v1` answer with a 5xx.

schemathesis reads the app's own `/api/v1/openapi.json` and calls the app in-process (ASGI)
with an admin's key (the widest reach), valid and invalid inputs alike. Connection tests
go to an in-memory source instead of the network, and an OAuth provider's issuer is "found"
without asking the internet.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err, Ok

from mailhaul.bootstrap import App
from mailhaul.domain.access import Role
from mailhaul.domain.account import AccountSpec
from mailhaul.domain.oauth import Endpoints
from mailhaul.domain.options import Protocol, Security
from mailhaul.services.users import UserChanges
from support.api import SYSTEM, add_person, client_for, fake_dns, make_app
from support.fake_source import FakeServer

EXAMPLES_PER_OPERATION = 15


@dataclass
class Target:
    """The app under test, its records, and an admin whose key the fuzzer cannot take away."""

    app: App
    http: FastAPI
    admin_id: int
    key: str
    ids: dict[str, int]  # an existing record for each kind of path id

    def headers(self) -> dict[str, str]:
        """The admin's key; a new one if the fuzzer revoked it or disabled the admin."""
        users = self.app.users
        if users.principal_for_key(self.key) is None:
            users.edit(SYSTEM, self.admin_id, UserChanges(active=True))
            _, self.key = users.create_key(SYSTEM, self.admin_id, "fuzz again")
        return {"Authorization": f"Bearer {self.key}"}


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    app = make_app(tmp_path_factory.mktemp("fuzz") / "home")
    fake_dns(app)
    access = app.account_access
    access.connector = replace(access.connector, open_source=FakeServer().source)
    app.oauth_providers.discovery = lambda _issuer: Endpoints(
        token_url="https://idp.example.org/token", device_url="https://idp.example.org/device"
    )
    someone = add_person(app, "someone", "someone@a.test", Role.USER)
    spec = AccountSpec(
        owner="someone@a.test",
        protocol=Protocol.IMAP,
        host="mail.example.net",
        port=993,
        security=Security.SSL,
        username="someone",
    )
    account = app.accounts.add(spec, "source-password")
    spare, _ = app.users.create_key(SYSTEM, someone.user_id, "spare")
    admin = add_person(app, "admin", "admin", Role.ADMIN)
    http, client = client_for(app)
    ids = {"account_id": account.id, "user_id": someone.user_id, "key_id": spare.id}
    yield Target(app, http, admin.user_id, admin.key, ids)
    client.close()
    app.db.dispose()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("ids", ["generated", "existing"])
def test_no_input_makes_the_api_fail(target: Target, mode: GenerationMode, ids: str) -> None:
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", target.http)
    results = list(schema.get_all_operations())
    assert not [result.err() for result in results if isinstance(result, Err)]
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(operations) > 20
    operations.sort(key=lambda op: op.method.upper() == "DELETE")  # deletions last
    failures: dict[str, BaseException] = {}
    for operation in operations:
        fixed = {}
        if ids == "existing":
            fixed = {k: v for k, v in target.ids.items() if f"{{{k}}}" in operation.path}

        @given(case=operation.as_strategy(mode, path_parameters=fixed or None))
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate, Phase.shrink],
        )
        def call(case: Case[Any]) -> None:
            case.call_and_validate(headers=target.headers(), checks=[not_a_server_error])

        try:
            call()
        except Exception as exc:  # reported below, per operation
            failures[operation.label] = exc
    assert not failures, "\n\n".join(f"{label}: {exc}" for label, exc in failures.items())
