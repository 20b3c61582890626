"""The filter stage against the real scanners (rspamd, spamd, clamd) and a real Dovecot: spam
tagged, viruses quarantined, ordinary mail judged as the mail it is, and nothing lost or
delivered twice when a scanner is down, hangs or talks garbage."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mailhaul.adapters.scanners.rspamd import RspamdScanner
from mailhaul.domain.filtering import (
    FilterOptions,
    SenderContext,
    SpamAction,
    VirusAction,
    sender_context,
)
from mailhaul.domain.options import Protocol
from mailhaul.services.metrics import Metrics
from support.dovecot import Mailbox
from support.mailhaul_home import OWNER as OWNER_ADDRESS
from support.mailhaul_home import RECEIVED_LINES, Home
from support.scanners import (
    SIGNATURE,
    ClamdServer,
    RspamdServer,
    SilentScanner,
    SpamdServer,
    ham,
    infected,
    spam,
)

TAG = FilterOptions(antispam=SpamAction.TAG)
QUARANTINE = FilterOptions(antivirus=VirusAction.QUARANTINE)
BOTH_CHECKS = FilterOptions(SpamAction.TAG, VirusAction.QUARANTINE)
# rspamd's rules that fire when a message is judged by the connection it was fetched over
# (HELO "localhost", an address without reverse DNS, an envelope that is not the message's)
# rather than by the host that sent it to the source. (With no network here, lookups about
# the original sender end in *_DNSFAIL or *_NORES_*: not these.)
CONNECTION_RULES = frozenset(
    {
        "HFILTER_HELO_5",
        "HFILTER_HELO_BAREIP",
        "HFILTER_HELO_BADIP",
        "HFILTER_HOSTNAME_UNKNOWN",
        "RDNS_NONE",
        "FORGED_SENDER",
        "FORGED_RECIPIENTS",
        "R_SPF_FAIL",
        "R_SPF_SOFTFAIL",
    }
)


def lf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n")


def filter_toml(**values: object) -> str:
    lines = ["[filter]"]
    for key, value in values.items():
        lines.append(f"{key} = {value!r}".replace("'", '"'))
    return "\n".join(lines) + "\n"


@pytest.fixture
def make_home(tmp_path: Path) -> Iterator[object]:
    homes: list[Home] = []

    def make(**values: object) -> Home:
        home = Home.create(tmp_path / f"home{len(homes)}", filter_toml(**values))
        homes.append(home)
        return home

    yield make
    for home in homes:
        home.app.db.dispose()


def split(stored: bytes) -> tuple[bytes, bytes]:
    """A delivered file as (the headers mailhaul prepended after its Received, the message)."""
    lines = stored.split(b"\n")
    rest = lines[RECEIVED_LINES:]
    added = []
    while rest and (rest[0].startswith((b"X-Spam-", b"X-Virus-", b"\t"))):
        added.append(rest.pop(0))
    return b"\n".join(added), b"\n".join(rest)


@pytest.mark.parametrize("protocol", [Protocol.POP3, Protocol.IMAP])
def test_rspamd_tags_spam_and_ham_and_keeps_the_message_byte_exact(
    make_home, rspamd: RspamdServer, mailbox: Mailbox, protocol: Protocol
):
    home = make_home(rspamd=rspamd.url)
    mailbox.deliver(lf(spam(1)))
    mailbox.deliver(lf(ham(2)))
    account = home.add(mailbox, protocol, filters=TAG)
    summary = home.poll(account)
    assert summary.result == "ok", home.log(account)
    assert (summary.fetched, summary.deleted) == (2, 2)
    assert mailbox.list_messages() == []
    judged = {body: added for added, body in map(split, home.delivered_files())}
    assert set(judged) == {lf(spam(1)), lf(ham(2))}  # byte-exact below the added headers
    assert b"X-Spam-Flag: YES" in judged[lf(spam(1))]
    assert b"tests=" in judged[lf(spam(1))] and b"GTUBE" in judged[lf(spam(1))]
    assert b"X-Spam-Flag: NO" in judged[lf(ham(2))]
    assert "spam by rspamd" in home.log(account)
    run = home.app.accounts.runs_of(account.id, 1)[0]
    assert (run.spam, run.viruses, run.unscanned) == (1, 0, 0)


def test_spamd_tags_spam_through_imap(make_home, spamd: SpamdServer, mailbox: Mailbox):
    home = make_home(spamd=spamd.address)
    mailbox.deliver(lf(spam(1)))
    mailbox.deliver(lf(ham(2)))
    account = home.add(mailbox, Protocol.IMAP, filters=TAG)
    assert home.poll(account).fetched == 2, home.log(account)
    judged = {body: added for added, body in map(split, home.delivered_files())}
    assert b"X-Spam-Flag: YES" in judged[lf(spam(1))]
    assert b"scanner=spamd" in judged[lf(spam(1))]
    assert b"X-Spam-Flag: NO" in judged[lf(ham(2))]


def test_ordinary_fetched_mail_is_not_judged_by_the_fetching_connection(
    make_home, rspamd: RspamdServer, mailbox: Mailbox
):
    home = make_home(rspamd=rspamd.url)
    mailbox.deliver(lf(ham(1)))
    without_received = b"\r\n".join(ham(2).split(b"\r\n")[:1] + ham(2).split(b"\r\n")[4:])
    mailbox.deliver(lf(without_received))
    account = home.add(mailbox, Protocol.IMAP, filters=TAG)
    assert home.poll(account).fetched == 2, home.log(account)
    for added, _ in map(split, home.delivered_files()):
        assert b"X-Spam-Flag: NO" in added
        tests = added.split(b"tests=")[1].decode().split(",")
        assert CONNECTION_RULES.isdisjoint(tests), added
    # Positive control: told that the message came from the fetching host (what a
    # scanner behind a fetching MTA sees), the same rspamd fires those rules.
    scanner = RspamdScanner(rspamd.url, 10)
    as_fetched = SenderContext(ip="203.0.113.5", helo="localhost")
    raw = ham(1)
    with (Path(home.app.settings.home) / "probe.eml").open("w+b") as spool:
        spool.write(raw)
        verdict = scanner.check(spool, len(raw), as_fetched)
        assert not CONNECTION_RULES.isdisjoint(verdict.rules), verdict.rules
        # and the context mailhaul does send is the source MX's sender
        assert sender_context(raw).ip == "209.85.220.41"


@pytest.mark.parametrize("protocol", [Protocol.POP3, Protocol.IMAP])
def test_clamd_quarantines_a_virus_and_the_source_lets_it_go(
    make_home, clamd: ClamdServer, mailbox: Mailbox, protocol: Protocol
):
    home = make_home(clamd=clamd.address)
    mailbox.deliver(lf(infected(1)))
    mailbox.deliver(lf(ham(2)))
    account = home.add(mailbox, protocol, filters=QUARANTINE)
    summary = home.poll(account)
    assert summary.result == "ok", home.log(account)
    assert summary.deleted == 2
    assert mailbox.list_messages() == []
    delivered = home.delivered_files()
    assert len(delivered) == 1
    added, body = split(delivered[0])
    assert body == lf(ham(2)) and b"X-Virus-Scanned: clean by clamd" in added
    assert not any(b"EICAR" in data for data in delivered)
    (entry,) = home.app.quarantine.listed(None)
    assert entry.account_id == account.id and entry.signature.startswith(SIGNATURE)
    assert entry.subject == "Invoice 1" and "mallory@example.org" in entry.sender
    kept = home.app.quarantine.read(entry.id)
    assert lf(infected(1)) in b"".join(kept)
    assert f"virus {SIGNATURE}" in home.log(account)
    assert home.poll(account).fetched == 0  # handled: not fetched again


HUNG = {  # scanner: (its setting, the account's checks, the header of an unchecked message)
    "clamd": ("clamd", QUARANTINE, b"X-Virus-Scanned: no (clamd"),
    "spamd": ("spamd", TAG, b"X-Spam-Status: unchecked (spamd"),
    "rspamd": ("rspamd", TAG, b"X-Spam-Status: unchecked (rspamd"),
}


@pytest.mark.parametrize("policy", ["defer", "deliver"])
@pytest.mark.parametrize("which", list(HUNG))
def test_a_hanging_scanner_loses_nothing(make_home, mailbox: Mailbox, policy: str, which: str):
    setting, checks, unchecked = HUNG[which]
    hung = SilentScanner()
    try:
        where = hung.url if which == "rspamd" else hung.address
        home = make_home(**{setting: where}, timeout=1, on_scanner_failure=policy)
        metrics = Metrics()
        home.app.observe_scans(metrics.observe_scan)
        for n in range(3):
            mailbox.deliver(lf(ham(n)))
        account = home.add(mailbox, Protocol.IMAP, filters=checks)
        summary = home.poll(account)
    finally:
        hung.close()
    assert hung.connections >= 1  # positive control: it did reach the scanner
    errors = 1 if policy == "defer" else 3
    assert f'scanner_checks_total{{result="error",scanner="{which}"}} {errors}.0' in (
        metrics.exposition().decode()
    )
    if policy == "defer":
        assert summary.result == "error" and summary.error_kind == "scanner"
        assert which in (summary.error or "") and "no answer within 1 s" in summary.error
        assert "mail waits on the server" in summary.error
        assert home.delivered() == [] and len(mailbox.list_messages()) == 3
        assert which in (home.app.accounts.get(account.id).last_error or "")
    else:
        assert summary.result == "ok" and summary.fetched == 3
        assert all(unchecked in d for d in home.delivered_files())
        assert "delivered unscanned" in home.log(account)
        assert home.app.accounts.runs_of(account.id, 1)[0].unscanned == 3


def test_after_a_scanner_is_back_everything_is_delivered_once(
    make_home, clamd: ClamdServer, spamd: SpamdServer, mailbox: Mailbox
):
    home = make_home(clamd=clamd.address, spamd=spamd.address, timeout=5)
    for n in range(4):
        mailbox.deliver(lf(ham(n)))
    mailbox.deliver(lf(infected(9)))
    account = home.add(mailbox, Protocol.POP3, filters=BOTH_CHECKS)
    clamd.stop()
    try:
        down = home.poll(account)
    finally:
        clamd.start()
    assert down.result == "error" and "clamd: cannot connect" in (down.error or "")
    assert home.delivered() == [] and len(mailbox.list_messages()) == 5
    back = home.poll(account)
    assert back.result == "ok", home.log(account)
    assert (back.fetched, back.deleted) == (5, 5)
    assert sorted(body for _, body in map(split, home.delivered_files())) == sorted(
        lf(ham(n)) for n in range(4)
    )
    assert len(home.app.quarantine.listed(None)) == 1
    assert mailbox.list_messages() == []


@pytest.mark.parametrize("reply", [b"HTTP/1.0 200 OK\r\n\r\nnot json", b"\x00\xff garbage"])
def test_a_scanner_talking_garbage_defers(make_home, mailbox: Mailbox, reply: bytes):
    talker = SilentScanner(reply)
    try:
        home = make_home(rspamd=talker.url, timeout=2)
        mailbox.deliver(lf(ham(1)))
        account = home.add(mailbox, Protocol.IMAP, filters=TAG)
        summary = home.poll(account)
    finally:
        talker.close()
    assert summary.result == "error" and summary.error_kind == "scanner", home.log(account)
    assert "rspamd" in (summary.error or "")
    assert home.delivered() == [] and len(mailbox.list_messages()) == 1


def test_a_message_over_the_filter_limit_is_delivered_unscanned(
    make_home, clamd: ClamdServer, mailbox: Mailbox
):
    home = make_home(clamd=clamd.address, max_size=300)
    mailbox.deliver(lf(infected(1)))  # larger than 300 bytes: not scanned
    account = home.add(mailbox, Protocol.IMAP, filters=QUARANTINE)
    assert home.poll(account).fetched == 1, home.log(account)
    ((added, body),) = map(split, home.delivered_files())
    assert body == lf(infected(1))
    assert b"X-Virus-Scanned: no (larger than filter.max_size (300 B))" in added


def test_junk_files_spam_into_the_maildirs_junk_folder(
    make_home, rspamd: RspamdServer, mailbox: Mailbox
):
    home = make_home(rspamd=rspamd.url)
    mailbox.deliver(lf(spam(1)))
    mailbox.deliver(lf(ham(2)))
    account = home.add(mailbox, Protocol.POP3, filters=FilterOptions(SpamAction.JUNK))
    assert home.poll(account).fetched == 2, home.log(account)
    maildir = home.maildir_for()
    (inbox,) = home.delivered_files()
    assert split(inbox)[1] == lf(ham(2))
    junk = maildir / ".Junk"
    assert (junk / "maildirfolder").exists()
    (filed,) = [path.read_bytes() for path in (junk / "new").iterdir()]
    added, body = split(filed)
    assert body == lf(spam(1)) and b"X-Spam-Flag: YES" in added
    assert "delivered into Junk" in home.log(account)
    # a crash after the file was made durable is reconciled: the receipt is found in .Junk
    receipt = (junk / "new").iterdir().__next__().name
    assert home.app.sink.open_session("x").was_delivered(OWNER_ADDRESS, receipt)


def test_scanner_metrics_count_checks_errors_and_time(
    make_home, clamd: ClamdServer, spamd: SpamdServer, mailbox: Mailbox
):
    home = make_home(clamd=clamd.address, spamd=spamd.address)
    metrics = Metrics()
    home.app.observe_scans(metrics.observe_scan)
    mailbox.deliver(lf(infected(1)))
    mailbox.deliver(lf(spam(2)))
    mailbox.deliver(lf(ham(3)))
    account = home.add(mailbox, Protocol.IMAP, filters=BOTH_CHECKS)
    assert home.poll(account).fetched == 3, home.log(account)
    text = metrics.exposition().decode()
    assert 'mailhaul_scanner_checks_total{result="infected",scanner="clamd"} 1.0' in text
    assert 'mailhaul_scanner_checks_total{result="clean",scanner="clamd"} 2.0' in text
    assert 'mailhaul_scanner_checks_total{result="spam",scanner="spamd"} 1.0' in text
    assert 'mailhaul_scanner_checks_total{result="clean",scanner="spamd"} 1.0' in text
    assert 'mailhaul_scanner_duration_seconds_count{scanner="clamd"} 3.0' in text
    assert 'scanner_checks_total{result="error"' not in text


@pytest.mark.parametrize("which", ["clamd", "spamd", "rspamd"])
def test_a_scanner_stopped_mid_run_loses_nothing_and_duplicates_nothing(
    make_home,
    clamd: ClamdServer,
    spamd: SpamdServer,
    rspamd: RspamdServer,
    mailbox: Mailbox,
    which: str,
):
    spam_scanner = {"rspamd": rspamd.url} if which == "rspamd" else {"spamd": spamd.address}
    home = make_home(clamd=clamd.address, **spam_scanner, timeout=5)
    scanner = {"clamd": clamd, "spamd": spamd, "rspamd": rspamd}[which]
    calls: list[str] = []

    def stop_after_two(name: str, result: str, _seconds: float) -> None:
        calls.append(f"{name}:{result}")
        if name == which and calls.count(f"{which}:clean") == 2:
            scanner.stop()  # the scanner goes away between two messages of one run

    home.app.observe_scans(stop_after_two)
    for n in range(5):
        mailbox.deliver(lf(ham(n)))
    account = home.add(mailbox, Protocol.POP3, filters=BOTH_CHECKS)
    try:
        down = home.poll(account)
    finally:
        scanner.start()
    assert down.result == "error" and which in (down.error or ""), home.log(account)
    assert f"{which}:error" in calls  # positive control: it did fail mid-run
    # two delivered and recorded; POP3 deletes only at a polite QUIT, so all five stay on
    # the server until the next run, which deletes the two without delivering them again
    assert len(home.delivered()) == 2 and len(mailbox.list_messages()) == 5
    back = home.poll(account)
    assert back.result == "ok", home.log(account)
    assert sorted(body for _, body in map(split, home.delivered_files())) == sorted(
        lf(ham(n)) for n in range(5)
    )
    assert mailbox.list_messages() == []


def test_a_message_too_large_for_clamd_is_delivered_unscanned_not_held(
    make_home, tmp_path: Path, mailbox: Mailbox
):
    small_clamd = ClamdServer(tmp_path / "clamd-1m", stream_max="1M")
    small_clamd.start()
    try:
        home = make_home(clamd=small_clamd.address)
        big = infected(1).replace(b"Please see the invoice.", (b"x" * 76 + b"\r\n") * 30_000)
        mailbox.deliver(lf(big))
        mailbox.deliver(lf(infected(2)))  # positive control: under the limit, quarantined
        account = home.add(mailbox, Protocol.IMAP, filters=QUARANTINE)
        summary = home.poll(account)
    finally:
        small_clamd.stop()
    assert summary.result == "ok" and summary.fetched == 2, home.log(account)
    ((added, _),) = map(split, home.delivered_files())
    assert b"X-Virus-Scanned: no (clamd: larger than its StreamMaxLength)" in added
    assert len(home.app.quarantine.listed(None)) == 1
    assert mailbox.list_messages() == []
