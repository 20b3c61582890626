"""`mailhaul serve` and `mailhaul worker`: the scheduler (and, for serve, HTTP)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import click

from mailhaul.cli.context import CliState, errors_to_exit, state
from mailhaul.domain.errors import ConfigError

if TYPE_CHECKING:
    from types import FrameType

    from mailhaul.services.polling import RunSummary


logger = logging.getLogger("mailhaul")

workers_option = click.option("--workers", type=int, help="Accounts polled at once.")


@click.command()
@workers_option
@click.pass_context
def serve(ctx: click.Context, workers: int | None) -> None:
    """Run the service: poll every active account on its interval until stopped.

    IMAP accounts with push on are watched with IDLE meanwhile: new mail asks for a poll at
    once. SIGTERM or Ctrl-C stop it cleanly: every IDLE ends with DONE and LOGOUT; running
    polls finish the message in hand, record it and log out; after poll.stop_grace seconds
    the connections of polls still running are cut (what they had in hand stays on the
    server).
    """
    run_service(state(ctx), workers)


@click.command()
@workers_option
@click.pass_context
def worker(ctx: click.Context, workers: int | None) -> None:
    """Run only the scheduler (more of them share the work on PostgreSQL)."""
    run_service(state(ctx), workers, web=False)


def run_service(cli: CliState, workers: int | None, web: bool = True) -> None:
    """Run until SIGTERM/SIGINT; a second signal does not cut the grace period short."""
    import signal
    import threading

    from mailhaul.bootstrap import close_sink, init_home
    from mailhaul.logsetup import configure_logging
    from mailhaul.push_setup import build_push_watcher
    from mailhaul.services.housekeeping import Housekeeping
    from mailhaul.services.metrics import Metrics
    from mailhaul.services.notices import NoticeLoop
    from mailhaul.services.push import LEAVE_WAIT
    from mailhaul.services.scheduler import PollLimits, Scheduler, SchedulerControls
    from mailhaul.web.app import create_app  # the web stack: only for the service
    from mailhaul.web.server import parse_listen, start_http

    with errors_to_exit():
        settings = cli.settings()
        if not settings.key_file.exists():
            # A home `mailhaul init` never made: no key, no admin. Say what to run rather
            # than start a service nobody can sign in to.
            raise ConfigError(
                f"{settings.home} is not set up yet: run `mailhaul init` first (it makes the "
                "key, the database and the first web admin), or set MAILHAUL_HOME / --home "
                "to the right place"
            )
        configure_logging(settings.log_format, settings.log_level, settings.log_syslog)
        if settings.database_url.startswith("sqlite"):
            init_home(settings)  # creates or upgrades the embedded database
        app = cli.app()
        app.db.check_current()  # PostgreSQL: refuse an old schema (`mailhaul db upgrade`)
        stop = threading.Event()

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            logger.info("signal %d: stopping", signum)
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        logger.info(
            "serving: home %s, database %s, delivery %s",
            settings.home,
            settings.database_url,
            settings.delivery.method,
        )
        metrics = Metrics(live=app.status.live)
        app.observe_scans(metrics.observe_scan)
        http = None
        listen = parse_listen(settings.web_listen) if web else None
        if listen is not None:
            http = start_http(create_app(app, metrics), *listen, app.settings.web_trusted_proxies)
            logger.info("web UI and API on %s", http.url)
            if app.users.count() == 0:
                logger.warning(
                    "no web users yet: add an admin with "
                    "`mailhaul user add admin --role admin` (or run `mailhaul init`)"
                )

        def on_result(summary: RunSummary) -> None:
            metrics.observe(summary, summary.error_kind)
            latency = push.delivered(summary.account_id, summary.fetched, summary.duration)
            if latency is not None:
                metrics.push_latency.observe(latency)

        housekeeping = Housekeeping(app)
        scheduler = Scheduler(
            app.db,
            app.account_store,
            app.poller,
            PollLimits(
                workers or settings.workers,
                app.settings.per_host_limit,
                app.settings.limits.connections_for,
            ),
            SchedulerControls(
                stop,
                on_result=on_result,
                periodic=housekeeping,
            ),
        )
        housekeeping.scheduler = scheduler
        app.accounts.on_request = scheduler.wake  # a web or API "Fetch now" starts at once
        notices = NoticeLoop(lambda: app.notice_sender)
        notices.start()
        push = build_push_watcher(app, stop, scheduler.worker_id, scheduler.wake)
        scheduler.watching = push.connections_to  # watches count against the mailbox's cap
        metrics.watch_push(push.counters)
        push.start()
        try:
            scheduler.run(grace=settings.stop_grace)
        finally:
            push.join(LEAVE_WAIT + 1.0)
            notices.stop()
            if http is not None:
                http.stop()
            close_sink(app.sink)
            app.db.dispose()
