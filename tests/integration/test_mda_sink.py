"""MdaSink with the real dovecot-lda (run as the mail user) and small scripts for each verdict."""

from __future__ import annotations

import os
import pwd
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from mailhaul.adapters.sinks.mda import MdaSession, MdaSink
from mailhaul.adapters.sinks.routing import RoutingSink
from mailhaul.domain.errors import (
    ConfigError,
    DestinationMissing,
    PermanentDeliveryError,
    TemporaryDeliveryError,
)
from support.dovecot import MAIL_USER, DovecotServer, Mailbox

LDA = "/usr/lib/dovecot/dovecot-lda"
RECEIVED = b"Received: from pop.example.net by mailhaul with POP3S\r\n\tfor <x@example.test>\r\n"
MESSAGE = (
    b"Return-Path: <bounce@example.net>\r\n"
    b"From: Ann <ann@example.net>\r\n"
    b"Subject: via an MDA\r\n"
    b"\r\n"
    b".a dot\r\n"
    b"body \xc3\xa9\r\n"
)


def deliver(
    sink: MdaSink | RoutingSink, dest: str, chunks: list[bytes], account: str = "1"
) -> None:
    """Deliver one message in a session of its own (a run's, for ``account``)."""
    session = sink.open_session(account)
    delivery = session.begin(dest, None)
    try:
        delivery.write(RECEIVED)
        for chunk in chunks:
            delivery.write(chunk)
        assert delivery.commit() is None
    except BaseException:
        delivery.abort()
        raise
    finally:
        session.close()


@pytest.fixture(scope="module")
def lda_config(dovecot: DovecotServer) -> Path:
    """The test Dovecot's config, readable by the mail user, logging to stderr."""
    entry = pwd.getpwnam(MAIL_USER)
    path = (dovecot.root / "srv").resolve() / "lda.conf"
    path.write_text(
        dovecot.config_path.read_text()
        + "\nlog_path = /dev/stderr\ninfo_log_path = /dev/stderr\n"
        + "debug_log_path = /dev/stderr\nstats_writer_socket_path =\n"
    )
    os.chown(path, entry.pw_uid, entry.pw_gid)
    os.chmod(path, 0o600)
    return path


def lda_command(config: Path) -> list[str]:
    """dovecot-lda as the mail user (setpriv drops root before exec), rejections on stderr."""
    return [
        "setpriv",
        f"--reuid={MAIL_USER}",
        f"--regid={MAIL_USER}",
        "--clear-groups",
        LDA,
        "-c",
        str(config),
        "-e",
        "-d",
        "{address}",
        "-f",
        "{sender}",
    ]


@pytest.fixture
def script(tmp_path: Path) -> Callable[[str], list[str]]:
    """A command running a small Python program (the message on its stdin)."""

    def make(body: str) -> list[str]:
        path = tmp_path / f"mda{len(list(tmp_path.iterdir()))}.py"
        path.write_text("import sys, time\n" + body)
        return [sys.executable, str(path)]

    return make


def test_dovecot_lda_delivers_as_the_mail_user(lda_config: Path, mailbox: Mailbox) -> None:
    sink = MdaSink(lda_command(lda_config), timeout=20)
    deliver(sink, mailbox.user, [MESSAGE[:10], MESSAGE[10:]])
    (stored,) = mailbox.list_messages()
    assert stored.raw == RECEIVED + MESSAGE  # stored with LF, served with CRLF
    files = list((mailbox.home / "Maildir" / "new").iterdir())
    assert [f.stat().st_uid for f in files] == [pwd.getpwnam(MAIL_USER).pw_uid]
    assert b"\r\n" not in files[0].read_bytes()


def test_dovecot_lda_unknown_user_is_destination_missing(lda_config: Path) -> None:
    sink = MdaSink(lda_command(lda_config), timeout=20, sender="")
    with pytest.raises(DestinationMissing, match=r"\(67\)"):
        deliver(sink, "nobody-here@example.test", [MESSAGE])


def test_message_and_arguments_reach_the_program(
    script: Callable[[str], list[str]], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    command = [
        *script(
            f"open({str(out)!r}, 'wb').write(repr(sys.argv[1:]).encode() + b'|' + "
            "sys.stdin.buffer.read())"
        ),
        "{address}",
        "to={local} at {domain}",
        "{sender}",
        "{account}",
        "{unknown}",
    ]
    sink = MdaSink(command, timeout=10)
    deliver(sink, "Ivan@Example.ORG", [MESSAGE[:41], MESSAGE[41:]], account="acct-7")
    args, _, data = out.read_bytes().partition(b"|")
    assert eval(args) == [  # noqa: S307 - our own repr
        "Ivan@Example.ORG",
        "to=Ivan at example.org",
        "bounce@example.net",
        "acct-7",
        "{unknown}",
    ]
    assert data == (RECEIVED + MESSAGE).replace(b"\r\n", b"\n")
    crlf = MdaSink(" ".join(command[:2]) + " {address}", timeout=10, line_ends="crlf")
    deliver(crlf, "a@example.org", [MESSAGE])
    assert out.read_bytes().partition(b"|")[2] == RECEIVED + MESSAGE


@pytest.mark.parametrize(
    ("body", "timeout", "error", "text"),
    [
        ("sys.stdin.read(); sys.exit(75)", 10, TemporaryDeliveryError, r"\(75\)"),
        ("sys.stdin.read(); sys.exit(67)", 10, DestinationMissing, r"\(67\)"),
        (
            "sys.stdin.read(); sys.stderr.write('x' * 9000 + 'mailbox is locked'); sys.exit(1)",
            10,
            PermanentDeliveryError,
            r"\(1\): x+mailbox is locked$",
        ),
        ("sys.exit(1)", 10, PermanentDeliveryError, r"\(1\)"),  # exits without reading
        ("sys.exit(0)", 10, TemporaryDeliveryError, "before reading the whole message"),
        ("sys.stdin.read(); time.sleep(30)", 1.5, TemporaryDeliveryError, "did not finish"),
        ("time.sleep(30)", 0.5, TemporaryDeliveryError, "took no input"),  # never reads
    ],
)
def test_exit_status_and_timeouts(
    script: Callable[[str], list[str]],
    body: str,
    timeout: float,
    error: type[Exception],
    text: str,
) -> None:
    sink = MdaSink(script(body), timeout=timeout, sender="")
    big = MESSAGE + b"z" * 300_000 + b"\r\n"  # more than a pipe holds
    with pytest.raises(error, match=text) as caught:
        deliver(sink, "a@example.org", [big])
    assert len(str(caught.value)) < 4200  # stderr kept bounded


def test_abort_kills_before_the_end_of_the_message(
    script: Callable[[str], list[str]], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    sink = MdaSink(script(f"open({str(out)!r}, 'wb').write(sys.stdin.buffer.read())"), 10)
    deliver(sink, "a@example.org", [MESSAGE])  # positive control: completed, it writes
    assert out.read_bytes() == (RECEIVED + MESSAGE).replace(b"\r\n", b"\n")
    out.unlink()
    delivery = sink.open_session("1").begin("a@example.org", None)
    delivery.write(RECEIVED)
    delivery.write(MESSAGE)
    delivery.abort()
    assert not out.exists()  # killed: it never saw end-of-file, never "delivered"


def test_shell_metacharacters_in_the_destination_run_nothing(
    script: Callable[[str], list[str]], tmp_path: Path
) -> None:
    pwned = tmp_path / "pwned"
    out = tmp_path / "out"
    dest = f"a$(touch {pwned})`touch {pwned}`;touch {pwned}|x@x.test"
    sink = MdaSink(
        ["/bin/sh", "-c", f'cat >/dev/null; printf %s "$1" > {out}', "sh", "{address}"], 10
    )
    deliver(sink, dest, [MESSAGE])
    assert out.read_text() == dest
    assert not pwned.exists()
    with pytest.raises(DestinationMissing):
        sink.open_session("1").begin("-oQ/tmp/x@example.org", None)


def test_missing_program_is_temporary_and_bad_commands_are_config_errors() -> None:
    with pytest.raises(TemporaryDeliveryError, match="cannot run"):
        MdaSink(["/nonexistent/mda"], 5, sender="").open_session("1").begin("a@example.org", None)
    with pytest.raises(ConfigError):
        MdaSink("", 5)
    with pytest.raises(ConfigError):
        MdaSink("mda 'unclosed", 5)


def test_routing_sink_picks_by_domain(script: Callable[[str], list[str]], tmp_path: Path) -> None:
    def writer(name: str) -> MdaSink:
        return MdaSink(script(f"open({str(tmp_path / name)!r}, 'wb').write(b'x')"), 10, "")

    one, other = writer("one"), writer("other")
    routing = RoutingSink(other, {"Example.ORG": one})
    deliver(routing, "a@EXAMPLE.org", [MESSAGE])
    assert (tmp_path / "one").exists() and not (tmp_path / "other").exists()
    deliver(routing, "a@example.net", [MESSAGE])
    assert (tmp_path / "other").exists()
    session = routing.open_session("x")
    assert session.planned_receipt("a@example.org", "1") is None
    assert session.was_delivered("a@example.net", "r") is None
    session.flush()
    opened = [s for s in session._open.values() if isinstance(s, MdaSession)]
    assert sorted(s.account_label for s in opened) == ["x", "x"]  # {account} for both
    session.close()
    routing.close()
