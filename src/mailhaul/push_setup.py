"""The push watcher of a running service (`serve`, `worker`), wired from the application:
connections opened as polls open theirs, requests made as "Fetch now" makes them."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from mailhaul.adapters.db.push_watches import PushWatchStore
from mailhaul.domain.account import Account, Trigger
from mailhaul.services.push import PushWatcher
from mailhaul.services.push_plan import Target
from mailhaul.services.push_sync import PushDeps

if TYPE_CHECKING:
    from mailhaul.adapters.sources.imap.idle_link import IdleLink
    from mailhaul.bootstrap import App

logger = logging.getLogger("mailhaul.push")


def build_push_watcher(
    app: App, stop: threading.Event, worker_id: str, on_request: Callable[[], None]
) -> PushWatcher:
    """A watcher (not started) that stops with ``stop`` and leases its watches as
    ``worker_id``; ``on_request`` is called after each request for a poll."""
    from mailhaul.adapters.sources.imap.idle import open_idle
    from mailhaul.adapters.sources.imap.idle_link import leave_all

    def open_link(account: Account, target: Target) -> IdleLink | None:
        with app.db.read() as conn:
            sealed = app.account_store.password_token(conn, account.id)
        credentials = app.sign_in.stored_credentials(account, sealed)
        if credentials is None:
            return None
        endpoint = account.endpoint(app.settings.timeout)
        return open_idle(endpoint, credentials, logger.debug, target.folder, target.notify)

    def request(account_id: int) -> None:
        app.accounts.request_fetch(account_id, Trigger.PUSH)

    deps = PushDeps(
        db=app.db,
        store=PushWatchStore(),
        open_link=open_link,
        leave_all=leave_all,
        request=request,
        settings=lambda: app.settings,
    )
    return PushWatcher(deps, stop, worker_id, on_request)
