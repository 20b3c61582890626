"""Stored management users, their web sessions and API keys."""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, delete, func, insert, or_, select, update

from mailhaul.adapters.db.tables import api_keys, sessions, users
from mailhaul.domain.access import Role
from mailhaul.domain.errors import NotFound


@dataclass(frozen=True)
class User:
    """A management user (the password hash stays in the store)."""

    id: int
    login: str
    role: Role
    domains: frozenset[str]
    active: bool
    created_at: float
    updated_at: float
    last_login_at: float | None
    notices: str = "mailbox"  # notices about one's accounts: "mailbox" or "off"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready values (no password hash)."""
        return {
            "id": self.id,
            "login": self.login,
            "role": str(self.role),
            "domains": sorted(self.domains),
            "active": self.active,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "last_login_at": self.last_login_at,
            "notices": self.notices,
        }


@dataclass(frozen=True)
class ApiKey:
    """An API key's public part: the secret itself is shown once, at creation."""

    id: int
    user_id: int
    name: str
    prefix: str
    created_at: float
    last_used_at: float | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready values."""
        return {
            "id": self.id,
            "user_id": self.user_id,
            "name": self.name,
            "prefix": self.prefix,
            "created_at": self.created_at,
            "last_used_at": self.last_used_at,
        }


def _user(row: Any) -> User:
    return User(
        id=row.id,
        login=row.login,
        role=Role(row.role),
        domains=frozenset(json.loads(row.domains)),
        active=bool(row.active),
        created_at=row.created_at,
        updated_at=row.updated_at,
        last_login_at=row.last_login_at,
        notices=row._mapping.get("notices", "mailbox"),
    )


def _key(row: Row[Any]) -> ApiKey:
    return ApiKey(
        id=row.id,
        user_id=row.user_id,
        name=row.name,
        prefix=row.prefix,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
    )


# What signing in reads (by login, session, API key): not the password hash, nor the
# choices a user's own page and the user lists read (``_LISTED``).
_USER_COLUMNS = [c for c in users.c if c.name not in ("password_hash", "notices")]
_LISTED = [*_USER_COLUMNS, users.c.notices]


class UserStore:
    """Rows of users, sessions and API keys; every method runs in the caller's transaction."""

    # users ---------------------------------------------------------------------------------
    def add(
        self,
        conn: Connection,
        login: str,
        role: Role,
        domains: Collection[str],
        password_hash: str,
        now: float,
    ) -> int:
        """Insert a user; its id."""
        result = conn.execute(
            insert(users).values(
                login=login,
                role=str(role),
                domains=json.dumps(sorted(domains)),
                password_hash=password_hash,
                active=True,
                created_at=now,
                updated_at=now,
            )
        )
        key = result.inserted_primary_key
        assert key is not None
        return int(key[0])

    def get(self, conn: Connection, user_id: int) -> User:
        """One user, or NotFound."""
        row = conn.execute(select(*_LISTED).where(users.c.id == user_id)).first()
        if row is None:
            raise NotFound(f"user {user_id} does not exist")
        return _user(row)

    def by_login(self, conn: Connection, login: str) -> tuple[User, str] | None:
        """A user and its password hash by login (case-insensitive), or None."""
        query = select(*_USER_COLUMNS, users.c.password_hash)
        row = conn.execute(query.where(users.c.login == login.lower())).first()
        return None if row is None else (_user(row), row.password_hash)

    def exists(self, conn: Connection, login: str) -> bool:
        """Whether a user with this login exists."""
        query = select(func.count()).select_from(users).where(users.c.login == login.lower())
        return bool(conn.execute(query).scalar_one())

    def count(self, conn: Connection) -> int:
        """How many users there are."""
        return int(conn.execute(select(func.count()).select_from(users)).scalar_one())

    def list_users(
        self,
        conn: Connection,
        domains: Collection[str] | None = None,
        roles: Collection[Role] | None = None,
    ) -> list[User]:
        """Users by login; only those with a login in ``domains`` / a role in ``roles``."""
        query = select(*_LISTED).order_by(users.c.login)
        if domains is not None:
            if not domains:
                return []
            query = query.where(
                or_(*(users.c.login.endswith(f"@{d}", autoescape=True) for d in sorted(domains)))
            )
        if roles is not None:
            query = query.where(users.c.role.in_([str(r) for r in roles]))
        return [_user(row) for row in conn.execute(query)]

    def update(self, conn: Connection, user_id: int, now: float, **values: Any) -> None:
        """Change columns of a user (``domains`` as a collection); NotFound if missing."""
        if "domains" in values:
            values["domains"] = json.dumps(sorted(values["domains"]))
        if "role" in values:
            values["role"] = str(values["role"])
        result = conn.execute(
            update(users).where(users.c.id == user_id).values(**values, updated_at=now)
        )
        if result.rowcount == 0:
            raise NotFound(f"user {user_id} does not exist")

    def opted_out(self, conn: Connection, logins: Collection[str]) -> set[str]:
        """Which of these logins turned notices off."""
        if not logins:
            return set()
        query = select(users.c.login).where(
            users.c.login.in_(sorted(logins)), users.c.notices == "off"
        )
        return {row.login for row in conn.execute(query)}

    def touch_login(self, conn: Connection, user_id: int, now: float) -> None:
        """Record a successful login."""
        conn.execute(update(users).where(users.c.id == user_id).values(last_login_at=now))

    def delete(self, conn: Connection, user_id: int) -> None:
        """Delete a user with its sessions and keys."""
        conn.execute(delete(sessions).where(sessions.c.user_id == user_id))
        conn.execute(delete(api_keys).where(api_keys.c.user_id == user_id))
        if conn.execute(delete(users).where(users.c.id == user_id)).rowcount == 0:
            raise NotFound(f"user {user_id} does not exist")

    def count_admins(self, conn: Connection) -> int:
        """Active admins (the last one may not be removed or demoted)."""
        query = (
            select(func.count())
            .select_from(users)
            .where(users.c.role == str(Role.ADMIN), users.c.active.is_(True))
        )
        return int(conn.execute(query).scalar_one())

    # sessions ------------------------------------------------------------------------------
    def add_session(
        self, conn: Connection, token_hash: str, user_id: int, csrf: str, now: float, ttl: float
    ) -> None:
        """Store a new session."""
        conn.execute(
            insert(sessions).values(
                token_hash=token_hash,
                user_id=user_id,
                csrf_token=csrf,
                created_at=now,
                expires_at=now + ttl,
            )
        )

    def session(self, conn: Connection, token_hash: str, now: float) -> tuple[User, str] | None:
        """The active user and CSRF token of an unexpired session, or None."""
        query = (
            select(*_USER_COLUMNS, sessions.c.csrf_token)
            .join(sessions, sessions.c.user_id == users.c.id)
            .where(
                sessions.c.token_hash == token_hash,
                sessions.c.expires_at > now,
                users.c.active.is_(True),
            )
        )
        row = conn.execute(query).first()
        return None if row is None else (_user(row), row.csrf_token)

    def delete_session(self, conn: Connection, token_hash: str) -> None:
        """End one session."""
        conn.execute(delete(sessions).where(sessions.c.token_hash == token_hash))

    def delete_sessions_of(self, conn: Connection, user_id: int) -> None:
        """End every session of a user (after a password change or deactivation)."""
        conn.execute(delete(sessions).where(sessions.c.user_id == user_id))

    def prune_sessions(self, conn: Connection, now: float) -> int:
        """Delete expired sessions; how many."""
        return int(conn.execute(delete(sessions).where(sessions.c.expires_at <= now)).rowcount)

    # API keys ------------------------------------------------------------------------------
    def add_key(
        self, conn: Connection, user_id: int, name: str, prefix: str, key_hash: str, now: float
    ) -> int:
        """Store a key's hash; its id."""
        result = conn.execute(
            insert(api_keys).values(
                user_id=user_id, name=name, prefix=prefix, key_hash=key_hash, created_at=now
            )
        )
        key = result.inserted_primary_key
        assert key is not None
        return int(key[0])

    def keys_of(self, conn: Connection, user_id: int | None = None) -> list[ApiKey]:
        """A user's keys (or everyone's), by id."""
        query = select(api_keys).order_by(api_keys.c.id)
        if user_id is not None:
            query = query.where(api_keys.c.user_id == user_id)
        return [_key(row) for row in conn.execute(query)]

    def key(self, conn: Connection, key_id: int) -> ApiKey:
        """One key, or NotFound."""
        row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
        if row is None:
            raise NotFound(f"API key {key_id} does not exist")
        return _key(row)

    def user_of_key(self, conn: Connection, key_hash: str, now: float) -> User | None:
        """The active user holding the key with this hash, noting the use; or None."""
        query = (
            select(
                *_USER_COLUMNS, api_keys.c.id.label("key_id"), api_keys.c.last_used_at.label("used")
            )
            .join(api_keys, api_keys.c.user_id == users.c.id)
            .where(api_keys.c.key_hash == key_hash, users.c.active.is_(True))
        )
        row = conn.execute(query).first()
        if row is None:
            return None
        if row.used is None or now - row.used > 60:  # at most one write a minute per key
            conn.execute(
                update(api_keys).where(api_keys.c.id == row.key_id).values(last_used_at=now)
            )
        return _user(row)

    def delete_key(self, conn: Connection, key_id: int) -> None:
        """Revoke a key."""
        if conn.execute(delete(api_keys).where(api_keys.c.id == key_id)).rowcount == 0:
            raise NotFound(f"API key {key_id} does not exist")
