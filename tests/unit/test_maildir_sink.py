"""Maildir delivery: byte-exact but for CRLF → LF, fsync'd, reconcilable by receipt."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailhaul.adapters.private_dirs import make_private_dirs
from mailhaul.adapters.sinks.maildir import MaildirSink
from mailhaul.domain.errors import ConfigError, TemporaryDeliveryError


def _deliver(sink: MaildirSink, chunks: list[bytes], dest: str = "a@example.org") -> Path:
    session = sink.open_session("1")
    receipt = session.planned_receipt(dest, "1")
    delivery = session.begin(dest, receipt)
    for chunk in chunks:
        delivery.write(chunk)
    assert delivery.commit() == receipt
    session.flush()
    session.close()
    return sink.maildir_for(dest) / "new" / receipt


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=8))
def test_crlf_becomes_lf_whatever_the_chunking(tmp_path_factory, data, cuts):
    sink = MaildirSink("{home}/{local}", tmp_path_factory.mktemp("md"))
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    chunks = [data[a:b] for a, b in itertools.pairwise(points)]
    path = _deliver(sink, chunks)
    assert path.read_bytes() == data.replace(b"\r\n", b"\n")


def test_maildir_is_created_private_and_path_follows_template(tmp_path: Path):
    sink = MaildirSink("{home}/mail/{domain}/{local}", tmp_path)
    path = _deliver(sink, [b"Subject: x\r\n\r\nhi\r\n"], "Ivan@Example.ORG")
    assert path.parent.parent == tmp_path / "mail" / "example.org" / "ivan"  # lower case
    for sub in ("cur", "new", "tmp"):
        assert (path.parent.parent / sub).stat().st_mode & 0o777 == 0o700
    assert path.read_bytes() == b"Subject: x\n\nhi\n"
    assert not os.listdir(path.parent.parent / "tmp")


def test_receipt_is_found_in_new_and_in_cur_with_flags(tmp_path: Path):
    sink = MaildirSink("{home}/{local}", tmp_path)
    path = _deliver(sink, [b"x"])
    assert sink.was_delivered("a@example.org", path.name)
    path.rename(path.parent.parent / "cur" / f"{path.name}:2,S")
    assert sink.was_delivered("a@example.org", path.name)
    assert not sink.was_delivered("a@example.org", "1.M1P1Q1.nohost")


def test_aborted_delivery_leaves_nothing(tmp_path: Path):
    sink = MaildirSink("{home}/{local}", tmp_path)
    delivery = sink.open_session("1").begin("a@example.org", None)
    delivery.write(b"partial")
    delivery.abort()
    maildir = sink.maildir_for("a@example.org")
    assert not os.listdir(maildir / "tmp") and not os.listdir(maildir / "new")


def test_bad_template_and_unwritable_maildir_are_clear_errors(tmp_path: Path):
    with pytest.raises(ConfigError, match="template"):
        MaildirSink("{home}/{user}", tmp_path).maildir_for("a@example.org")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(TemporaryDeliveryError, match="cannot create Maildir"):
        MaildirSink(str(blocker) + "/{local}", tmp_path).open_session("1").begin(
            "a@example.org", None
        )


def test_each_session_flushes_its_own_messages_and_closing_drops_the_unflushed(tmp_path: Path):
    sink = MaildirSink("{home}/{local}", tmp_path)
    maildir = sink.maildir_for("a@example.org")
    one, two = sink.open_session("1"), sink.open_session("2")
    first = one.begin("a@example.org", "first")
    first.write(b"one")
    first.commit()
    second = two.begin("a@example.org", "second")
    second.write(b"two")
    second.commit()
    two.flush()
    assert os.listdir(maildir / "new") == ["second"]  # not the other run's message
    one.close()  # the run ended before its flush: its message was never recorded
    assert os.listdir(maildir / "tmp") == [] and os.listdir(maildir / "new") == ["second"]
    assert not sink.was_delivered("a@example.org", "first")
    assert sink.was_delivered("a@example.org", "second")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_disk_full_is_a_temporary_delivery_error(tmp_path: Path):
    sink = MaildirSink("{home}/{local}", tmp_path)
    maildir = sink.maildir_for("a@example.org")
    delivery = sink.open_session("1").begin("a@example.org", "full")
    # Point the tmp file at /dev/full, which answers every write with ENOSPC.
    os.close(delivery._fd)  # type: ignore[arg-type]
    delivery._fd = os.open("/dev/full", os.O_WRONLY)
    with pytest.raises(TemporaryDeliveryError, match="disk full"):
        delivery.write(b"x" * 10000)
    assert not (maildir / "new" / "full").exists()


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """A umask that takes nothing off (0o000), as a careless service manager may set it."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def test_every_folder_made_for_a_maildir_outside_the_home_is_private(
    tmp_path: Path, permissive_umask: None
):
    outside = tmp_path / "srv"
    outside.mkdir(mode=0o755)  # exists already: its mode is the admin's business
    sink = MaildirSink(f"{outside}/vmail/{{domain}}/{{local}}", tmp_path / "home")
    path = _deliver(sink, [b"Subject: x\r\n\r\nhi\r\n"], "a@example.org")
    maildir = path.parent.parent
    made = [outside / "vmail", outside / "vmail" / "example.org", maildir]
    made += [maildir / sub for sub in ("cur", "new", "tmp")]
    assert {str(p): oct(p.stat().st_mode & 0o777) for p in made} == {str(p): "0o700" for p in made}
    assert outside.stat().st_mode & 0o777 == 0o755
    assert path.read_bytes() == b"Subject: x\n\nhi\n"  # and the message is there


def test_make_private_dirs_leaves_existing_folders_alone_and_beats_a_strict_umask(
    tmp_path: Path,
):
    (tmp_path / "kept").mkdir(mode=0o750)
    previous = os.umask(0o277)  # would take the owner's write and search bits off
    try:
        make_private_dirs(tmp_path / "kept" / "a" / "b")
    finally:
        os.umask(previous)
    assert (tmp_path / "kept").stat().st_mode & 0o777 == 0o750
    assert (tmp_path / "kept" / "a").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "kept" / "a" / "b").stat().st_mode & 0o777 == 0o700


def test_one_person_one_maildir_whatever_the_case_of_the_address(tmp_path: Path):
    sink = MaildirSink("{home}/mail/{domain}/{local}", tmp_path)
    for address in ("Alice@Example.ORG", "alice@example.org", "ALICE@example.org"):
        _deliver(sink, [b"Subject: x\r\n\r\nhi\r\n"], address)
    assert os.listdir(tmp_path / "mail" / "example.org") == ["alice"]
    assert len(os.listdir(tmp_path / "mail" / "example.org" / "alice" / "new")) == 3


def test_a_receipt_recorded_under_a_mixed_case_address_is_found_in_its_old_maildir(
    tmp_path: Path,
):
    """A run that crashed before addresses were lower-cased left its file in ``Alice/``."""
    sink = MaildirSink("{home}/mail/{domain}/{local}", tmp_path)
    old = tmp_path / "mail" / "example.org" / "Alice"
    for sub in ("tmp", "new", "cur"):
        (old / sub).mkdir(parents=True)
    (old / "new" / "1.M1P1Q1.host").write_bytes(b"x")
    (old / "cur" / "2.M1P1Q1.host:2,S").write_bytes(b"x")
    assert sink.was_delivered("Alice@example.org", "1.M1P1Q1.host")
    assert sink.was_delivered("Alice@example.org", "2.M1P1Q1.host")
    assert not sink.was_delivered("Alice@example.org", "3.M1P1Q1.host")  # control
    assert not sink.was_delivered("alice@example.org", "1.M1P1Q1.host")  # not its spelling
