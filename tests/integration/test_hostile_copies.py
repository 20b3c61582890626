"""Never delete an original on the strength of a broken copy (issues 11 and 19).

Scripted servers reproduce, byte for byte, what broken or hostile servers send: a POP3
server that forgets dot-stuffing or lies in LIST, duplicated and reused unique-ids,
Courier's stand-ins (the UTF8 wrapper, the placeholder for a message expunged elsewhere),
truncated IMAP bodies, FETCH responses without UID and with a wrong sequence number, and
servers whose capabilities lie. After every run each message is either delivered exactly
once, byte for byte, or still on the server.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mailhaul.domain.imap_utf7 import encode_mailbox
from mailhaul.domain.options import Protocol
from support.scripted_home import ScriptedHome, make_scripted_home
from support.scripted_imap import ImapScript, Mailbox, Message, ScriptedImapServer
from support.scripted_pop3 import Fault, Pop3Script, ScriptedPop3Server

pytestmark = pytest.mark.databases("sqlite")


def mail(n: int, body: bytes = b"") -> bytes:
    return (
        b"Message-ID: <%d@example.net>\r\nFrom: a@example.net\r\nSubject: m%d\r\n\r\n"
        b"body of message %d\r\n%s" % (n, n, n, body)
    )


@pytest.fixture
def home(tmp_path: Path) -> Iterator[ScriptedHome]:
    h = make_scripted_home(tmp_path)
    yield h
    h.app.db.dispose()


def pop3(home: ScriptedHome, server: ScriptedPop3Server, **options: object) -> int:
    return home.account(Protocol.POP3, server.port, "alice", "s3cret", **options)


def imap(home: ScriptedHome, server: ScriptedImapServer, **options: object) -> int:
    return home.account(Protocol.IMAP, server.port, "user", "secret", **options)


def on_server(server: ScriptedPop3Server) -> list[bytes]:
    return sorted(data for _, data in server.mailbox)


def imap_messages(script: ImapScript, folder: str = "INBOX") -> list[bytes]:
    return sorted(m.body for m in script.folders[folder].messages)


# POP3 -------------------------------------------------------------------------------------


def test_pop3_unstuffed_dot_line_never_passes_for_the_end_of_the_message(
    home: ScriptedHome,
) -> None:
    broken = mail(1, b"before the dot line\r\n.\r\nafter it\r\n")
    honest = mail(2)
    with ScriptedPop3Server(Pop3Script(messages=[broken, honest], dot_stuffing=False)) as server:
        account = pop3(home, server)
        first = home.poll(account)
        assert home.delivered() in ([], [honest])
        second = home.poll(account)
        assert home.delivered() == [honest]  # the honest one: once, byte for byte
        assert on_server(server) == [broken]  # the broken one: never deleted
    assert first.result == "error" or first.fetched == 1
    assert second.result == "ok"
    [refused] = home.refused(account)
    assert "listed" in refused.note and "sent" in refused.note


@pytest.mark.parametrize("listed", [40, 100_000], ids=["smaller", "larger"])
def test_pop3_size_lie_for_one_message_spares_the_rest_in_the_same_run(
    home: ScriptedHome, listed: int
) -> None:
    messages = [mail(1), mail(2), mail(3)]
    script = Pop3Script(messages=messages, listed_sizes={"uid-2": listed})
    with ScriptedPop3Server(script) as server:
        account = pop3(home, server)
        summary = home.poll(account)
        assert summary.result == "ok"
        assert home.delivered() == sorted([mail(1), mail(3)])
        assert on_server(server) == [mail(2)]
        home.poll(account)  # refused: not tried again, not delivered, not deleted
        assert home.delivered() == sorted([mail(1), mail(3)])
        assert on_server(server) == [mail(2)]
    [refused] = home.refused(account)
    assert refused.uid == "uid-2" and f"listed {listed} bytes" in refused.note


def test_pop3_unique_id_given_to_two_messages_deletes_neither(home: ScriptedHome) -> None:
    messages = [mail(1), mail(2), mail(3)]
    with ScriptedPop3Server(Pop3Script(messages=messages, uids=["a", "a", "b"])) as server:
        account = pop3(home, server)
        for _ in range(3):
            assert home.poll(account).result == "ok"
        assert on_server(server) == [mail(1), mail(2)]
    assert home.delivered() == [mail(3)]  # positive control: the rest goes on
    assert "cannot be told apart" in home.log(account)


def test_pop3_uidls_that_are_message_numbers_never_hide_new_mail(home: ScriptedHome) -> None:
    script = Pop3Script(messages=[mail(1), mail(2)], uidl_numbers=True)
    with ScriptedPop3Server(script) as server:
        account = pop3(home, server)
        home.poll(account)
        assert on_server(server) == []
        server.mailbox += [("new-3", mail(3)), ("new-4", mail(4, b"longer\r\n"))]
        summary = home.poll(account)
        assert summary.fetched == 2, home.log(account)
        assert on_server(server) == []
    assert home.delivered() == sorted([mail(1), mail(2), mail(3), mail(4, b"longer\r\n")])
    assert "reused the id" in home.log(account)


@pytest.mark.parametrize("size", ["same size", "other size"])
def test_pop3_reused_id_without_top_is_checked_by_its_retr(home: ScriptedHome, size: str) -> None:
    script = Pop3Script(messages=[mail(1)], uidl_numbers=True, top=False)
    newer = mail(2) if size == "same size" else mail(2, b"a different size\r\n")
    with ScriptedPop3Server(script) as server:
        account = pop3(home, server)
        home.poll(account)
        server.mailbox.append(("new", newer))
        summary = home.poll(account)
        assert on_server(server) == []
    assert summary.fetched == 1, home.log(account)
    assert home.delivered() == sorted([mail(1), newer])


def test_pop3_says_utf8_and_gets_the_message_not_courier_s_wrapper(home: ScriptedHome) -> None:
    eight_bit = "From: Jörg <j@example.net>\r\nSubject: Grüße\r\n\r\nHallo\r\n".encode()
    with ScriptedPop3Server(Pop3Script(messages=[eight_bit, mail(2)], utf8=True)) as server:
        account = pop3(home, server)
        assert home.poll(account).result == "ok"
        assert "UTF8" in server.verbs()
        assert on_server(server) == []
    assert home.delivered() == sorted([eight_bit, mail(2)])


def test_pop3_stand_in_is_never_delivered_nor_its_original_deleted(home: ScriptedHome) -> None:
    eight_bit = "From: Jörg <j@example.net>\r\nSubject: Grüße\r\n\r\nHallo\r\n".encode()
    refuse_utf8 = Fault("UTF8", "reply", data=b"-ERR not now\r\n", apply=False, repeat=True)
    script = Pop3Script(messages=[eight_bit, mail(2)], utf8=True, faults=[refuse_utf8])
    with ScriptedPop3Server(script) as server:
        account = pop3(home, server)
        assert home.poll(account).result == "ok"
        home.poll(account)
        assert on_server(server) == [eight_bit]
    assert home.delivered() == [mail(2)]
    [refused] = home.refused(account)
    assert "Cannot display Unicode content" in refused.note


# IMAP -------------------------------------------------------------------------------------


def imap_script(*bodies: bytes, **options: object) -> ImapScript:
    messages = [Message(n, body) for n, body in enumerate(bodies, 1)]
    return ImapScript(folders={"INBOX": Mailbox(7, messages)}, **options)  # type: ignore[arg-type]


def test_imap_truncated_body_is_neither_delivered_nor_expunged(home: ScriptedHome) -> None:
    script = imap_script(mail(1), mail(2), truncate={1: 50})
    with ScriptedImapServer(script) as server:
        account = imap(home, server)
        summary = home.poll(account)
        assert server.errors == []
    assert summary.result == "ok" and summary.fetched == 1
    assert home.delivered() == [mail(2)]
    assert imap_messages(script) == [mail(1)]
    [refused] = home.refused(account)
    assert refused.uid == "1" and "sent 50" in refused.note


def test_courier_placeholder_for_mail_expunged_elsewhere_is_not_mail(home: ScriptedHome) -> None:
    script = imap_script(mail(1), mail(2), mail(3), placeholder={2})
    with ScriptedImapServer(script) as server:
        account = imap(home, server)
        summary = home.poll(account)
        assert server.errors == []
    assert summary.result == "ok"
    assert home.delivered() == [mail(1), mail(3)]
    assert home.refused(account) == []
    assert "no longer on the server (expunged by another client)" in home.log(account)


def test_imap_body_without_uid_and_with_a_wrong_number_is_never_delivered(
    home: ScriptedHome,
) -> None:
    script = imap_script(mail(1), mail(2), mail(3), omit_uid=True, seq_offset=1)
    with ScriptedImapServer(script) as server:
        account = imap(home, server)
        home.poll(account)
        home.poll(account)
    assert home.delivered() == []  # no body without its UID is taken for any message
    assert imap_messages(script) == [mail(1), mail(2), mail(3)]
    assert {r.uid for r in home.refused(account)} <= {"1", "2", "3"}
    assert "without saying its UID" in home.log(account)


def test_imap_wrong_sequence_number_with_a_uid_item_delivers_by_uid(home: ScriptedHome) -> None:
    script = imap_script(mail(1), mail(2), mail(3), seq_offset=1)  # positive control
    with ScriptedImapServer(script) as server:
        account = imap(home, server)
        home.poll(account)
    assert home.delivered() == [mail(1), mail(2), mail(3)]
    assert imap_messages(script) == []


def test_imap_uids_reused_after_expunge_are_new_mail(home: ScriptedHome) -> None:
    script = imap_script(mail(1), mail(2))
    with ScriptedImapServer(script) as server:
        account = imap(home, server)
        home.poll(account)
        assert imap_messages(script) == []
        # The server resets UIDNEXT without changing UIDVALIDITY: new mail gets old UIDs.
        script.folders["INBOX"].messages += [Message(1, mail(3)), Message(2, mail(4))]
        summary = home.poll(account)
    assert summary.fetched == 2, home.log(account)
    assert home.delivered() == [mail(1), mail(2), mail(3), mail(4)]
    assert imap_messages(script) == []


def test_imap_uidplus_that_fails_falls_back_to_expunge(home: ScriptedHome) -> None:
    script = imap_script(
        *(mail(n) for n in range(1, 5)), replies={"UID EXPUNGE": b"$TAG BAD no\r\n"}
    )
    with ScriptedImapServer(script) as server:
        account = imap(home, server)
        summary = home.poll(account)
    assert summary.result == "ok" and summary.fetched == 4
    assert home.delivered() == [mail(n) for n in range(1, 5)]
    assert imap_messages(script) == []
    assert "advertises UIDPLUS but refused it" in home.log(account)


def test_imap_esearch_that_fails_falls_back_to_plain_listing(home: ScriptedHome) -> None:
    script = imap_script(mail(1), mail(2), extra_caps=("ESEARCH",))
    with ScriptedImapServer(script) as server:
        account = imap(home, server, keep=True)
        home.poll(account)
        script.folders["INBOX"].messages += [Message(3, mail(3)), Message(4, mail(4))]
        summary = home.poll(account)
    assert summary.result == "ok" and summary.fetched == 2, home.log(account)
    assert home.delivered() == [mail(n) for n in range(1, 5)]
    assert "advertises ESEARCH but refused it" in home.log(account)


def test_imap_sasl_ir_that_fails_logs_in_without_it(home: ScriptedHome) -> None:
    script = imap_script(
        mail(1),
        logindisabled=True,
        auth_plain=True,
        sasl_ir=True,
        replies={"AUTHENTICATE PLAIN A": b"$TAG BAD no initial response here\r\n"},
    )
    with ScriptedImapServer(script) as server:
        account = imap(home, server)
        summary = home.poll(account)
    assert summary.result == "ok", summary.error
    assert home.delivered() == [mail(1)]


def test_imap_utf8_accept_is_enabled_and_folders_named_in_utf8(home: ScriptedHome) -> None:
    folders = {"INBOX": Mailbox(1, [Message(1, mail(1))])}
    folders[encode_mailbox("Café & Co")] = Mailbox(2, [Message(1, mail(2))])
    script = ImapScript(folders=folders, utf8_accept=True)
    with ScriptedImapServer(script) as server:
        account = imap(home, server, folders=("INBOX", "Café & Co"))
        summary = home.poll(account)
        commands = server.commands
    assert summary.result == "ok", summary.error
    assert home.delivered() == [mail(1)]
    assert home.delivered(folder="Café & Co") == [mail(2)]
    enable = commands.index("ENABLE UTF8=ACCEPT")
    assert enable < min(i for i, c in enumerate(commands) if c.startswith("SELECT"))


def test_bookkeeping_headers_do_not_defeat_recognition_after_uidvalidity_change(
    home: ScriptedHome,
) -> None:
    first = b"X-IMAPbase: 1700000000 3\r\nStatus: O\r\nX-UID: 1\r\n" + mail(1)
    script = ImapScript(folders={"INBOX": Mailbox(1, [Message(1, first), Message(2, mail(2))])})
    with ScriptedImapServer(script) as server:
        account = imap(home, server, keep=True)
        home.poll(account)
        # Mailutils rewrote the mbox: new UIDVALIDITY, new UIDs, new bookkeeping values.
        rewritten = b"X-IMAPbase: 1700000999 5\r\nStatus: RO\r\nX-UID: 3\r\n" + mail(1)
        script.folders["INBOX"] = Mailbox(
            2, [Message(3, rewritten), Message(4, mail(2)), Message(5, mail(3))]
        )
        summary = home.poll(account)
    assert summary.fetched == 1, home.log(account)
    assert home.delivered() == sorted([first, mail(2), mail(3)])
    assert "2 of 3 message(s) recognised" in home.log(account)


def test_pop3_number_uidls_shifted_by_a_deletion_deliver_nothing_twice(home: ScriptedHome) -> None:
    messages = [mail(1), mail(2, b"a longer second message\r\n"), mail(3, b"third\r\n")]
    script = Pop3Script(messages=messages, uidl_numbers=True)
    with ScriptedPop3Server(script) as server:
        account = pop3(home, server, keep=True)
        home.poll(account)
        del server.mailbox[0]  # deleted by the user's phone: every number shifts
        server.mailbox.append(("new", mail(4, b"new mail\r\n")))
        summary = home.poll(account)
        again = home.poll(account)
    assert (summary.fetched, again.fetched) == (1, 0), home.log(account)
    assert home.delivered() == sorted([*messages, mail(4, b"new mail\r\n")])


def test_pop3_kept_mail_with_some_uidls_changed_is_recognised(home: ScriptedHome) -> None:
    # GNU Mailutils derives UIDLs from the message and the time it rewrote the mailbox: a
    # rewrite may rename only some messages (and add bookkeeping headers to the first).
    messages = [mail(1), mail(2), mail(3)]
    with ScriptedPop3Server(Pop3Script(messages=messages, uids=["u1", "u2", "u3"])) as server:
        account = pop3(home, server, keep=True)
        home.poll(account)
        rewritten = b"X-IMAPbase: 1700000999 4\r\nX-UIDL: u1b\r\n" + mail(1)
        server.mailbox[0] = ("u1b", rewritten)
        server.mailbox.append(("u4", mail(4)))
        summary = home.poll(account)
    assert summary.fetched == 1, home.log(account)
    assert home.delivered() == sorted([*messages, mail(4)])
    assert "1 of 2 new UIDL(s) recognised" in home.log(account)


def test_pop3_top_advertised_but_refused_falls_back_to_retr(home: ScriptedHome) -> None:
    refuse_top = Fault("TOP", "reply", data=b"-ERR not today\r\n", apply=False, repeat=True)
    script = Pop3Script(messages=[mail(1)], uidl_numbers=True, faults=[refuse_top])
    with ScriptedPop3Server(script) as server:
        account = pop3(home, server)
        home.poll(account)
        server.mailbox.append(("new", mail(2)))
        summary = home.poll(account)
        assert on_server(server) == []
        assert "TOP" in server.verbs() and server.verbs().count("RETR") == 3
    assert summary.result == "ok" and summary.fetched == 1, home.log(account)
    assert home.delivered() == [mail(1), mail(2)]
    assert "refused TOP" in home.log(account)


def test_pop3_body_far_longer_than_listed_is_cut_off_and_the_rest_delivered(
    home: ScriptedHome,
) -> None:
    huge = mail(1, b"x" * 76 + b"\r\n") + b"y" * 78 * 4000 + b"\r\n"  # ~300 KB, listed as 100
    script = Pop3Script(messages=[huge, mail(2)], listed_sizes={"uid-1": 100})
    with ScriptedPop3Server(script) as server:
        account = pop3(home, server)
        summary = home.poll(account)
        assert on_server(server) == [huge]
    assert summary.result == "ok" and summary.fetched == 1, home.log(account)
    assert home.delivered() == [mail(2)]
    [refused] = home.refused(account)
    assert "cut off" in refused.note


def test_pop3_honest_size_deviations_still_deliver_byte_for_byte(home: ScriptedHome) -> None:
    # Cyrus adds the final CRLF a stored message lacks (and lists the size without it); an
    # mbox server may list the size of its bare-LF file while it sends CRLF.
    no_final_crlf = mail(1, b"last line without a break")
    lf_counted = mail(2, b"a\r\nb\r\nc\r\n")
    lf_size = len(lf_counted.replace(b"\r\n", b"\n"))
    script = Pop3Script(messages=[no_final_crlf, lf_counted], listed_sizes={"uid-2": lf_size})
    with ScriptedPop3Server(script) as server:
        account = pop3(home, server)
        summary = home.poll(account)
        assert on_server(server) == []
    assert summary.fetched == 2 and home.refused(account) == [], home.log(account)
    assert sorted(home.delivered()) == sorted([no_final_crlf, lf_counted])
