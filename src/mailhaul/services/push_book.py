"""The watches a push watcher holds: by key (account, folder), by account, and how many
connections each remote mailbox has from it (for the connection caps)."""

from __future__ import annotations

from collections import Counter

from mailhaul.services.push_plan import mailbox_of
from mailhaul.services.push_watch import Key, Watch

Mailbox = tuple[str, str, str]
"""(protocol, host, user name), lower-case: the scheduler's ``MailboxKey``."""


class WatchBook:
    """The watcher's watches; ``connections_to`` may be read from any thread."""

    def __init__(self) -> None:
        self.watches: dict[Key, Watch] = {}
        self._by_account: dict[int, dict[Key, Watch]] = {}
        self._watching: Counter[Mailbox] = Counter()

    def add(self, watch: Watch) -> None:
        """A new watch (its key is not held yet)."""
        self.watches[watch.key] = watch
        self._by_account.setdefault(watch.account.id, {})[watch.key] = watch
        self._watching[mailbox_of(watch.account)] += 1

    def remove(self, watch: Watch) -> None:
        """Forget a watch that is held."""
        del self.watches[watch.key]
        self._watching[mailbox_of(watch.account)] -= 1
        mine = self._by_account[watch.account.id]
        del mine[watch.key]
        if not mine:
            del self._by_account[watch.account.id]

    def of(self, account_id: int) -> list[Watch]:
        """An account's watches (a copy: the caller may remove them meanwhile)."""
        return list(self._by_account.get(account_id, {}).values())

    def accounts(self) -> set[int]:
        """The accounts with a watch."""
        return set(self._by_account)

    def connections_to(self, mailbox: Mailbox) -> int:
        """The connections held (or being opened) to a remote mailbox."""
        return self._watching[mailbox]
