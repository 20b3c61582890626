"""`mailhaul status`'s push line counts the watches of every process in each state, the
ones held back by a connection cap and those still connecting included."""

from __future__ import annotations

from mailhaul.cli.status import push_line


def test_every_state_is_counted_in_the_push_line() -> None:
    shown = push_line(
        {"watching": 12, "connecting": 2, "reconnecting": 1, "unsupported": 3, "capped": 4}
    )
    assert shown == (
        "push: 12 watched (2 connecting, 1 reconnecting, 3 polling only, "
        "4 polling only under a connection cap)"
    )


def test_only_watched_accounts_make_a_short_line() -> None:
    assert push_line({"watching": 5}) == "push: 5 watched"
    assert push_line({}) == "push: 0 watched"
    assert push_line({"waiting": 1}) == "push: 0 watched (1 waiting for a poll to sign in)"
