"""One redactor: every form of the password a server could echo is masked the same way."""

from __future__ import annotations

import base64

from mailhaul.domain.errors import AuthenticationFailed, MessageMismatch
from mailhaul.domain.options import Credentials
from mailhaul.domain.redaction import MASK, Redactor, sasl_plain

CREDENTIALS = Credentials("alice", "pässword")


def test_sasl_plain_carries_user_and_password() -> None:
    assert base64.b64decode(sasl_plain("alice", "pässword")) == "\0alice\0pässword".encode()


def test_every_form_of_the_secret_is_masked() -> None:
    redact = Redactor.for_credentials(CREDENTIALS)
    quoted = repr("pässword".encode())[2:-1]  # p\xc3\xa4ssword, as an error excerpt shows it
    sasl = sasl_plain("alice", "pässword")
    for form in ("pässword", quoted, sasl):
        text = f"server said: bad {form}!"
        assert redact.reveals(text)
        assert redact(text) == f"server said: bad {MASK}!"
    assert redact("nothing secret here") == "nothing secret here"
    assert not redact.reveals("nothing secret here")


def test_no_password_masks_nothing() -> None:
    redact = Redactor.for_credentials(Credentials("alice", ""))
    assert redact("alice logged in") == "alice logged in"
    assert redact.forms == ()


def test_the_secret_never_shows_in_repr() -> None:
    assert "pässword" not in repr(Redactor.for_credentials(CREDENTIALS))


def test_scrubbed_errors_keep_their_type_and_lose_the_secret() -> None:
    redact = Redactor.for_credentials(CREDENTIALS)
    clean = AuthenticationFailed("rejected")
    assert redact.scrubbed(clean) is clean
    leaked = MessageMismatch("server echoed pässword")
    scrubbed = redact.scrubbed(leaked)
    assert type(scrubbed) is MessageMismatch
    assert str(scrubbed) == f"server echoed {MASK}"
