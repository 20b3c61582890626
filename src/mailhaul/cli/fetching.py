"""`mailhaul fetch`: poll accounts now, with progress on a terminal."""

from __future__ import annotations

import sys

from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn

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


def fetch_accounts(app: App, account_ids: list[int], all_: bool, json_out: bool) -> int:
    """Poll the accounts one after another; the exit code says whether all went well."""
    service = app.accounts
    if all_:
        account_ids = [a.id for a in service.list_all() if a.spec.active]
    results: list[dict[str, object]] = []
    failed = False
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
            failed = failed or summary.result != "ok"
            if json_out:
                results.append(
                    {
                        "account_id": summary.account_id,
                        "run_id": summary.run_id,
                        "result": summary.result,
                        "fetched": summary.fetched,
                        "bytes": summary.bytes,
                        "deleted": summary.deleted,
                        "skipped": summary.skipped,
                        "error": summary.error,
                        "duration": round(summary.duration, 3),
                    }
                )
            else:
                console.print(_summary_line(summary, str(account_id)), soft_wrap=True)
    close_sink(app.sink)
    if json_out:
        print_json(results)
    return EXIT_FAILED if failed else EXIT_OK
