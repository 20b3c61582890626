"""How an account signs in: its password, or an OAuth2 access token kept fresh.

A poll asks ``credentials()`` under the account's lease, so one account's tokens are never
refreshed twice at once, however many workers share the database. A refresh stores the new
token set (a rotated refresh token included) and commits before the access token is used:
a crash after the refresh loses nothing the provider will not take again. A refusal for
good (``invalid_grant``) records a sign-in problem: the scheduler leaves the account alone
until its owner connects it again (``connect_device`` here, or the web UI's Connect).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from mailhaul.adapters.db.database import Database
from mailhaul.adapters.db.sign_in import SignInStore
from mailhaul.adapters.secrets import Purpose, SecretBox
from mailhaul.domain.account import Account
from mailhaul.domain.errors import ConfigError, SignInNeeded
from mailhaul.domain.oauth import NOT_CONNECTED, Grant, TokenSet
from mailhaul.domain.options import Credentials, SignInMethod

if TYPE_CHECKING:
    from mailhaul.adapters.oauth_endpoint import DeviceAuthorization, TokenEndpoint

EndpointFor = Callable[[int], "TokenEndpoint"]
"""The token endpoint of a provider id (built lazily: Authlib is imported only for OAuth2)."""


def _to_json(tokens: TokenSet) -> str:
    return json.dumps(
        {
            "access_token": tokens.access_token,
            "refresh_token": tokens.refresh_token,
            "expires_at": tokens.expires_at,
            "issued_at": tokens.issued_at,
        }
    )


def _from_json(text: str) -> TokenSet:
    try:
        data = json.loads(text)
        return TokenSet(
            access_token=str(data["access_token"]),
            refresh_token=str(data.get("refresh_token") or ""),
            expires_at=None if data.get("expires_at") is None else float(data["expires_at"]),
            issued_at=float(data.get("issued_at") or 0.0),
        )
    except (ValueError, KeyError, TypeError):
        raise ConfigError("the stored OAuth2 tokens are unreadable: connect again") from None


class SignIn:
    """Credentials for polls, and the tokens an OAuth2 connection brings."""

    def __init__(
        self,
        db: Database,
        secret_box: SecretBox,
        endpoint_for: EndpointFor,
        store: SignInStore | None = None,
    ) -> None:
        self.db = db
        self.secret_box = secret_box
        self.endpoint_for = endpoint_for
        self.store = store or SignInStore()

    # polls ------------------------------------------------------------------------------
    def credentials(self, account: Account, sealed_password: str) -> Credentials:
        """What the account signs in with now (a token refreshed first if near its end)."""
        spec = account.spec
        if spec.sign_in is SignInMethod.PASSWORD:
            password = self.secret_box.decrypt(sealed_password, account.id)
            return Credentials(spec.username, password)
        if account.sign_in_problem is not None:
            raise SignInNeeded(f"sign-in needed: {account.sign_in_problem}")
        tokens = self._tokens(account.id)
        if tokens is None or tokens.needs_refresh(time.time()):
            tokens = self._renew(account, tokens)
        return Credentials(spec.username, tokens.access_token, SignInMethod.OAUTH2)

    def stored_credentials(self, account: Account, sealed_password: str) -> Credentials | None:
        """What the push watcher signs in with: the password, or the access token the last
        poll stored while it is still good (None: wait for a poll to refresh it; the watcher
        never refreshes, it holds no lease)."""
        spec = account.spec
        if spec.sign_in is SignInMethod.PASSWORD:
            return Credentials(spec.username, self.secret_box.decrypt(sealed_password, account.id))
        tokens = self._tokens(account.id)
        if account.sign_in_problem is not None or tokens is None:
            return None
        if tokens.needs_refresh(time.time()):
            return None
        return Credentials(spec.username, tokens.access_token, SignInMethod.OAUTH2)

    def after_rejection(self, account: Account) -> Credentials:
        """New credentials after the server refused the access token (refreshed once)."""
        tokens = self._renew(account, self._tokens(account.id))
        return Credentials(account.spec.username, tokens.access_token, SignInMethod.OAUTH2)

    def _renew(self, account: Account, tokens: TokenSet | None) -> TokenSet:
        endpoint = self._endpoint(account)
        try:
            if endpoint.provider.grant is Grant.CLIENT_CREDENTIALS:
                new = endpoint.client_credentials()
            elif tokens is None:
                raise SignInNeeded(NOT_CONNECTED)
            else:
                new = endpoint.refresh(tokens)
        except SignInNeeded as exc:
            with self.db.begin() as conn:
                self.store.sign_in_needed(conn, account.id, str(exc))
            raise
        with self.db.begin() as conn:  # stored (and committed) before it is used
            self.store.store_tokens(conn, account.id, self._seal(account.id, new))
        return new

    # connecting -------------------------------------------------------------------------
    def connect_device(
        self,
        account: Account,
        show: Callable[[DeviceAuthorization], None],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Run the device flow (RFC 8628): ``show`` the user the code, wait for approval,
        store the tokens. SignInNeeded when declined or expired."""
        from mailhaul.adapters.oauth_endpoint import DeviceSlowDown

        endpoint = self._endpoint(account)
        if endpoint.provider.grant is Grant.CLIENT_CREDENTIALS:
            self.connected(account, endpoint.client_credentials())
            return
        device = endpoint.start_device()
        show(device)
        interval = device.interval
        while True:
            if time.time() >= device.expires_at:
                raise SignInNeeded("the code expired before it was approved: connect again")
            sleep(interval)
            try:
                tokens = endpoint.poll_device(device)
            except DeviceSlowDown:
                interval += 5.0  # RFC 8628 §3.5
                continue
            if tokens is not None:
                self.connected(account, tokens)
                return

    def connected(self, account: Account, tokens: TokenSet) -> None:
        """Keep the tokens a connection brought; the account is due at once."""
        with self.db.begin() as conn:
            self.store.connected(conn, account.id, self._seal(account.id, tokens), time.time())

    # helpers ----------------------------------------------------------------------------
    def _endpoint(self, account: Account) -> TokenEndpoint:
        provider_id = account.spec.oauth_provider_id
        if account.spec.sign_in is not SignInMethod.OAUTH2 or provider_id is None:
            raise ConfigError(f"account {account.id} does not sign in with OAuth2")
        return self.endpoint_for(provider_id)

    def _tokens(self, account_id: int) -> TokenSet | None:
        with self.db.read() as conn:
            sealed = self.store.sealed_tokens(conn, account_id)
        if not sealed:
            return None
        return _from_json(self.secret_box.decrypt(sealed, account_id, Purpose.ACCOUNT_TOKENS))

    def _seal(self, account_id: int, tokens: TokenSet) -> str:
        return self.secret_box.encrypt(_to_json(tokens), account_id, Purpose.ACCOUNT_TOKENS)
