"""The filter stage's pure parts: the sending host found in the source's Received lines,
the headers a verdict becomes, and the account options' words."""

from __future__ import annotations

import re

import pytest

from mailhaul.domain.errors import ConfigError
from mailhaul.domain.filtering import (
    LOOPBACK,
    FilterOptions,
    SenderContext,
    SpamAction,
    SpamVerdict,
    VirusAction,
    VirusVerdict,
    sender_context,
    spam_action,
    spam_headers,
    summary_fields,
    unchecked_spam_header,
    virus_header,
)

GMAIL = (
    b"Delivered-To: someone@gmail.com\r\n"
    b"Received: by 2002:a05:6a10:c5c4:b0:4a1:1c3e:51e3 with SMTP id w4csp1234567pxa;\r\n"
    b"        Thu, 3 Dec 2026 06:12:03 -0800 (PST)\r\n"
    b"Received: from mail-sor-f41.google.com (mail-sor-f41.google.com. [209.85.220.41])\r\n"
    b"        by mx.google.com with SMTPS id a1sor123.2026.12.03.06.12.03\r\n"
    b"        for <someone@gmail.com>; Thu, 03 Dec 2026 06:12:03 -0800 (PST)\r\n"
    b"Subject: hi\r\n\r\n"
)
MICROSOFT = (
    b"Received: from AM6PR01MB1234.eurprd01.prod.exchangelabs.com (2603:10a6:20b:1::1) by\r\n"
    b" AM6PR01MB5678.eurprd01.prod.exchangelabs.com with HTTPS; Thu, 3 Dec 2026 14:12:03 +0000\r\n"
    b"Received: from EUR05-AM6-obe.outbound.protection.outlook.com (2a01:111:f400:7e1b::200)\r\n"
    b" by AM6PR01MB1234.mail.protection.outlook.com (10.167.1.1) with Microsoft SMTP\r\n"
    b" Server; Thu, 3 Dec 2026 14:12:02 +0000\r\n"
    b"Subject: hi\r\n\r\n"
)
POSTFIX = (
    b"Received: from localhost (localhost [127.0.0.1])\r\n\tby mx.example.net (Postfix);\r\n"
    b"Received: from smtp.sender.example (smtp.sender.example [198.51.100.7]) by mx.example.net\r\n"
    b"Received: from relay.example.org (relay.example.org [93.184.215.14])\r\n"
    b"\tby mx.example.net (Postfix) with ESMTPS id 4AB12\r\n"
    b"Subject: hi\r\n\r\n"
)


def test_gmail_the_first_hop_from_a_public_address_is_the_sender():
    assert sender_context(GMAIL) == SenderContext(
        ip="209.85.220.41",
        helo="mail-sor-f41.google.com",
        hostname="mail-sor-f41.google.com",
        rcpt="someone@gmail.com",
    )
    with_return_path = b"Return-Path: <alice@example.org>\r\n" + GMAIL
    assert sender_context(with_return_path).mail_from == "alice@example.org"


def test_microsoft_a_bare_address_in_parentheses_counts():
    found = sender_context(MICROSOFT)
    assert found.ip == "2a01:111:f400:7e1b::200"
    assert found.helo == "EUR05-AM6-obe.outbound.protection.outlook.com"


def test_internal_and_documentation_hops_are_passed_over():
    # loopback and 198.51.100.0/24 (documentation) are not public: the next line is taken
    assert sender_context(POSTFIX).ip == "93.184.215.14"


def test_no_received_line_means_loopback_which_judges_no_connection():
    assert sender_context(b"From: a@b.example\r\nSubject: x\r\n\r\nbody") is LOOPBACK
    # a Received line in the body is not a header
    assert sender_context(b"Subject: x\r\n\r\n" + GMAIL) is LOOPBACK


def test_spam_headers_carry_flag_score_threshold_and_rules():
    verdict = SpamVerdict("rspamd", 15.0, 15.0, True, ("GTUBE", "MIME_GOOD"))
    assert spam_headers(verdict) == (
        b"X-Spam-Flag: YES\r\n"
        b"X-Spam-Score: 15.0\r\n"
        b"X-Spam-Status: Yes, score=15.0 required=15.0 scanner=rspamd\r\n"
        b"\ttests=GTUBE,MIME_GOOD\r\n"
    )


def test_a_scanner_cannot_break_the_header_section():
    verdict = SpamVerdict("spamd", 1.0, 5.0, False, ("A\r\nBcc: x@y", "B"))
    headers = spam_headers(verdict)
    assert b"\r\nBcc:" not in headers and headers.count(b"\r\n") == 4
    assert b"\r\n" not in unchecked_spam_header("down\r\nX-Evil: 1")[:-2]


def test_virus_headers():
    assert virus_header(VirusVerdict("clamd")) == b"X-Virus-Scanned: clean by clamd\r\n"
    assert virus_header(None, "clamd: down") == b"X-Virus-Scanned: no (clamd: down)\r\n"
    assert VirusVerdict("clamd", "Eicar").infected and not VirusVerdict("clamd").infected


def test_options_words():
    assert not FilterOptions().active
    assert FilterOptions(antivirus=VirusAction.QUARANTINE).active
    assert spam_action(" Junk ") is SpamAction.JUNK
    with pytest.raises(ConfigError, match=re.escape("antispam must be one of off | tag | junk")):
        spam_action("maybe")


def test_summary_fields_decode_encoded_words():
    head = b"From: =?utf-8?q?J=C3=BCrgen?= <j@example.org>\r\nSubject: =?utf-8?b?w4RwZmVs?=\r\n\r\n"
    assert summary_fields(head) == ("Jürgen <j@example.org>", "Äpfel")
