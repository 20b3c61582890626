"""`/poll`: start every due poll now, for an external cron (as osTicket's cron.php does)."""

from __future__ import annotations

from fastapi import APIRouter

from mailhaul.web.api.v1 import schemas
from mailhaul.web.api.v1.deps import AnyUser, Mailhaul
from mailhaul.web.api.v1.errors import responses

router = APIRouter(tags=["service"])


@router.post("/poll", status_code=202, responses=responses())
def poll_due_accounts(actor: AnyUser, app: Mailhaul) -> schemas.PollQueued:
    """Put every due account within the caller's reach at the head of the queue.

    Due: active, not paused, not running, its next poll time reached. The running service
    (`mailhaul serve` or `worker`) polls them; ``workers_alive`` 0 means none is running.
    """
    queued = app.account_access.poll_due(actor)
    return schemas.PollQueued(queued=queued, workers_alive=app.accounts.workers_alive())
