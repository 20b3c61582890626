"""An account's OAuth2 sign-in rows: the provider, the sealed tokens and why a sign-in is
needed. Every method runs inside the caller's transaction."""

from __future__ import annotations

from sqlalchemy import Connection, select, update

from mailhaul.adapters.db.tables import accounts
from mailhaul.domain.errors import NotFound


class SignInStore:
    """The sign-in columns of ``accounts``."""

    def sealed_tokens(self, conn: Connection, account_id: int) -> str:
        """The account's encrypted token set ("" when it has none)."""
        sealed = conn.scalar(select(accounts.c.oauth_tokens_enc).where(accounts.c.id == account_id))
        if sealed is None:
            raise NotFound(f"no account {account_id}")
        return str(sealed)

    def all_sealed_tokens(self, conn: Connection) -> list[tuple[int, str]]:
        """(account id, encrypted tokens) of every account holding tokens (key rotation)."""
        rows = conn.execute(
            select(accounts.c.id, accounts.c.oauth_tokens_enc).where(
                accounts.c.oauth_tokens_enc != ""
            )
        ).all()
        return [(int(row.id), str(row.oauth_tokens_enc)) for row in rows]

    def store_tokens(self, conn: Connection, account_id: int, sealed: str) -> None:
        """Keep a (new) encrypted token set; "" forgets the tokens."""
        conn.execute(
            update(accounts).where(accounts.c.id == account_id).values(oauth_tokens_enc=sealed)
        )

    def connected(self, conn: Connection, account_id: int, sealed: str, now: float) -> None:
        """A user (re)connected: new tokens, no sign-in problem, the account due now."""
        conn.execute(
            update(accounts)
            .where(accounts.c.id == account_id)
            .values(
                oauth_tokens_enc=sealed,
                sign_in_problem=None,
                next_poll_at=now,
                consecutive_failures=0,
            )
        )

    def signed_out(self, conn: Connection, account_id: int) -> None:
        """The account no longer signs in with OAuth2: its tokens and problem go."""
        conn.execute(
            update(accounts)
            .where(accounts.c.id == account_id)
            .values(oauth_tokens_enc="", sign_in_problem=None)
        )

    def sign_in_needed(self, conn: Connection, account_id: int, problem: str) -> None:
        """The provider refused the grant for good: no polls until the user reconnects."""
        conn.execute(
            update(accounts)
            .where(accounts.c.id == account_id)
            .values(sign_in_problem=problem[:1000], oauth_tokens_enc="")
        )
