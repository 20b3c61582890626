"""`mailhaul fetch`: poll accounts now, with progress on a terminal."""

from __future__ import annotations

import logging
import sys
import time
from contextlib import nullcontext
from dataclasses import replace
from typing import TYPE_CHECKING

import click

from mailhaul.cli.context import (
    EXIT_BLOCKED,
    EXIT_BUSY,
    EXIT_FAILED,
    EXIT_OK,
    errors_to_exit,
    fail,
    state,
)
from mailhaul.cli.output import print_json
from mailhaul.domain.account import Trigger
from mailhaul.domain.errors import AccountBusy, DatabaseUnusable, MailhaulError, NotFound
from mailhaul.domain.scheduling import POLL_BLOCKED, PollResult, RunResult
from mailhaul.domain.units import human_bytes

if TYPE_CHECKING:
    from rich.progress import Progress

    from mailhaul.adapters.db.runs import RunRecord
    from mailhaul.bootstrap import App
    from mailhaul.services.polling import RunSummary


@click.command()
@click.argument("account_ids", nargs=-1, type=int, help="Account ids.")
@click.option("--all", "all_", is_flag=True, help="Every active account.")
@click.option("--here", is_flag=True, help="Poll in this process even while a service runs.")
@click.option("--json", "json_out", is_flag=True, help="Print JSON.")
@click.pass_context
def fetch(
    ctx: click.Context, account_ids: tuple[int, ...], all_: bool, here: bool, json_out: bool
) -> None:
    """Poll accounts now; exits 0 only if every one ran without error.

    While `mailhaul serve` or `worker` runs, the accounts go to the head of its queue and
    this waits for their runs (a poll never runs beside another); a disabled or paused
    account is not queued: it is reported at once (exit 5).
    """
    if bool(account_ids) == all_:
        fail("name account ids, or --all")
    with errors_to_exit():
        code = fetch_accounts(state(ctx).app(), list(account_ids), all_, json_out, here)
    ctx.exit(code)


def _summary_line(summary: RunSummary, label: str) -> str:
    if summary.result in POLL_BLOCKED:
        return f"account {label}: {summary.error}"
    if summary.result == PollResult.OK:
        line = (
            f"account {label}: ok, {summary.fetched} fetched ({human_bytes(summary.bytes)}), "
            f"{summary.deleted} deleted, {summary.skipped} skipped, "
            f"{summary.duration:.1f}s"
        )
        if summary.limited_until is not None:
            resumes = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(summary.limited_until))
            line += f"; daily download limit reached, fetching resumes at {resumes}"
        return line
    return f"account {label}: {summary.result}: {summary.error}"


def _summary_of_run(run: RunRecord) -> RunSummary:
    from mailhaul.services.polling import RunSummary

    duration = (run.finished_at or run.started_at) - run.started_at
    return RunSummary(
        run.account_id,
        run.id,
        PollResult.OK if run.result == RunResult.OK else PollResult.ERROR,
        fetched=run.fetched,
        bytes=run.bytes,
        deleted=run.deleted,
        skipped=run.skipped,
        error=run.error,
        duration=duration,
    )


def _through_service(
    app: App, account_ids: list[int], timeout: float, bars: _Bars | None = None
) -> list[RunSummary]:
    """Ask the running service to poll the accounts first, and wait for the runs (``bars``:
    each account's progress as its run shows it, on a terminal)."""
    from mailhaul.services.polling import RunSummary

    service = app.accounts
    before = {}
    for account_id in account_ids:
        runs = service.runs_of(account_id, limit=1)
        before[account_id] = runs[0].id if runs else 0
        service.request_fetch(account_id, Trigger.CLI)
    results: dict[int, RunSummary] = {}
    deadline = time.monotonic() + timeout
    while len(results) < len(account_ids) and time.monotonic() < deadline:
        for account_id in account_ids:
            if account_id in results:
                continue
            runs = service.runs_of(account_id, limit=1)
            if not runs or runs[0].id <= before[account_id]:
                continue
            if runs[0].result != RunResult.RUNNING:
                results[account_id] = _summary_of_run(runs[0])
                if bars is not None:
                    bars.done(account_id)
            elif bars is not None:  # the counts the service's poll shows on its run
                bars.show(account_id, runs[0].fetched, runs[0].bytes)
        time.sleep(0.2)
    for account_id in account_ids:
        if account_id not in results:
            results[account_id] = RunSummary(
                account_id,
                None,
                PollResult.QUEUED,
                error=f"the service has not finished polling it within {timeout:.0f}s",
            )
    return [results[account_id] for account_id in account_ids]


def _fetch_through_service(app: App, account_ids: list[int], json_out: bool) -> int:
    """Queue the accounts the running service may poll and wait for their runs; a disabled
    or paused one is answered at once, in the words of the web UI."""

    blocked = _blocked(app, account_ids)
    asked = [account_id for account_id in account_ids if account_id not in blocked]
    ran: list[RunSummary] = []
    if asked:
        if not json_out:
            sys.stderr.write(f"asking the running service to poll {len(asked)} account(s)…\n")
        timeout = max(300.0, app.settings.timeout * 5)
        if sys.stderr.isatty() and not json_out:
            with _progress() as progress:
                ran = _through_service(app, asked, timeout, _Bars(progress))
        else:
            ran = _through_service(app, asked, timeout)
    until = {status.id: status.limited_until for status in app.status.accounts(asked)}
    ran = [
        replace(summary, limited_until=until.get(summary.account_id))
        if summary.result == PollResult.OK
        else summary
        for summary in ran
    ]
    by_id = blocked | {summary.account_id: summary for summary in ran}
    return _report([by_id[account_id] for account_id in account_ids], json_out)


def _blocked(app: App, account_ids: list[int], only_sign_in: bool = False) -> dict[int, RunSummary]:
    """The accounts whose state forbids a fetch, with the reason in the web UI's words
    (``only_sign_in``: only those waiting for an OAuth2 sign-in, which no poll can help)."""
    from mailhaul.services.polling import RunSummary

    blocked: dict[int, RunSummary] = {}
    for status in app.status.accounts(account_ids):
        reason = status.fetch_blocked
        if reason is None or (only_sign_in and not status.sign_in_needed):
            continue
        if not status.active:
            result = PollResult.DISABLED
        elif status.sign_in_needed:
            result = PollResult.SIGN_IN_NEEDED
        else:
            result = PollResult.PAUSED
        blocked[status.id] = RunSummary(status.id, None, result, error=reason)
    return blocked


def fetch_accounts(
    app: App, account_ids: list[int], all_: bool, json_out: bool, here: bool = False
) -> int:
    """Poll the accounts now; the exit code says whether all went well.

    While `mailhaul serve` or `worker` runs (and unless ``here``), the accounts are put at
    the head of its queue and this waits for the runs: a poll never runs beside another.
    """
    from mailhaul.bootstrap import close_sink
    from mailhaul.services.polling import RunSummary

    service = app.accounts
    if all_:
        account_ids = [a.id for a in service.list_all() if a.spec.active]
    for account_id in account_ids:
        service.get(account_id)  # NotFound (exit 3) before anything is polled or queued
    if not here and account_ids and service.workers_alive():
        return _fetch_through_service(app, account_ids, json_out)
    summaries = []
    blocked = _blocked(app, account_ids, only_sign_in=True)
    progress = _progress() if sys.stderr.isatty() and not json_out else None
    with progress if progress is not None else nullcontext():
        for account_id in account_ids:
            if account_id in blocked:
                summaries.append(blocked[account_id])
                if not json_out:
                    print(_summary_line(blocked[account_id], str(account_id)))
                continue
            on_progress = None if progress is None else _Bar(progress, account_id)
            try:
                summary = app.poller.poll(account_id, trigger=Trigger.CLI, progress=on_progress)
            except DatabaseUnusable:
                raise  # every account would fail alike: one error, exit 2
            except (AccountBusy, NotFound) as exc:
                summary = RunSummary(
                    account_id,
                    None,
                    PollResult.BUSY if isinstance(exc, AccountBusy) else PollResult.NOT_FOUND,
                    error=str(exc),
                )
            except MailhaulError as exc:
                summary = RunSummary(account_id, None, PollResult.ERROR, error=str(exc))
            if on_progress is not None:
                on_progress.remove()
            summaries.append(summary)
            if not json_out:
                print(_summary_line(summary, str(account_id)))
    _send_notices(app)  # with no service running, this command sends what its runs queued
    close_sink(app.sink)
    return _report(summaries, json_out, printed=not json_out)


def _send_notices(app: App) -> None:
    """Deliver the notices that are due; a failure is logged, retried later, and does not
    change the exit code (it is about the runs)."""
    try:
        app.notice_sender.send_due()
    except MailhaulError as exc:
        logging.getLogger(__name__).warning("notices: %s", exc)


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
                    "duration_seconds": round(s.duration, 3),
                    "limit_resumes_at": s.limited_until,
                }
                for s in summaries
            ]
        )
    elif not printed:
        for summary in summaries:
            print(_summary_line(summary, str(summary.account_id)))
    return _exit_code(summaries)


def _exit_code(summaries: list[RunSummary]) -> int:
    """0 all ran well; else 1 if a run failed, 4 if an account was busy, 5 if disabled,
    paused or waiting for an OAuth2 sign-in (in that order when several)."""
    results = {summary.result for summary in summaries} - {PollResult.OK}
    if not results:
        return EXIT_OK
    if results - {PollResult.BUSY, *POLL_BLOCKED}:
        return EXIT_FAILED
    return EXIT_BUSY if PollResult.BUSY in results else EXIT_BLOCKED


def _progress() -> Progress:
    """Progress bars on stderr (a terminal): one per account while it is polled."""
    from rich.progress import BarColumn, Progress, TextColumn

    from mailhaul.cli.output import err_console

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[count]} messages, {task.fields[size]}"),
        console=err_console(),
        transient=True,
    )


class _Bar:
    """One account's progress bar, moved by its poll's progress reports (it is called as
    the poll's progress function); ``remove`` takes it away."""

    def __init__(self, progress: Progress, account_id: int) -> None:
        self.progress = progress
        self.task = progress.add_task(
            f"account {account_id}", total=None, size=human_bytes(0), count="0"
        )

    def __call__(self, account_id: int, done: int, total: int, size: int) -> None:
        # bytes as bytes (rich's DownloadColumn would read the message count as bytes)
        count = f"{done}/{total}" if total else str(done)
        self.progress.update(
            self.task, completed=done, total=total or None, size=human_bytes(size), count=count
        )

    def remove(self) -> None:
        self.progress.remove_task(self.task)


class _Bars:
    """The bars of accounts a running service polls for this command (their counts read
    from the runs' rows): each appears when its run starts and goes when it ends."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.bars: dict[int, _Bar] = {}

    def show(self, account_id: int, fetched: int, size: int) -> None:
        bar = self.bars.get(account_id)
        if bar is None:
            bar = self.bars[account_id] = _Bar(self.progress, account_id)
        bar(account_id, fetched, 0, size)

    def done(self, account_id: int) -> None:
        bar = self.bars.pop(account_id, None)
        if bar is not None:
            bar.remove()
