"""Skipping the listing of an IMAP folder that has not changed since a poll found nothing to do.

A poll that lists a folder, plans, and finds nothing to do (nothing to fetch, delete, flag,
skip or refuse) records the folder's state (UIDVALIDITY, UIDNEXT, MESSAGES, UNSEEN). The
next poll asks the server for that state with one STATUS, without opening the folder; if it
is the same, the folder holds the same messages as then (UIDNEXT changes whenever one is
added, the count whenever one goes), so there is still nothing to do, and the poll ends
there. What STATUS cannot see is which messages are unread when as many are: a message
marked unread while another was marked read (it matters only without ``fetchall``, where
unread means new). A full listing at least every ``FULL_LISTING_EVERY`` seconds bounds
that, and any change of the account's retrieval options forces one.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailhaul.domain.messages import FolderState, KnownMessages
from mailhaul.domain.options import RetrievalOptions
from mailhaul.domain.planning import FetchPlan

FULL_LISTING_EVERY = 3600.0
"""Seconds after which a folder is listed in full even though its state has not changed."""


@dataclass(frozen=True)
class QuietFolder:
    """A folder's state in which a full listing found nothing to do, and when."""

    state: FolderState
    options_key: str
    listed_at: float


def options_key(options: RetrievalOptions) -> str:
    """The retrieval options a plan depends on, as a string stored with the state."""
    return (
        f"keep={int(options.keep)} fetchall={int(options.fetchall)} "
        f"flush={int(options.flush)} max_size={options.max_size}"
    )


def nothing_to_do(plan: FetchPlan, known: KnownMessages) -> bool:
    """Whether a poll with this plan leaves the folder (and its records) as it found it."""
    if plan.fetch or plan.delete_now or plan.too_large or plan.refused or plan.ambiguous:
        return False
    # kept and recorded but not flagged \Seen yet (a run died first): this poll flags them
    return not any(not ref.seen and ref.uid in known.delivered for ref in plan.old)


def still_quiet(
    quiet: QuietFolder | None,
    state: FolderState | None,
    options: RetrievalOptions,
    now: float,
) -> bool:
    """Whether ``state`` (from STATUS now) shows the folder as it was when it was quiet."""
    if quiet is None or state is None or quiet.state != state:
        return False
    if quiet.options_key != options_key(options):
        return False
    return 0 <= now - quiet.listed_at < FULL_LISTING_EVERY
