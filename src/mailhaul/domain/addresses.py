"""E-mail address checks for destinations and owners.

One rule for case: an address names one person whatever the case it is typed in, so mailhaul
stores and compares addresses in lower case, local part included (as Dovecot and Postfix
treat local users by default: ``Alice@Example.ORG`` and ``alice@example.org`` are one
mailbox, one Maildir, one login).
"""

from __future__ import annotations

import re

from mailhaul.domain.errors import ConfigError

_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+=?^_`{|}~.-]{1,64}$")
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def split_address(address: str) -> tuple[str, str]:
    """Split ``local@domain`` after checking it is a plain, safe mailbox address.

    The parts become path components of Maildirs, so anything that could climb out of a
    directory (``/``, a leading dot, ``..``) is refused with a clear message.
    """
    if address.count("@") != 1:
        raise ConfigError(f"{address!r} is not an e-mail address (local@domain)")
    local, domain = address.rsplit("@", 1)
    if not _LOCAL.match(local) or local.startswith(".") or ".." in local:
        raise ConfigError(f"{address!r}: the part before @ has characters mailhaul refuses")
    try:
        ascii_domain = domain.encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise ConfigError(f"{address!r}: the domain is not a valid host name") from exc
    labels = ascii_domain.split(".")
    if len(ascii_domain) > 253 or len(labels) < 2 or not all(_LABEL.match(x) for x in labels):
        raise ConfigError(f"{address!r}: the domain is not a valid host name")
    return local, ascii_domain


def normalise_address(address: str) -> str:
    """The address in lower case, its domain in ASCII (IDNA): the form stored and compared."""
    local, domain = split_address(address.strip())
    return f"{local.lower()}@{domain}"
