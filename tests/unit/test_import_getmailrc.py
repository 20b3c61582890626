"""The getmail rc importer: retriever types, options, destinations, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailhaul.domain.filtering import FilterOptions, SpamAction, VirusAction
from mailhaul.domain.folders import RemoteFolder
from mailhaul.domain.options import Protocol, Security
from mailhaul.importers.common import ImportFileError
from mailhaul.importers.getmailrc import address_from_maildir, parse_getmailrc

FIXTURES = Path(__file__).parent.parent / "fixtures" / "import"


def parse(name: str):
    return parse_getmailrc((FIXTURES / name).read_text(), name)


def test_pop3_ssl_with_maildir_and_options():
    [account] = parse("getmailrc-pop3ssl").accounts
    assert (account.protocol, account.security, account.port) == (
        Protocol.POP3,
        Security.SSL,
        995,
    )
    assert account.password == "p@ss w0rd;#not-a-comment"  # no inline comments in getmail
    assert account.ca_file == "/etc/ssl/certs/ca-certificates.crt"
    assert (account.keep, account.max_size, account.line) == (True, 5000000, 2)
    assert account.maildir == "/var/vmail/mydomain.test/i.petrov/Maildir/"


def test_imap_mailboxes_mda_destination_and_unsupported_option():
    [account] = parse("getmailrc-imap").accounts
    assert account.folders == ("INBOX", "INBOX/Work", "Sent Items")
    assert (account.keep, account.fetchall) == (False, True)
    assert account.deliver_to == "anna@mydomain.test"
    assert account.move_to == "Trash"  # getmail's move_on_delete
    assert not any("move_on_delete" in n for n in account.notes)


def test_plain_retriever_is_in_clear_and_mbox_needs_deliver_to():
    [account] = parse("getmailrc-plain").accounts
    assert (account.security, account.port, account.keep) == (Security.NONE, 110, True)
    assert account.deliver_to is None and account.maildir is None
    assert any("give --deliver-to" in n for n in account.notes)


def test_multidrop_is_a_problem():
    result = parse("getmailrc-multidrop")
    assert not result.accounts
    assert "multidrop" in result.problems[0].message


def test_unparseable_file_names_line():
    with pytest.raises(ImportFileError) as caught:
        parse("getmailrc-broken")
    assert caught.value.line == 4


def test_bad_values_are_problems():
    text = "[retriever]\ntype = SimpleIMAPRetriever\nserver = h\nusername = u\npassword = p\n"
    assert parse_getmailrc(text + "mailboxes = (INBOX\n", "f").problems
    assert parse_getmailrc(text.replace("password = p\n", ""), "f").problems


def test_maildir_paths_that_name_an_address():
    template = "{home}/mail/{domain}/{local}"
    assert address_from_maildir("/srv/mh/mail/d.test/joe/", template, "/srv/mh") == "joe@d.test"
    assert address_from_maildir("/var/vmail/d.test/ann/Maildir/", template, "/x") == "ann@d.test"
    assert address_from_maildir("/home/legacy/Maildir/", template, "/x") is None


def test_spamassassin_and_clamav_filters_become_the_checks():
    text = """\
[retriever]
type = SimplePOP3SSLRetriever
server = pop.provider.example
username = petrov
password = secret

[destination]
type = Maildir
path = /var/vmail/mydomain.test/i.petrov/Maildir/

[filter-1]
type = Filter_classifier
path = /usr/bin/spamc
arguments = ("-s 250000", )

[filter-2]
type = Filter_classifier
path = /usr/bin/clamscan
arguments = ("--stdout", "--no-summary", "--mbox", "--infected", "-")
exitcodes_drop = (1, )

[filter-3]
type = Filter_TMDA
path = /usr/bin/tmda-filter
"""
    [account] = parse_getmailrc(text, "rc").accounts
    assert account.filters == FilterOptions(SpamAction.TAG, VirusAction.QUARANTINE)
    notes = "\n".join(account.notes)
    assert "rc:12: [filter-1] spamc: the spam check (--antispam tag)" in notes
    assert "quarantined, not dropped" in notes
    assert "[filter-3] Filter_TMDA tmda-filter: not imported" in notes


def test_no_filters_leave_the_servers_default():
    [account] = parse("getmailrc-pop3ssl").accounts
    assert account.filters is None


def test_delete_after_and_per_session_limits_are_carried():
    text = """\
[retriever]
type = SimpleIMAPSSLRetriever
server = imap.provider.example
username = petrov
password = secret

[destination]
type = Maildir
path = /var/vmail/mydomain.test/i.petrov/Maildir/

[options]
delete = false
delete_after = 30
max_messages_per_session = 500
max_bytes_per_session = 200000000
"""
    [account] = parse_getmailrc(text, "rc").accounts
    assert (account.keep, account.delete_after_days) == (True, 30)
    assert (account.max_messages_per_run, account.max_bytes_per_run) == (500, 200000000)
    assert not any("delete_after" in note for note in account.notes)
    # with delete = true getmail deletes at once: there are no days to wait
    [deleting] = parse_getmailrc(text.replace("delete = false", "delete = true"), "rc").accounts
    assert (deleting.keep, deleting.delete_after_days) == (False, None)


def test_mailboxes_all_is_every_folder_into_the_one_mailbox():
    text = "[retriever]\ntype = SimpleIMAPRetriever\nserver = h\nusername = u\npassword = p\n"
    [account] = parse_getmailrc(text + "mailboxes = ALL\n", "f").accounts
    assert account.rules is not None and account.rules.all_folders
    assert account.rules.local_for(RemoteFolder("Lists/python", "/")) is None  # flat
    assert account.rules.local_for(RemoteFolder("Sent", "/", frozenset({"\\sent"}))) is None


IMAP_ON_DELETE = """[retriever]
type = SimpleIMAPSSLRetriever
server = imap.example.org
username = anna@example.org
password = s3cret
{line}

[destination]
type = Maildir
path = /var/vmail/mydomain.test/anna/Maildir/

[options]
delete = true
"""


@pytest.mark.parametrize(
    ("line", "keep", "noted"),
    [
        ("", False, False),  # the positive control: delete = true deletes
        ("imap_on_delete = (\\Seen)", True, True),  # flagged, left on the server
        ("imap_on_delete = (\\Deleted \\Seen)", False, True),  # deleted; \Seen not set
        ("imap_on_delete = (\\Deleted)", False, False),
    ],
)
def test_imap_on_delete_is_carried(line: str, keep: bool, noted: bool):
    text = IMAP_ON_DELETE.format(line=line)
    [account] = parse_getmailrc(text, "getmailrc").accounts
    assert account.keep is keep
    assert any("imap_on_delete" in note for note in account.notes) is noted
    assert not any("not supported" in note for note in account.notes)
