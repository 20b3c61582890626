"""One redactor for a run's secrets: every form the password can take in text is masked.

A server may echo what it was sent: the password as typed, its bytes as Python quotes them in
an error excerpt (``b'p\\xc3\\xa4ss'``), or the SASL PLAIN response that carries it in
base64. ``Redactor.for_credentials`` builds the masks from the credentials once; the POP3 and
IMAP clients, the run log and Test connection all scrub with it, so a secret looks the same
(``***``) wherever it was caught.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import TypeVar

from mailhaul.domain.options import Credentials, SignInMethod
from mailhaul.domain.sasl import oauthbearer_response, xoauth2_response

MASK = "***"
"""What a secret is replaced by."""

_E = TypeVar("_E", bound=BaseException)


def sasl_plain(username: str, password: str) -> str:
    """The SASL PLAIN response (RFC 4616): base64 of ``\\0user\\0password``."""
    raw = "\0".join(("", username, password)).encode("utf-8", "surrogatepass")
    return base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True)
class Redactor:
    """Masks each of ``forms`` (longest first) in a text; never shows them in ``repr``."""

    forms: tuple[str, ...] = field(default=(), repr=False)

    @classmethod
    def for_credentials(
        cls, credentials: Credentials, server: tuple[str, int] | None = None
    ) -> Redactor:
        """The forms of ``credentials.password`` a server could echo: as typed, as quoted
        bytes, inside the SASL PLAIN response; an OAuth2 access token also inside the
        XOAUTH2 response and (given the ``server``'s host and port) the OAUTHBEARER one.
        No secret, nothing to mask."""
        secret, user = credentials.password, credentials.username
        if not secret:
            return cls()
        quoted = repr(secret.encode("utf-8", "surrogatepass"))[2:-1]
        forms = {secret, quoted, sasl_plain(user, secret)}
        if credentials.method is SignInMethod.OAUTH2:
            forms.add(xoauth2_response(user, secret))
            if server is not None:
                forms.add(oauthbearer_response(user, secret, *server))
        return cls(tuple(sorted(forms, key=len, reverse=True)))

    def __call__(self, text: str) -> str:
        """``text`` with every form of the secret replaced by ``***``."""
        for form in self.forms:
            text = text.replace(form, MASK)
        return text

    def reveals(self, text: str) -> bool:
        """Whether ``text`` holds a form of the secret."""
        return any(form in text for form in self.forms)

    def scrubbed(self, exc: _E) -> _E:
        """``exc`` itself when its text shows no secret, else a copy of the same type with
        the secret masked (raise it ``from None`` so no ``__context__`` keeps the original)."""
        text = str(exc)
        if not self.reveals(text):
            return exc
        return type(exc)(self(text))
