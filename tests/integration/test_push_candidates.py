"""What the push watcher's sync reads of the accounts every few seconds: only the rows an
edit or a poll moved are read whole, the others are the objects it had (so an unchanged
account costs nothing downstream); a change that moves neither shows at the next full read;
accounts paused, switched off or no longer push drop out at once. And a claim renews the
rows the worker holds and deletes those of accounts it no longer wants."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from sqlalchemy import update

from mailhaul.adapters.db.push_watches import PushWatchStore
from mailhaul.adapters.db.tables import accounts
from mailhaul.domain.account import Account, AccountSpec
from mailhaul.domain.options import Protocol, RetrievalOptions, Security
from support.mailhaul_home import Home


def _spec(n: int) -> AccountSpec:
    return AccountSpec(
        owner=f"o{n}@local.test",
        protocol=Protocol.IMAP,
        host="imap.example.test",
        port=993,
        security=Security.SSL,
        username=f"user{n}",
        options=RetrievalOptions(keep=True),
        interval=3600,
        push=True,
    )


def test_only_moved_rows_are_read_again_and_a_full_read_catches_the_rest(
    tmp_path: Path, database_url: str
):
    home = Home.create(tmp_path / "home", toml=f'[database]\nurl = "{database_url}"\n')
    app, store = home.app, PushWatchStore()
    ids = [app.accounts.add(_spec(n), "secret").id for n in range(4)]

    def read(full: bool) -> dict[int, Account]:
        with app.db.begin() as conn:
            return {account.id: account for account in store.candidates(conn, True, full)}

    first = read(full=True)
    assert sorted(first) == ids
    again = read(full=False)
    assert all(again[i] is first[i] for i in ids)  # nothing moved: the same objects

    edited = app.accounts.edit(ids[0], replace(_spec(0), interval=600))  # moves updated_at
    with app.db.begin() as conn:  # moves neither mark (as a sign-in problem would)
        conn.execute(update(accounts).where(accounts.c.id == ids[1]).values(max_size=12345))
        conn.execute(  # paused after failed logins: gone at once, full read or not
            update(accounts).where(accounts.c.id == ids[2]).values(paused_reason="login")
        )
    partial = read(full=False)
    assert sorted(partial) == [ids[0], ids[1], ids[3]]
    assert partial[ids[0]] is not first[ids[0]] and partial[ids[0]].spec == edited.spec
    assert partial[ids[1]] is first[ids[1]]  # not seen yet: its marks did not move
    assert partial[ids[3]] is first[ids[3]]
    full = read(full=True)
    assert full[ids[1]].spec.options.max_size == 12345  # the full read catches it
    assert full[ids[3]] is first[ids[3]]  # still the same object: its row is as before

    app.accounts.edit(ids[3], replace(_spec(3), push=False))
    assert sorted(read(full=False)) == [ids[0], ids[1]]
    app.db.dispose()


def test_a_claim_renews_what_it_holds_and_deletes_what_it_no_longer_wants(
    tmp_path: Path, database_url: str
):
    home = Home.create(tmp_path / "home", toml=f'[database]\nurl = "{database_url}"\n')
    app, store = home.app, PushWatchStore()
    ids = [app.accounts.add(_spec(n), "secret").id for n in range(3)]
    now = time.time()
    with app.db.begin() as conn:
        assert store.claim(conn, ids, "me", now, 30) == set(ids)
        assert store.claim(conn, ids[:1], "other", now, 30) == set()  # the control: held
    later = now + 20
    with app.db.begin() as conn:
        assert store.claim(conn, ids[:2], "me", later, 30) == set(ids[:2])
        rows = store.rows(conn)
    assert sorted(rows) == ids[:2]  # the account no longer wanted: its row is gone
    assert all(row.lease_expires == later + 30 for row in rows.values())
    with app.db.begin() as conn:  # past the renewed lease another worker takes them
        assert store.claim(conn, ids[:2], "other", later + 31, 30) == set(ids[:2])
    app.db.dispose()
