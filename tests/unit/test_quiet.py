"""When a poll may skip listing an IMAP folder: only while STATUS shows it as it was."""

from __future__ import annotations

from mailhaul.domain.messages import FolderState, KnownMessages, MessageRef
from mailhaul.domain.options import RetrievalOptions
from mailhaul.domain.planning import plan_fetch
from mailhaul.domain.quiet import (
    FULL_LISTING_EVERY,
    QuietFolder,
    nothing_to_do,
    options_key,
    still_quiet,
)

STATE = FolderState(uidvalidity=7, uidnext=101, messages=100, unseen=0)
KEEP = RetrievalOptions(keep=True)


def quiet(at: float = 1000.0, options: RetrievalOptions = KEEP) -> QuietFolder:
    return QuietFolder(STATE, options_key(options), at)


def test_the_same_state_soon_after_with_the_same_options_is_still_quiet() -> None:
    assert still_quiet(quiet(), STATE, KEEP, 1000.0 + 60)


def test_any_change_of_state_options_or_age_means_a_full_listing() -> None:
    for state in (
        FolderState(7, 102, 101, 1),  # a new message
        FolderState(7, 101, 99, 0),  # one expunged by another client
        FolderState(7, 101, 100, 1),  # one marked unread
        FolderState(8, 101, 100, 0),  # the folder was rebuilt
        None,  # the server did not answer STATUS
    ):
        assert not still_quiet(quiet(), state, KEEP, 1060.0)
    for options in (
        RetrievalOptions(keep=True, fetchall=True),
        RetrievalOptions(keep=True, flush=True),
        RetrievalOptions(keep=False),
        RetrievalOptions(keep=True, max_size=10),
    ):
        assert not still_quiet(quiet(), STATE, options, 1060.0)
    assert not still_quiet(quiet(), STATE, KEEP, 1000.0 + FULL_LISTING_EVERY)
    assert not still_quiet(quiet(), STATE, KEEP, 999.0)  # the clock went back
    assert not still_quiet(None, STATE, KEEP, 1060.0)


def test_nothing_to_do_only_when_the_poll_leaves_the_folder_as_it_was() -> None:
    delivered = KnownMessages(delivered=frozenset({"1", "2"}))
    seen = [MessageRef("1", 1, 10, True), MessageRef("2", 2, 10, True)]
    assert nothing_to_do(plan_fetch(seen, delivered, KEEP), delivered)
    new = [*seen, MessageRef("3", 3, 10)]
    assert not nothing_to_do(plan_fetch(new, delivered, KEEP), delivered)
    unflagged = [MessageRef("1", 1, 10, False), seen[1]]  # kept, recorded, not \\Seen yet
    assert not nothing_to_do(plan_fetch(unflagged, delivered, KEEP), delivered)
    too_big = [*seen, MessageRef("3", 3, 10**9)]
    assert not nothing_to_do(plan_fetch(too_big, delivered, KEEP), delivered)
    # without keep, delivered messages still listed are deleted: something to do
    assert not nothing_to_do(plan_fetch(seen, delivered, RetrievalOptions()), delivered)
    # old (seen, never fetched) mail left alone without fetchall is nothing to do
    old = [MessageRef("5", 5, 10, True)]
    assert nothing_to_do(plan_fetch(old, KnownMessages(), RetrievalOptions()), KnownMessages())
