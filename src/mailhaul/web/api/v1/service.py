"""`/poll`: start every due poll now, for an external cron (as osTicket's cron.php does);
`/status`: the service as a whole (admins)."""

from __future__ import annotations

from fastapi import APIRouter

from mailhaul.web.api.v1 import schemas
from mailhaul.web.api.v1.deps import AdminOnly, AnyUser, Mailhaul
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


@router.get("/status", responses=responses())
def system_status(_admin: AdminOnly, app: Mailhaul) -> schemas.SystemStatus:
    """Accounts by state, running polls, queue lag, workers and the newest failed runs."""
    summary = app.status.summary()
    return schemas.SystemStatus(
        generated_at=summary.generated_at,
        accounts_total=summary.accounts_total,
        accounts_by_state=summary.accounts_by_state,
        running_polls=summary.running_polls,
        queue_lag_seconds=round(summary.queue_lag_seconds, 3),
        workers=[
            schemas.WorkerInfo(
                id=w.id,
                hostname=w.hostname,
                pid=w.pid,
                started_at=w.started_at,
                heartbeat_age=round(w.heartbeat_age, 3),
                running=w.running,
                stale=w.stale,
            )
            for w in summary.workers
        ],
        recent_errors=[
            schemas.RecentError(
                account_id=f.run.account_id,
                owner=f.owner,
                host=f.host,
                started_at=f.run.started_at,
                result=f.run.result,
                error=f.run.error,
            )
            for f in app.status.failed_runs(20)
        ],
    )
