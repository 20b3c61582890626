"""Management users: CRUD within the actor's reach, logins, web sessions and API keys."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import Connection

from mailhaul.adapters.db.database import Database
from mailhaul.adapters.db.users import ApiKey, User, UserStore
from mailhaul.adapters.passwords import PasswordHashes
from mailhaul.domain.access import Forbidden, Principal, Role, normalise_domains, normalise_login
from mailhaul.domain.errors import ConfigError, NotFound
from mailhaul.domain.validation import FieldChecks, FieldError

API_KEY_PREFIX = "mh_"
MIN_PASSWORD = 10


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_user_password(password: str) -> None:
    """A management password: at least 10 characters, at most 1024, no line breaks or NUL."""
    if len(password) < MIN_PASSWORD:
        raise FieldError("password", f"must be at least {MIN_PASSWORD} characters")
    if len(password) > 1024:
        raise FieldError("password", "is longer than 1024 characters")
    if any(ch in password for ch in "\r\n\x00"):
        raise FieldError("password", "must not contain line breaks or NUL")


def principal_of(user: User) -> Principal:
    """The principal acting as ``user``."""
    return Principal(user_id=user.id, login=user.login, role=user.role, domains=user.domains)


@dataclass(frozen=True)
class SessionInfo:
    """A resolved web session."""

    user: User
    principal: Principal
    csrf_token: str


NOTICE_CHOICES = ("mailbox", "off")


@dataclass(frozen=True)
class UserChanges:
    """What an edit changes of a user; None leaves it as it is."""

    role: Role | None = None
    domains: Collection[str] | None = None
    password: str | None = None
    active: bool | None = None


class UserService:
    """Use cases on users; every one takes the acting principal and stays within its reach."""

    def __init__(
        self,
        db: Database,
        store: UserStore | None = None,
        hashes: PasswordHashes | None = None,
        session_ttl: float = 12 * 3600,
    ) -> None:
        self.db = db
        self.store = store or UserStore()
        self.hashes = hashes or PasswordHashes()
        self.session_ttl = session_ttl

    # users ---------------------------------------------------------------------------------
    def add(
        self,
        actor: Principal,
        login: str,
        role: Role,
        password: str,
        domains: Collection[str] = (),
    ) -> User:
        """Create a user; the actor must be allowed to manage a user of that role there."""
        checks = FieldChecks()  # every field's error at once
        domain_set: frozenset[str] = frozenset()
        with checks.field():
            login = normalise_login(login, role)
        with checks.field():
            domain_set = normalise_domains(tuple(domains), role)
        with checks.field():
            check_user_password(password)
        checks.raise_any()
        if not actor.may_manage_user(login, role):
            raise Forbidden(f"you may not create a {role} named {login}")
        password_hash = self.hashes.hash(password)
        with self.db.begin() as conn:
            if self.store.exists(conn, login):
                raise FieldError("login", f"a user {login} exists already")
            user_id = self.store.add(conn, login, role, domain_set, password_hash, time.time())
            return self.store.get(conn, user_id)

    def list_users(self, actor: Principal) -> list[User]:
        """The users the actor manages (a user sees only themselves)."""
        with self.db.begin() as conn:
            if actor.is_admin:
                return self.store.list_users(conn)
            if actor.role is Role.DOMAIN_ADMIN:
                return self.store.list_users(conn, domains=actor.domains, roles=[Role.USER])
            if actor.user_id is None:
                return []
            return [self.store.get(conn, actor.user_id)]

    def get(self, actor: Principal, user_id: int) -> User:
        """One user within reach (oneself included), else NotFound."""
        with self.db.begin() as conn:
            user = self.store.get(conn, user_id)
        if user.id != actor.user_id and not actor.may_manage_user(user.login, user.role):
            raise NotFound(f"user {user_id} does not exist")
        return user

    def by_login(self, actor: Principal, login: str) -> User:
        """A user within reach by login, else NotFound."""
        with self.db.begin() as conn:
            found = self.store.by_login(conn, login.strip())
        if found is None:
            raise NotFound(f"user {login} does not exist")
        return self.get(actor, found[0].id)

    def set_notices(self, actor: Principal, notices: str) -> User:
        """One's own choice of notices about one's accounts: ``mailbox`` or ``off``."""
        if notices not in NOTICE_CHOICES:
            raise FieldError("notices", f"choose {' or '.join(NOTICE_CHOICES)}")
        if actor.user_id is None:
            raise Forbidden("only a user has notices to choose")
        with self.db.begin() as conn:
            self.store.update(conn, actor.user_id, time.time(), notices=notices)
            return self.store.get(conn, actor.user_id)

    def edit(self, actor: Principal, user_id: int, changes: UserChanges) -> User:
        """Change a user's role, domains, password or active flag.

        Users may change only their own password. Nobody may leave the service without an
        active admin, or give a role or domains beyond their own reach.
        """
        role, domains = changes.role, changes.domains
        password, active = changes.password, changes.active
        user = self.get(actor, user_id)
        own = user.id == actor.user_id
        if own and not actor.is_admin and (role, domains, active) != (None, None, None):
            raise Forbidden("you may change only your own password")
        new_role = role or user.role
        checks = FieldChecks()  # every field's error at once
        new_domains = user.domains if new_role is Role.DOMAIN_ADMIN else frozenset()
        if domains is not None:
            with checks.field():
                new_domains = normalise_domains(tuple(domains), new_role)
        if new_role is Role.DOMAIN_ADMIN and not new_domains:
            checks.add("domains", "a domain admin needs at least one domain")
        if password is not None:
            with checks.field():
                check_user_password(password)
        checks.raise_any()
        if not own and not actor.may_manage_user(user.login, new_role):
            raise Forbidden(f"you may not make {user.login} a {new_role}")
        if new_role is not Role.ADMIN and "@" not in user.login:
            raise FieldError("role", f"{user.login} is not an address: it can only be an admin")
        values: dict[str, object] = {"role": new_role, "domains": new_domains}
        if password is not None:
            check_user_password(password)
            values["password_hash"] = self.hashes.hash(password)
        if active is not None:
            values["active"] = active
        with self.db.begin() as conn:
            if user.role is Role.ADMIN and (new_role is not Role.ADMIN or active is False):
                self._keep_an_admin(conn, user)
            self.store.update(conn, user_id, time.time(), **values)
            if password is not None or active is False or new_role != user.role:
                self.store.delete_sessions_of(conn, user_id)
            return self.store.get(conn, user_id)

    def delete(self, actor: Principal, user_id: int) -> None:
        """Delete a user (their retrieval accounts stay; an admin can reassign them)."""
        user = self.get(actor, user_id)
        if user.id == actor.user_id:
            raise Forbidden("you cannot delete yourself")
        with self.db.begin() as conn:
            if user.role is Role.ADMIN:
                self._keep_an_admin(conn, user)
            self.store.delete(conn, user_id)

    def count(self) -> int:
        """How many users exist (0 before the first admin)."""
        with self.db.begin() as conn:
            return self.store.count(conn)

    def _keep_an_admin(self, conn: Connection, user: User) -> None:
        if user.active and self.store.count_admins(conn) <= 1:
            raise Forbidden(f"{user.login} is the last admin: add another admin first")

    # logins and sessions -------------------------------------------------------------------
    def authenticate(self, login: str, password: str) -> User | None:
        """The active user with this login and password, else None (same cost either way)."""
        with self.db.begin() as conn:
            found = self.store.by_login(conn, login.strip())
        user, stored = found if found is not None else (None, None)
        if not self.hashes.verify(stored, password) or user is None or not user.active:
            return None
        with self.db.begin() as conn:
            if stored and self.hashes.needs_rehash(stored):
                self.store.update(
                    conn, user.id, time.time(), password_hash=self.hashes.hash(password)
                )
            self.store.touch_login(conn, user.id, time.time())
        return user

    def start_session(self, user: User) -> tuple[str, str]:
        """A new session for ``user``: (cookie token, CSRF token)."""
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = time.time()
        with self.db.begin() as conn:
            self.store.prune_sessions(conn, now)
            self.store.add_session(conn, _digest(token), user.id, csrf, now, self.session_ttl)
        return token, csrf

    def session(self, token: str) -> SessionInfo | None:
        """The session behind a cookie token, or None when unknown or expired."""
        if not token or len(token) > 200:
            return None
        with self.db.begin() as conn:
            found = self.store.session(conn, _digest(token), time.time())
        if found is None:
            return None
        user, csrf = found
        return SessionInfo(user=user, principal=principal_of(user), csrf_token=csrf)

    def end_session(self, token: str) -> None:
        """Log out."""
        with self.db.begin() as conn:
            self.store.delete_session(conn, _digest(token))

    # API keys ------------------------------------------------------------------------------
    def create_key(self, actor: Principal, user_id: int, name: str) -> tuple[ApiKey, str]:
        """A new key for a user within reach: (its record, the secret, shown only now)."""
        user = self.get(actor, user_id)
        name = name.strip()
        if not name or len(name) > 100 or any(ord(ch) < 32 for ch in name):
            raise FieldError("name", "a key needs a name of 1 to 100 printable characters")
        secret = API_KEY_PREFIX + secrets.token_urlsafe(32)
        with self.db.begin() as conn:
            key_id = self.store.add_key(
                conn, user.id, name, secret[:10], _digest(secret), time.time()
            )
            return self.store.key(conn, key_id), secret

    def keys(self, actor: Principal, user_id: int | None = None) -> list[ApiKey]:
        """Keys of one user within reach (default: the actor; admins may ask for all: 0)."""
        if user_id == 0 and actor.is_admin:
            with self.db.begin() as conn:
                return self.store.keys_of(conn)
        target = self.get(actor, user_id if user_id is not None else self._own_id(actor))
        with self.db.begin() as conn:
            return self.store.keys_of(conn, target.id)

    def revoke_key(self, actor: Principal, key_id: int) -> None:
        """Delete a key of a user within reach, else NotFound."""
        with self.db.begin() as conn:
            key = self.store.key(conn, key_id)
        try:
            self.get(actor, key.user_id)
        except NotFound:
            raise NotFound(f"API key {key_id} does not exist") from None
        with self.db.begin() as conn:
            self.store.delete_key(conn, key_id)

    def principal_for_key(self, secret: str) -> Principal | None:
        """The principal an API key acts as, or None for an unknown key."""
        if not secret.startswith(API_KEY_PREFIX) or len(secret) > 200:
            return None
        with self.db.begin() as conn:
            user = self.store.user_of_key(conn, _digest(secret), time.time())
        return None if user is None else principal_of(user)

    @staticmethod
    def _own_id(actor: Principal) -> int:
        if actor.user_id is None:
            raise ConfigError("name the user (the command line is not a user)")
        return actor.user_id
