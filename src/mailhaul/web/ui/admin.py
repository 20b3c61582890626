"""Admin pages: the settings (the editable ones as a form, stored in the database, each with
where its value comes from; the rest read-only, from mailhaul.toml) and the system status
(workers, queue lag, accounts by state, recent errors). No secret is ever shown: the database
URL loses its password, a password file is only said to be set."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit, urlunsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from mailhaul.services.users import SessionInfo
from mailhaul.settings import Settings
from mailhaul.settings_keys import EDITABLE_SETTINGS, DeliverySettings
from mailhaul.web.auth import Access, app_of, page_access
from mailhaul.web.ui.routing import PageRoute
from mailhaul.web.ui.templating import render

router = APIRouter(route_class=PageRoute)
Admin = Annotated[SessionInfo, Depends(page_access(Access.ADMIN))]
RECENT_ERRORS = 20


def redacted_url(url: str) -> str:
    """A database URL without its password (``postgresql://user:***@host/db``)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostinfo}"))


@dataclass(frozen=True)
class DeliveryView:
    """One delivery method as the settings page shows it."""

    scope: str  # "default" or a domain
    method: str
    target: str
    details: list[tuple[str, str]]


def delivery_view(scope: str, delivery: DeliverySettings) -> DeliveryView:
    """What matters of a delivery setting, without secrets."""
    details = [("timeout", f"{delivery.timeout:g} s")]
    if delivery.method == "smtp":
        details.append(("STARTTLS", "yes" if delivery.smtp_starttls else "no"))
        if delivery.smtp_username:
            details.append(("SMTP login", delivery.smtp_username))
        details.append(
            ("SMTP password", "set (from a file)" if delivery.smtp_password_file else "none")
        )
    details.append(("envelope sender", delivery.sender or "from the message"))
    return DeliveryView(scope, delivery.method, delivery.target, details)


def settings_sections(settings: Settings) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """(section title, [(setting, value, meaning)]) for the settings page."""
    ports = ", ".join(str(p) for p in sorted(settings.sources_allowed_ports))
    return [
        (title, [row for row in rows if row[0] not in EDITABLE_SETTINGS])
        for title, rows in _all_sections(settings, ports)
    ]


def _all_sections(settings: Settings, ports: str) -> list[tuple[str, list[tuple[str, str, str]]]]:
    return [
        (
            "Polling",
            [
                ("poll.interval", f"{settings.interval} s", "default interval of a new account"),
                ("poll.timeout", f"{settings.timeout:g} s", "network timeout"),
                ("poll.workers", str(settings.workers), "accounts polled at once per process"),
                ("poll.max_size", f"{settings.max_size:,} bytes", "default per-message limit"),
                ("poll.per_host_limit", str(settings.per_host_limit), "polls of one host at once"),
                ("poll.max_backoff", f"{settings.max_backoff} s", "longest wait after failures"),
                (
                    "poll.auth_failures_to_pause",
                    str(settings.auth_failures_to_pause),
                    "login failures in a row before an account is paused",
                ),
                ("poll.lease_ttl", f"{settings.lease_ttl} s", "a dead process's lease expires"),
                ("runs.keep_days", str(settings.runs_keep_days), "run history kept (0: all)"),
            ],
        ),
        (
            "Push (IMAP IDLE)",
            [
                ("push.enabled", "on" if settings.push_enabled else "off", "accounts' default"),
                (
                    "push.connects_per_second",
                    f"{settings.push_connects_per_second:g}",
                    "watcher connections opened per second",
                ),
                ("push.keepalive", f"{settings.push_keepalive} s", "DONE/IDLE round trips"),
            ],
        ),
        (
            "Sources (what non-admins may enter)",
            [
                (
                    "sources.allow_private",
                    "yes" if settings.sources_allow_private else "no",
                    "loopback, private and link-local source hosts",
                ),
                ("sources.allowed_ports", ports, "source ports"),
            ],
        ),
        (
            "Service",
            [
                ("database.url", redacted_url(settings.database_url), "where state is kept"),
                ("web.listen", settings.web_listen or "(off)", "this web UI and the API"),
                (
                    "web.cookie_secure",
                    "yes" if settings.web_cookie_secure else "no",
                    "session cookies only over HTTPS",
                ),
                ("web.session_hours", str(settings.web_session_hours), "a sign-in lasts"),
                ("log.format", settings.log_format, ""),
                ("log.level", settings.log_level, ""),
                ("log.syslog", "yes" if settings.log_syslog else "no", "also to /dev/log"),
            ],
        ),
    ]


@router.get("/status")
def status_page(request: Request, info: Admin) -> Response:
    """Workers, queue lag, accounts by state and the most recent failed runs."""
    status = app_of(request).status
    return render(
        request,
        "status.html",
        info,
        active_nav="status",
        summary=status.summary(),
        failures=status.failed_runs(RECENT_ERRORS),
    )
