"""Incidents and notices, as plain values: when an account's trouble becomes an incident
worth telling someone about, and the words of the notice (no I/O here).

An incident opens at an account's first failing run ("since") and closes at its next good
run. Its notice goes out once, when the incident is due: at once for a state a person has
to act on (paused after login failures, destination missing, sign-in needed), otherwise
after ``after_failures`` failing runs in a row or ``after_minutes`` of failing, whichever
comes first. A recovery notice follows only an incident that was told about.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mailhaul.domain.scheduling import Outcome


class IncidentKind(StrEnum):
    """What is wrong with an account."""

    FAILING = "failing"  # runs end in errors (network, server, scanner, …)
    PAUSED = "paused"  # paused after login failures in a row
    DESTINATION_MISSING = "destination_missing"
    SIGN_IN_NEEDED = "sign_in_needed"  # OAuth2: the grant is gone
    CERT_EXPIRING = "cert_expiring"  # the server's certificate runs out soon (mail flows)


IMMEDIATE = frozenset(
    {
        IncidentKind.PAUSED,
        IncidentKind.DESTINATION_MISSING,
        IncidentKind.SIGN_IN_NEEDED,
        IncidentKind.CERT_EXPIRING,
    }
)
CERTIFICATE = frozenset({IncidentKind.CERT_EXPIRING})
"""Incidents about the server's certificate: beside a failing one, not instead of it."""


class NoticeEvent(StrEnum):
    """What a notice tells (also a webhook's ``event``)."""

    FAILING = "account.failing"
    RECOVERED = "account.recovered"


@dataclass(frozen=True)
class NoticePolicy:
    """When a failing account's incident is due (the ``notify.*`` settings)."""

    after_failures: int = 3
    after_minutes: int = 60
    copy_admins: bool = False  # admins get every notice too (not only the owner)
    webhook: bool = False  # every incident event also goes to the webhook
    cert_days: int = 14  # a verified certificate expiring sooner opens an incident
    mailbox: bool = True  # notices into people's mailboxes


def kind_after_run(outcome: Outcome, paused: bool, sign_in_needed: bool) -> IncidentKind | None:
    """The incident a run's end leaves open; None when the account works."""
    if sign_in_needed:
        return IncidentKind.SIGN_IN_NEEDED
    if paused:
        return IncidentKind.PAUSED
    if outcome is Outcome.DESTINATION_MISSING:
        return IncidentKind.DESTINATION_MISSING
    if outcome is Outcome.OK:
        return None
    return IncidentKind.FAILING


def is_due(
    kind: IncidentKind, failures: int, since: float, now: float, policy: NoticePolicy
) -> bool:
    """Whether an open incident's notice should go out now."""
    if kind in IMMEDIATE:
        return True
    return failures >= policy.after_failures or now - since >= policy.after_minutes * 60


@dataclass(frozen=True)
class AccountLine:
    """How a notice names an account."""

    id: int
    source: str  # "imap mail.example.net (petrov)"
    destination: str
    page: str  # its page's address, or "" without web.public_url


@dataclass(frozen=True)
class Told:
    """One incident as a notice tells it."""

    kind: IncidentKind
    account: AccountLine
    reason: str  # the server's words, scrubbed
    since: float


WHAT = {
    IncidentKind.FAILING: "mail is not being fetched: its runs keep failing",
    IncidentKind.PAUSED: "it is paused: the server refused the password several times in a row",
    IncidentKind.DESTINATION_MISSING: "the local mailbox it delivers to does not exist",
    IncidentKind.SIGN_IN_NEEDED: "it has to be signed in again (OAuth2)",
    IncidentKind.CERT_EXPIRING: "its server's certificate expires soon",
}
TODO = {
    IncidentKind.FAILING: (
        "Nothing is lost: the mail waits on the server. If the server's words below do not "
        "explain a passing fault, check the account's settings or ask your administrator."
    ),
    IncidentKind.PAUSED: (
        "Check the password (it may have changed at the provider), enter the right one in "
        "the account's settings, then resume it. Mail waits on the server meanwhile."
    ),
    IncidentKind.DESTINATION_MISSING: (
        "Create the local mailbox or change where the account delivers to. Nothing is "
        "fetched or deleted until then."
    ),
    IncidentKind.SIGN_IN_NEEDED: (
        "Connect the account again (Connect on its page, or `mailhaul account connect`). "
        "Mail waits on the server meanwhile."
    ),
    IncidentKind.CERT_EXPIRING: (
        "Mail is still fetched. If the provider does not renew the certificate in time, "
        "fetching stops when it expires (an expired certificate is never accepted): tell "
        "the provider, or your administrator."
    ),
}


def cert_expiring(expires: float | None, now: float, policy: NoticePolicy) -> bool | None:
    """Whether a certificate expiring at ``expires`` is worth an incident now; None when
    there is no verified certificate to judge."""
    if expires is None:
        return None
    return expires - now < policy.cert_days * 86400


def notice_text(
    event: NoticeEvent, kind: IncidentKind, account: AccountLine, details: tuple[str, float]
) -> tuple[str, str]:
    """(subject, body) of a notice. ``details``: the server's own words (already scrubbed
    of secrets) and when the incident began (a Unix time, shown in UTC)."""
    from datetime import UTC, datetime

    words, since = details
    began = datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%d %H:%M UTC")
    name = f"account {account.id}, {account.source}"
    link = f"\nThe account: {account.page}\n" if account.page else ""
    if event is NoticeEvent.RECOVERED:
        subject = f"mailhaul: {name} works again"
        body = (
            f"Fetching for {name} works again; mail is delivered to {account.destination}.\n"
            f"The trouble began {began}.\n{link}"
        )
        return subject, body
    subject = f"mailhaul: {name}: {WHAT[kind]}"
    body = (
        f"The mail account {account.source}, delivered to {account.destination}: "
        f"{WHAT[kind]}.\n\nSince: {began}\nThe last error: {words or '(none given)'}\n\n"
        f"{TODO[kind]}\n{link}\nThis is the one notice for this incident; another follows "
        "when the account works again.\n"
    )
    return subject, body


def digest_text(event: NoticeEvent, told: list[Told]) -> tuple[str, str]:
    """(subject, body) of one notice about several accounts of one person."""
    from datetime import UTC, datetime

    def began(since: float) -> str:
        return datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%d %H:%M UTC")

    if event is NoticeEvent.RECOVERED:
        subject = f"mailhaul: {len(told)} accounts work again"
        lines = [f"Fetching works again for these {len(told)} accounts:", ""]
        for item in told:
            lines.append(f"- account {item.account.id}, {item.account.source}")
            lines.append(
                f"  delivered to {item.account.destination}; trouble since {began(item.since)}"
            )
        return subject, "\n".join(lines) + "\n"
    subject = f"mailhaul: {len(told)} accounts have stopped fetching mail"
    lines = [
        f"Mail is not being fetched for these {len(told)} accounts. Nothing is lost: the mail "
        "waits on the servers.",
        "",
    ]
    for item in told:
        lines += [
            f"- account {item.account.id}, {item.account.source}, delivered to "
            f"{item.account.destination}: {WHAT[item.kind]}",
            f"  since {began(item.since)}; the last error: {item.reason or '(none given)'}",
            f"  {TODO[item.kind]}",
        ]
        if item.account.page:
            lines.append(f"  {item.account.page}")
    lines += ["", "This is the one notice for these incidents; another follows when they end."]
    return subject, "\n".join(lines) + "\n"
