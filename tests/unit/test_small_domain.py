"""Schedule maths, fingerprints, addresses and account validation."""

from __future__ import annotations

import pytest

from mailhaul.domain.account import AccountSpec
from mailhaul.domain.addresses import normalise_address
from mailhaul.domain.errors import ConfigError
from mailhaul.domain.fingerprint import fingerprint, header_section
from mailhaul.domain.options import Protocol, RetrievalOptions, Security
from mailhaul.domain.scheduling import MAX_BACKOFF, next_poll_at
from mailhaul.domain.validation import FieldError, check_password, validated_spec


def test_next_poll_is_one_interval_after_success_and_backs_off_after_failures():
    assert next_poll_at(1000.0, 300) == 1300.0
    assert next_poll_at(1000.0, 300, 1) == 1300.0
    assert next_poll_at(1000.0, 300, 3) == 1000.0 + 1200
    assert next_poll_at(0.0, 300, 50) == MAX_BACKOFF


def test_fingerprint_uses_only_the_header_section_and_size():
    one = b"Message-ID: <a@b>\r\nSubject: x\r\n\r\nbody one"
    two = b"Message-ID: <a@b>\r\nSubject: x\r\n\r\nbody two"
    assert header_section(one) == b"Message-ID: <a@b>\r\nSubject: x\r\n\r\n"
    assert fingerprint(one, 40) == fingerprint(two, 40)
    assert fingerprint(one, 40) != fingerprint(one, 41)
    assert fingerprint(b"Message-ID: <c@d>\r\n\r\n", 40) != fingerprint(one, 40)


def test_addresses_are_normalised_and_path_tricks_refused():
    assert normalise_address("Ivan.Petrov@MyDomain.RU") == "ivan.petrov@mydomain.ru"
    assert normalise_address("x@bücher.example") == "x@xn--bcher-kva.example"
    for bad in ("../etc@x.org", "a/b@x.org", "a@x", "a@../x.org", "noat", ".a@x.org", "a@b@c.d"):
        with pytest.raises(ConfigError):
            normalise_address(bad)


def _spec(**kw: object) -> AccountSpec:
    base: dict[str, object] = dict(
        owner="u@example.org",
        protocol=Protocol.IMAP,
        host="Mail.Example.NET",
        port=993,
        security=Security.SSL,
        username="u",
    )
    base.update(kw)
    return AccountSpec(**base)  # type: ignore[arg-type]


def test_validation_normalises_host_and_names_the_bad_field():
    assert validated_spec(_spec()).host == "mail.example.net"
    cases = {
        "host": _spec(host="bad host\r\nX: y"),
        "port": _spec(port=70000),
        "username": _spec(username="a\nb"),
        "owner": _spec(owner="nobody"),
        "deliver_to": _spec(deliver_to="x@@y"),
        "folder": _spec(protocol=Protocol.POP3, options=RetrievalOptions(folders=("Sent",))),
        "interval": _spec(interval=1),
    }
    for field, spec in cases.items():
        with pytest.raises(FieldError) as err:
            validated_spec(spec)
        assert err.value.field == field


def test_passwords_with_line_breaks_are_refused():
    check_password("p@ss wörd")
    for bad in ("", "a\r\nb", "nul\x00"):
        with pytest.raises(FieldError):
            check_password(bad)
