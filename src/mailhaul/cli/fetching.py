"""`mailhaul fetch`: poll accounts now, with progress on a terminal."""

from __future__ import annotations

import sys
import time

from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn

from mailhaul.adapters.db.runs import RunRecord
from mailhaul.bootstrap import App, close_sink
from mailhaul.cli.context import EXIT_FAILED, EXIT_OK
from mailhaul.cli.output import console, err_console, human_bytes, print_json
from mailhaul.domain.errors import AccountBusy, MailhaulError, NotFound
from mailhaul.services.polling import RunSummary


def _summary_line(summary: RunSummary, label: str) -> str:
    if summary.result == "ok":
        return (
            f"account {label}: ok, {summary.fetched} fetched ({human_bytes(summary.bytes)}), "
            f"{summary.deleted} deleted, {summary.skipped} left on the server, "
            f"{summary.duration:.1f}s"
        )
    return f"account {label}: {summary.result}: {summary.error}"


def _summary_of_run(run: RunRecord) -> RunSummary:
    duration = (run.finished_at or run.started_at) - run.started_at
    return RunSummary(
        run.account_id,
        run.id,
        "ok" if run.result == "ok" else run.result,
        fetched=run.fetched,
        bytes=run.bytes,
        deleted=run.deleted,
        skipped=run.skipped,
        error=run.error,
        duration=duration,
    )


def _through_service(app: App, account_ids: list[int], timeout: float) -> list[RunSummary]:
    """Ask the running service to poll the accounts first, and wait for the runs."""
    service = app.accounts
    before = {}
    for account_id in account_ids:
        runs = service.runs_of(account_id, limit=1)
        before[account_id] = runs[0].id if runs else 0
        service.request_fetch(account_id)
    results: dict[int, RunSummary] = {}
    deadline = time.monotonic() + timeout
    while len(results) < len(account_ids) and time.monotonic() < deadline:
        for account_id in account_ids:
            if account_id in results:
                continue
            runs = service.runs_of(account_id, limit=1)
            if runs and runs[0].id > before[account_id] and runs[0].result != "running":
                results[account_id] = _summary_of_run(runs[0])
        time.sleep(0.2)
    for account_id in account_ids:
        if account_id not in results:
            results[account_id] = RunSummary(
                account_id,
                None,
                "queued",
                error=f"the service has not finished polling it within {timeout:.0f}s",
            )
    return [results[account_id] for account_id in account_ids]


def fetch_accounts(
    app: App, account_ids: list[int], all_: bool, json_out: bool, here: bool = False
) -> int:
    """Poll the accounts now; the exit code says whether all went well.

    While `mailhaul serve` or `worker` runs (and unless ``here``), the accounts are put at
    the head of its queue and this waits for the runs: a poll never runs beside another.
    """
    service = app.accounts
    if all_:
        account_ids = [a.id for a in service.list_all() if a.spec.active]
    if not here and account_ids and service.workers_alive():
        for account_id in account_ids:
            service.get(account_id)  # NotFound before anything is queued
        if not json_out:
            err_console.print(f"asking the running service to poll {len(account_ids)} account(s)…")
        summaries = _through_service(app, account_ids, timeout=max(300.0, app.settings.timeout * 5))
        return _report(summaries, json_out)
    summaries = []
    show_progress = sys.stderr.isatty() and not json_out
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} messages"),
        DownloadColumn(),
        console=err_console,
        transient=True,
        disable=not show_progress,
    )
    with progress:
        for account_id in account_ids:
            task: TaskID = progress.add_task(f"account {account_id}", total=None)

            def on_progress(
                _id: int, done: int, total: int, size: int, task: TaskID = task
            ) -> None:
                progress.update(
                    task,
                    completed=done,
                    total=total or None,
                    description=(f"account {_id} ({human_bytes(size)})"),
                )

            try:
                summary = app.poller.poll(account_id, trigger="manual", progress=on_progress)
            except (AccountBusy, NotFound) as exc:
                summary = RunSummary(
                    account_id,
                    None,
                    "busy" if isinstance(exc, AccountBusy) else "not found",
                    error=str(exc),
                )
            except MailhaulError as exc:
                summary = RunSummary(account_id, None, "error", error=str(exc))
            progress.remove_task(task)
            summaries.append(summary)
            if not json_out:
                console.print(_summary_line(summary, str(account_id)), soft_wrap=True)
    close_sink(app.sink)
    return _report(summaries, json_out, printed=not json_out)


def _report(summaries: list[RunSummary], json_out: bool, printed: bool = False) -> int:
    """Print the summaries (unless already printed); the exit code."""
    if json_out:
        print_json(
            [
                {
                    "account_id": s.account_id,
                    "run_id": s.run_id,
                    "result": s.result,
                    "fetched": s.fetched,
                    "bytes": s.bytes,
                    "deleted": s.deleted,
                    "skipped": s.skipped,
                    "error": s.error,
                    "duration": round(s.duration, 3),
                }
                for s in summaries
            ]
        )
    elif not printed:
        for summary in summaries:
            console.print(_summary_line(summary, str(summary.account_id)), soft_wrap=True)
    return EXIT_FAILED if any(s.result != "ok" for s in summaries) else EXIT_OK
