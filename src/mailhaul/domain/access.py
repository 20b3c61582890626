"""Who may do what: roles, the acting principal, and the rules on accounts and users.

Pure rules; the services apply them to every query and change. An out-of-scope record is
reported as missing (NotFound), never as forbidden, so its existence is not revealed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mailhaul.domain.addresses import normalise_address
from mailhaul.domain.errors import ConfigError, MailhaulError
from mailhaul.domain.validation import FieldError, normalise_host


class Role(StrEnum):
    """A management user's role."""

    ADMIN = "admin"
    DOMAIN_ADMIN = "domain_admin"
    USER = "user"


class Forbidden(MailhaulError):
    """Raised when the principal may see a record but not make this change to it."""


def domain_of(address: str) -> str:
    """The (lower-case) domain of an address, ``""`` when it has none."""
    return address.rpartition("@")[2].lower() if "@" in address else ""


@dataclass(frozen=True)
class Principal:
    """The one acting: a logged-in user, an API key's user, or the local command line."""

    user_id: int | None
    login: str
    role: Role
    domains: frozenset[str] = frozenset()

    @classmethod
    def system(cls) -> Principal:
        """The command line on the service's own machine: an admin."""
        return cls(user_id=None, login="(command line)", role=Role.ADMIN)

    @property
    def is_admin(self) -> bool:
        """Whether this principal may do everything."""
        return self.role is Role.ADMIN

    def may_see_address(self, address: str) -> bool:
        """Whether an account or user with this owner address is within reach."""
        if self.role is Role.ADMIN:
            return True
        if self.role is Role.DOMAIN_ADMIN:
            return domain_of(address) in self.domains
        return address.lower() == self.login.lower()

    def check_account_addresses(self, owner: str, deliver_to: str) -> None:
        """Refuse an owner or destination outside this principal's reach.

        A user owns only their own accounts, delivered to their own address; a domain admin
        works within their domains. Raises FieldError naming the field.
        """
        if self.role is Role.ADMIN:
            return
        if not self.may_see_address(owner):
            raise FieldError("owner", f"{owner} is outside {self._reach()}")
        if deliver_to and not self.may_see_address(deliver_to):
            raise FieldError("deliver_to", f"{deliver_to} is outside {self._reach()}")

    def may_manage_user(self, login: str, role: Role) -> bool:
        """Whether this principal may see, change or delete a user with this login and role.

        Admins manage everyone; a domain admin manages the plain users of their domains;
        a user manages no one (but may change their own password through their profile).
        """
        if self.role is Role.ADMIN:
            return True
        if self.role is Role.DOMAIN_ADMIN:
            return role is Role.USER and domain_of(login) in self.domains
        return False

    def _reach(self) -> str:
        if self.role is Role.DOMAIN_ADMIN:
            return "your domains (" + ", ".join(sorted(self.domains)) + ")"
        return f"your own address ({self.login})"


def normalise_login(login: str, role: Role) -> str:
    """A user's login: a mailbox address for users and domain admins, a name or address
    for admins (e.g. the first admin, ``admin``); in lower case, so it is one identity with
    the same address as an account owner (domain.addresses)."""
    login = login.strip()
    if role is Role.ADMIN and "@" not in login:
        if not login or len(login) > 64 or not all(ch.isalnum() or ch in "._-" for ch in login):
            raise ConfigError(
                "login: an admin's login is an address or a name of letters, digits, . _ -"
            )
        return login.lower()
    try:
        return normalise_address(login)
    except ConfigError as exc:
        raise ConfigError(f"login: {exc}") from None


def normalise_domains(domains: list[str] | tuple[str, ...], role: Role) -> frozenset[str]:
    """The assigned domains: required for a domain admin, refused for other roles."""
    cleaned: set[str] = set()
    for domain in domains:
        if not domain.strip():
            continue
        try:
            cleaned.add(normalise_host(domain))
        except ConfigError:
            raise ConfigError(f"domains: {domain!r} is not a domain name") from None
    if role is Role.DOMAIN_ADMIN and not cleaned:
        raise ConfigError("domains: a domain admin needs at least one domain")
    if role is not Role.DOMAIN_ADMIN and cleaned:
        raise ConfigError(f"domains: only a domain admin has domains, not a {role}")
    return frozenset(cleaned)
