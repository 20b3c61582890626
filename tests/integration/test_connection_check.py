""" "Test connection" against a scripted IMAP server: what the user is shown."""

from __future__ import annotations

from mailhaul.bootstrap import open_source
from mailhaul.domain.account import AccountSpec
from mailhaul.domain.options import Protocol, RetrievalOptions, Security
from mailhaul.services.connection_check import check_connection
from support.scripted_imap import ImapScript, Mailbox, Message, ScriptedImapServer

SECRET = "secret"  # the scripted server's password


def spec_for(port: int, folders: tuple[str, ...] = ("INBOX",)) -> AccountSpec:
    return AccountSpec(
        owner="ann@example.org",
        protocol=Protocol.IMAP,
        host="127.0.0.1",
        port=port,
        security=Security.NONE,
        username="user",
        options=RetrievalOptions(folders=folders),
    )


def test_counts_the_folders_and_fetches_nothing():
    script = ImapScript(folders={"INBOX": Mailbox(7, [Message(1, b"Subject: a\r\n\r\nhi")])})
    with ScriptedImapServer(script) as server:
        report = check_connection(spec_for(server.port), SECRET, open_source, 5.0)
        commands = server.command_names()
    assert report.ok, report.message
    assert report.folders == {"INBOX": 1}
    assert "INBOX" in report.server_folders
    assert not any("BODY" in c or "STORE" in c or "EXPUNGE" in c for c in commands)


def test_shows_the_servers_words_but_never_the_password_it_echoes():
    script = ImapScript(
        folders={"INBOX": Mailbox(7, [])},
        login_failure=f"NO [AUTHENTICATIONFAILED] bad password {SECRET}x".encode(),
    )
    with ScriptedImapServer(script) as server:
        report = check_connection(spec_for(server.port), SECRET + "x", open_source, 5.0)
    assert not report.ok
    assert report.error_kind == "auth"
    assert "AUTHENTICATIONFAILED" in report.message
    assert SECRET + "x" not in report.message
    assert all(SECRET + "x" not in line for line in report.log)


def test_a_missing_folder_is_named():
    script = ImapScript(folders={"INBOX": Mailbox(7, [])})
    with ScriptedImapServer(script) as server:
        report = check_connection(
            spec_for(server.port, ("INBOX", "Archive")), SECRET, open_source, 5.0
        )
    assert not report.ok
    assert "Archive" in report.message
    assert report.folders == {"INBOX": 0}
