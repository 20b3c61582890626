"""What the push watcher opens for one account, and how many accounts one process watches
(no I/O here).

- With NOTIFY (RFC 5465), or while it is not known yet whether the server has it: one
  connection for every folder the account polls (the first folder open, the others told of
  by NOTIFY), when it polls more than one.
- Without NOTIFY: one IDLE connection per folder of ``push_folders`` (by default the INBOX,
  or the first folder polled), as many as the connection cap leaves beside the poll's own
  (``watch_connections``); the folders beyond the cap are polled only.
- A cap of one connection leaves none for a watch: the account is polled only.

The cap is the remote mailbox's (protocol, host and user name): two accounts on one mailbox
share it, so the connections planned for its other accounts of lower id (``taken``) count,
in this process and in others (``taken_elsewhere``): the lowest id plans first, so every
process arrives at the same split.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mailhaul.adapters.sources.imap.notify import NotifyPlan
from mailhaul.domain.account import Account
from mailhaul.domain.folders import INBOX
from mailhaul.domain.limits import HostLimits, watch_connections
from mailhaul.domain.options import RetrievalOptions

SLACK = 10
"""A worker may hold its share plus one account in SLACK (so that a few accounts do not
move back and forth between workers at every sync)."""


@dataclass(frozen=True)
class Target:
    """One connection of a watch: the folder it idles on and what NOTIFY adds."""

    folder: str
    notify: NotifyPlan | None = None


@dataclass(frozen=True)
class WatchPlan:
    """The connections for one account; ``detail`` words them for the watching state ("":
    the INBOX alone, as ever); ``capped``: why there are none (the connection cap)."""

    targets: tuple[Target, ...]
    detail: str = ""
    notify_detail: str = ""  # the detail once the first connection has NOTIFY
    capped: str = ""


def capped_words(host: str, cap: int | None) -> str:
    """Why an account is polled only, or "" when its cap leaves room for a watch."""
    if watch_connections(cap, 1) > 0:
        return ""
    return f"the connection cap for {host} ({cap}) leaves no room for a watch"


def first_folder(options: RetrievalOptions) -> str:
    """The folder a watch keeps open: the INBOX when it is polled, else the first one."""
    if options.rules.all_folders or any(f.upper() == INBOX for f in options.folders):
        return INBOX
    return options.folders[0]


def mailbox_of(account: Account) -> tuple[str, str, str]:
    """The remote mailbox an account opens: (protocol, source host, user name), lower-case
    (the scheduler's ``MailboxKey``)."""
    spec = account.spec
    return (str(spec.protocol).lower(), spec.host.lower(), spec.username.lower())


def plan_watch(
    account: Account, limits: HostLimits, has_notify: bool | None, taken: int = 0
) -> WatchPlan:
    """The connections to hold for ``account`` (``has_notify``: what its server showed,
    None while unknown; ``taken``: connections planned to the same mailbox for other
    accounts)."""
    host = account.spec.host
    cap = limits.connections_for(host)
    capped = capped_words(host, cap)
    if capped:
        return WatchPlan((), capped=capped)
    free = None if cap is None else cap - taken
    if watch_connections(free, 1) == 0:
        shared = f"the connection cap for {host} ({cap}) is taken by other accounts' watches"
        return WatchPlan((), capped=shared)
    options = account.spec.options
    first = first_folder(options)
    others = tuple(
        f for f in options.folders if f != options.move_to and f.upper() != first.upper()
    )
    every = options.rules.all_folders
    if (others or every) and has_notify is not False:
        ignored = (options.move_to,) if options.move_to else ()
        notify = NotifyPlan(mailboxes=() if every else others, every=every, ignored=ignored)
        words = "every folder polled" if every else ", ".join((first, *others))
        return WatchPlan((Target(first, notify),), notify_detail=f"{words} (NOTIFY)")
    listed = options.push_folders or (first,)
    room = watch_connections(free, len(listed))
    watched = listed[:room]
    detail = "" if listed == (INBOX,) else ", ".join(watched)
    if (others or every) and not options.push_folders:
        detail = f"{first} (the other folders polled: the server has no NOTIFY)"
    if room < len(listed):
        detail += f" ({room} of {len(listed)} listed; the connection cap for {host} is {cap})"
    return WatchPlan(tuple(Target(folder) for folder in watched), detail=detail)


def taken_elsewhere(
    held: Iterable[Account], elsewhere: Mapping[int, int], accounts: Mapping[int, Account]
) -> dict[int, int]:
    """For each of the ``held`` accounts that shares its remote mailbox with accounts other
    processes watch, the connections they plan (``elsewhere``, by account id) for those of
    lower id."""
    by_mailbox: dict[tuple[str, str, str], list[tuple[int, int]]] = {}
    for account_id, connections in elsewhere.items():
        account = accounts.get(account_id)
        if account is not None:
            by_mailbox.setdefault(mailbox_of(account), []).append((account_id, connections))
    taken: dict[int, int] = {}
    for account in held:
        others = by_mailbox.get(mailbox_of(account))
        if others:
            taken[account.id] = sum(n for other, n in others if other < account.id)
    return taken


class Planner:
    """``plan_watch`` with its last answer per account kept: a sync every few seconds plans
    thousands of accounts, nearly all as before (same spec, same limits, same neighbours)."""

    def __init__(self) -> None:
        self._last: dict[int, tuple[tuple[object, ...], HostLimits, WatchPlan]] = {}

    def plan(
        self, account: Account, limits: HostLimits, has_notify: bool | None, taken: int = 0
    ) -> WatchPlan:
        """As ``plan_watch``; the same inputs give the kept plan."""
        key: tuple[object, ...] = (account.spec, has_notify, taken)
        found = self._last.get(account.id)
        if found is not None and found[1] is limits and found[0] == key:
            return found[2]
        plan = plan_watch(account, limits, has_notify, taken)
        self._last[account.id] = (key, limits, plan)
        return plan

    def forget(self, account_id: int) -> None:
        """Drop an account's kept plan (it is no longer watched here)."""
        self._last.pop(account_id, None)


def share(accounts: int, workers: int) -> int:
    """How many of ``accounts`` one of ``workers`` live processes may watch."""
    each = math.ceil(accounts / max(workers, 1))
    return each + each // SLACK
