"""Device-flow connections started from the web UI or the API: the flow runs in a thread of
the serving process (the same ``SignIn.connect_device`` the CLI runs in the foreground), so
the request returns the code to approve at once and the account turns "connected" when the
user has approved it. At most one flow waits per account; asking again while one waits
answers with its code."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from mailhaul.domain.account import Account
from mailhaul.domain.errors import MailhaulError, OAuthError, TokenEndpointDown
from mailhaul.services.sign_in import SignIn

if TYPE_CHECKING:
    from mailhaul.adapters.oauth_endpoint import DeviceAuthorization

logger = logging.getLogger(__name__)

START_TIMEOUT = 60.0
"""Seconds a request waits for the provider's device authorization answer."""


class _Pending:
    def __init__(self) -> None:
        self.ready = threading.Event()
        self.device: DeviceAuthorization | None = None
        self.error: MailhaulError | None = None
        self.thread: threading.Thread | None = None

    def waiting(self, now: float) -> bool:
        alive = self.thread is not None and self.thread.is_alive()
        return alive and self.device is not None and now < self.device.expires_at


class PendingConnects:
    """The device flows this process runs, by account."""

    def __init__(self, sign_in: SignIn) -> None:
        self.sign_in = sign_in
        self._lock = threading.Lock()
        self._pending: dict[int, _Pending] = {}

    def start(self, account: Account) -> DeviceAuthorization:
        """Start (or find) the account's device flow; the code to show the user."""
        with self._lock:
            found = self._pending.get(account.id)
            if found is not None and found.waiting(time.time()):
                assert found.device is not None
                return found.device
            pending = _Pending()
            self._pending[account.id] = pending
        pending.thread = threading.Thread(
            target=self._run, args=(account, pending), name=f"connect-{account.id}", daemon=True
        )
        pending.thread.start()
        if not pending.ready.wait(START_TIMEOUT):
            raise TokenEndpointDown("the provider did not answer the device authorization")
        if pending.error is not None:
            raise pending.error
        if pending.device is None:
            raise OAuthError("the connection failed (the service log says why)")
        return pending.device

    def _run(self, account: Account, pending: _Pending) -> None:
        def show(device: DeviceAuthorization) -> None:
            pending.device = device
            pending.ready.set()

        try:
            self.sign_in.connect_device(account, show)
            logger.info("account %s: connected (OAuth2)", account.id)
        except MailhaulError as exc:
            pending.error = exc
            if pending.device is not None:  # the user was shown a code: the flow ended
                logger.warning("account %s: the OAuth2 connection ended: %s", account.id, exc)
        except Exception:
            logger.exception("account %s: the OAuth2 connection failed", account.id)
        finally:
            pending.ready.set()


AUTHORIZATION_TTL = 600.0
"""Seconds a consent started in the web UI may take before its callback comes back."""


class PendingAuthorization:
    """A consent in progress: whose, for which account, and what finishing it needs."""

    def __init__(self, account_id: int, login: str, code_verifier: str, redirect_uri: str) -> None:
        self.account_id = account_id
        self.login = login
        self.code_verifier = code_verifier
        self.redirect_uri = redirect_uri
        self.expires_at = time.time() + AUTHORIZATION_TTL


class PendingAuthorizations:
    """Authorization-code flows this process started, by their ``state``; each is taken
    once, by the user who started it, before it expires."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, PendingAuthorization] = {}

    def add(self, state: str, pending: PendingAuthorization) -> None:
        """Remember a flow until its callback (older expired ones are dropped)."""
        now = time.time()
        with self._lock:
            for key in [k for k, v in self._pending.items() if v.expires_at <= now]:
                del self._pending[key]
            self._pending[state] = pending

    def take(self, state: str, login: str) -> PendingAuthorization | None:
        """The flow of ``state`` if ``login`` started it and it has not expired; it is
        forgotten either way (a state is good for one callback)."""
        with self._lock:
            pending = self._pending.pop(state, None)
        if pending is None or pending.login != login or pending.expires_at <= time.time():
            return None
        return pending
