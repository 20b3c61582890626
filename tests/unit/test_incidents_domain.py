"""When trouble becomes an incident worth a notice, and what the notice says."""

from __future__ import annotations

from mailhaul.domain.incidents import (
    AccountLine,
    IncidentKind,
    NoticeEvent,
    NoticePolicy,
    Told,
    cert_expiring,
    digest_text,
    is_due,
    kind_after_run,
    notice_text,
)
from mailhaul.domain.scheduling import Outcome

POLICY = NoticePolicy(after_failures=3, after_minutes=60)
LINE = AccountLine(7, "imap mail.example.net (petrov)", "i.petrov@mydomain.test", "")


def test_the_kind_a_run_leaves():
    assert kind_after_run(Outcome.OK, paused=False, sign_in_needed=False) is None
    assert kind_after_run(Outcome.ERROR, False, False) is IncidentKind.FAILING
    assert kind_after_run(Outcome.LOGIN_FAILED, False, False) is IncidentKind.FAILING
    assert kind_after_run(Outcome.LOGIN_FAILED, True, False) is IncidentKind.PAUSED
    assert kind_after_run(Outcome.DESTINATION_MISSING, False, False) is (
        IncidentKind.DESTINATION_MISSING
    )
    assert kind_after_run(Outcome.ERROR, False, True) is IncidentKind.SIGN_IN_NEEDED


def test_failing_is_due_after_enough_runs_or_time_and_the_rest_at_once():
    assert not is_due(IncidentKind.FAILING, 2, since=0, now=59 * 60, policy=POLICY)
    assert is_due(IncidentKind.FAILING, 3, since=0, now=10, policy=POLICY)
    assert is_due(IncidentKind.FAILING, 1, since=0, now=60 * 60, policy=POLICY)
    for kind in (IncidentKind.PAUSED, IncidentKind.SIGN_IN_NEEDED, IncidentKind.CERT_EXPIRING):
        assert is_due(kind, 1, since=0, now=1, policy=POLICY)


def test_certificates():
    day = 86400.0
    assert cert_expiring(None, 0, POLICY) is None  # nothing verified: nothing to judge
    assert cert_expiring(13 * day, 0, POLICY) is True
    assert cert_expiring(15 * day, 0, POLICY) is False


def test_the_notice_says_what_since_when_and_links_the_page():
    linked = AccountLine(7, LINE.source, LINE.destination, "https://mail.example.org/accounts/7")
    subject, body = notice_text(
        NoticeEvent.FAILING, IncidentKind.PAUSED, linked, ("-ERR [AUTH] no", 1_800_000_000)
    )
    assert subject.startswith("mailhaul: account 7, imap mail.example.net (petrov)")
    assert "Since: 2027-01-15 08:00 UTC" in body and "-ERR [AUTH] no" in body
    assert "enter the right one" in body and "https://mail.example.org/accounts/7" in body
    subject, body = notice_text(NoticeEvent.RECOVERED, IncidentKind.PAUSED, LINE, ("", 0))
    assert "works again" in subject and "i.petrov@mydomain.test" in body


def test_a_digest_names_every_account():
    told = [Told(IncidentKind.FAILING, LINE, f"error {n}", 0) for n in range(3)]
    subject, body = digest_text(NoticeEvent.FAILING, told)
    assert subject == "mailhaul: 3 accounts have stopped fetching mail"
    assert all(f"error {n}" in body for n in range(3))
