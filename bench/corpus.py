"""A deterministic (seeded) corpus of realistic messages, and filling Maildirs with it.

Messages are stored as Maildir files are: LF line ends, every line < 998 bytes, a final LF.
Some lines start with "." (POP3 dot-stuffing), some MIME part headers are longer than 78
characters (getmail6 re-folds those), and every message has a unique Message-ID that the
verification uses to match a delivered file to its source.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import os
import random
import re
from dataclasses import dataclass, field
from email.utils import format_datetime
from pathlib import Path

SEED = 20240601

_WORD_TEXT = (
    "the of and to in is that for it as was with be by on not he this are or his from at "
    "which but have an they you were her she there been one all we their has would when if "
    "so no will more about up out who can what said them some could into than its time only "
    "new other then like these may first two any over very after our just also how most "
    "invoice meeting schedule quarterly report budget project deadline server migration "
    "backup mailbox delivery attachment review contract customer support ticket release "
    "version deployment network latency throughput database replication cluster storage "
    "Moscow Berlin Paris Tuesday Friday January March September colleague department "
    "please regards thanks attached forwarded agenda minutes summary estimate approval"
)
_NAME_TEXT = (
    "Ivan Petrov,Anna Smirnova,John Miller,Maria Garcia,Li Wei,Olga Ivanova,Peter Schmidt,"
    "Sophie Martin,Dmitry Kuznetsov,Emma Wilson,Hans Becker,Elena Popova,Carlos Silva"
)
_WORDS = _WORD_TEXT.split()
_NAMES = _NAME_TEXT.split(",")
_DOMAINS = ("example.net", "mail.example.org", "corp.example.com", "example.ru", "lists.test")
_MAILERS = (
    "Microsoft Outlook 16.0",
    "Mozilla Thunderbird 115.4.1",
    "Apple Mail (2.3731.700.6)",
    "Roundcube Webmail/1.6.5",
    "K-9 Mail for Android",
)


@dataclass
class Corpus:
    """A named list of raw messages (LF line ends) with their Message-IDs."""

    name: str
    messages: list[bytes]
    message_ids: list[bytes]
    by_id: dict[bytes, bytes] = field(init=False)
    staging: Path | None = None

    def __post_init__(self) -> None:
        self.by_id = dict(zip(self.message_ids, self.messages, strict=True))

    @property
    def count(self) -> int:
        return len(self.messages)

    @property
    def total_bytes(self) -> int:
        return sum(len(m) for m in self.messages)

    def digest(self) -> str:
        h = hashlib.sha256()
        for m in self.messages:
            h.update(hashlib.sha256(m).digest())
        return h.hexdigest()[:16]


class _Gen:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        rng = self.rng
        # A pool of varied text lines; messages draw from it (fast and still varied).
        self.lines: list[str] = []
        for _ in range(6000):
            n = rng.randint(3, 14)
            line = " ".join(rng.choice(_WORDS) for _ in range(n))
            roll = rng.random()
            if roll < 0.04:
                line = "." + line  # needs dot-stuffing in POP3
            elif roll < 0.07:
                line = "> " + line
            elif roll < 0.09:
                line = ""
            elif roll < 0.10:
                line = "-- "
            self.lines.append(line.capitalize() if line and line[0].isalpha() else line)

    def addr(self) -> tuple[str, str]:
        name = self.rng.choice(_NAMES)
        local = name.lower().replace(" ", ".")
        return name, f"{local}@{self.rng.choice(_DOMAINS)}"

    def text(self, size: int) -> str:
        out: list[str] = []
        total = 0
        rng = self.rng
        while total < size:
            line = rng.choice(self.lines)
            out.append(line)
            total += len(line) + 1
        return "\n".join(out) + "\n"

    def html(self, text: str) -> str:
        paras = [p for p in text.split("\n\n") if p.strip()]
        body = "\n".join(f"<p>{p.replace(chr(10), '<br>' + chr(10))}</p>" for p in paras)
        return (
            '<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head>\n'
            f'<body style="font-family: Arial, sans-serif; font-size: 11pt">\n{body}\n'
            "</body></html>\n"
        )

    def b64(self, nbytes: int) -> str:
        return base64.encodebytes(self.rng.randbytes(nbytes)).decode("ascii")

    def headers(self, seq: int, corpus: str, content_type: str) -> tuple[list[str], bytes]:
        rng = self.rng
        from_name, from_addr = self.addr()
        to_name, to_addr = self.addr()
        when = 1_700_000_000 + seq * 137 + rng.randint(0, 100)
        date = format_datetime(datetime.datetime.fromtimestamp(when, datetime.UTC))
        msgid = f"<{corpus}.{seq:06d}.{rng.getrandbits(48):012x}@{from_addr.split('@')[1]}>"
        relay = f"mx{rng.randint(1, 9)}.{rng.choice(_DOMAINS)}"
        subject = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 9))).capitalize()
        dkim_b = self.b64(160).replace("\n", "")
        hdr = [
            f"Return-Path: <{from_addr}>",
            f"Delivered-To: {to_addr}",
            f"Received: from {relay} ({relay} [192.0.2.{rng.randint(1, 254)}])",
            f"\tby mail.example.test (Postfix) with ESMTPS id {rng.getrandbits(40):010X}",
            f"\tfor <{to_addr}>;",
            f"\t{date}",
            "Received: from localhost (localhost [127.0.0.1])",
            f"\tby {relay} with ESMTP; {date}",
            "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;",
            f"\td={from_addr.split('@')[1]}; s=mail; t={when};",
            f"\tbh={self.b64(32).strip()};",
            "\th=From:To:Subject:Date:Message-ID:MIME-Version:Content-Type;",
            "\tb=" + "\n\t  ".join(dkim_b[i : i + 70] for i in range(0, len(dkim_b), 70)),
            f'From: "{from_name}" <{from_addr}>',
            f'To: "{to_name}" <{to_addr}>',
        ]
        if rng.random() < 0.3:
            cc = ",\n\t".join(f'"{n}" <{a}>' for n, a in (self.addr() for _ in range(2)))
            hdr.append(f"Cc: {cc}")
        hdr += [
            f"Subject: {'Re: ' if rng.random() < 0.3 else ''}{subject}",
            f"Date: {date}",
            f"Message-ID: {msgid}",
            "MIME-Version: 1.0",
            f"X-Mailer: {rng.choice(_MAILERS)}",
            content_type,
        ]
        return hdr, msgid.encode()

    def attachment(self, nbytes: int, kind: str) -> str:
        rng = self.rng
        stem = "_".join(rng.choice(_WORDS) for _ in range(rng.randint(2, 10)))
        ext, mime = {
            "pdf": ("pdf", "application/pdf"),
            "jpg": ("jpg", "image/jpeg"),
            "zip": ("zip", "application/zip"),
        }[kind]
        name = f"{stem}_{rng.randint(2019, 2024)}-{rng.randint(1, 12):02d}.{ext}"
        # Left unfolded on purpose when long (some mailers do this); getmail6 re-folds it.
        # Every other header line of the corpus is at most 78 characters.
        return (
            f'Content-Type: {mime}; name="{name}"\n'
            f'Content-Disposition: attachment; filename="{name}"\n'
            "Content-Transfer-Encoding: base64\n\n" + self.b64(nbytes)
        )

    def message(self, seq: int, corpus: str, size: int) -> tuple[bytes, bytes]:
        rng = self.rng
        boundary = f"----=_Part_{seq}_{rng.getrandbits(32):08x}"
        roll = rng.random()
        if size > 200_000:
            att = int(size * 0.74)
            ctype = f'Content-Type: multipart/mixed; boundary="{boundary}"'
            hdr, mid = self.headers(seq, corpus, ctype)
            text = self.text(2000)
            body = (
                "This is a multi-part message in MIME format.\n\n"
                f"--{boundary}\nContent-Type: text/plain; charset=utf-8\n"
                f"Content-Transfer-Encoding: 8bit\n\n{text}\n"
                f"--{boundary}\n{self.attachment(att, rng.choice(('jpg', 'zip', 'pdf')))}\n"
                f"--{boundary}--\n"
            )
        elif roll < 0.4:
            hdr, mid = self.headers(
                seq, corpus, "Content-Type: text/plain; charset=utf-8; format=flowed"
            )
            hdr.append("Content-Transfer-Encoding: 8bit")
            body = self.text(size - 1500)
        elif roll < 0.75:
            ctype = f'Content-Type: multipart/alternative; boundary="{boundary}"'
            hdr, mid = self.headers(seq, corpus, ctype)
            text = self.text((size - 2000) // 2)
            body = (
                f"--{boundary}\nContent-Type: text/plain; charset=utf-8\n"
                f"Content-Transfer-Encoding: 8bit\n\n{text}\n"
                f"--{boundary}\nContent-Type: text/html; charset=utf-8\n"
                f"Content-Transfer-Encoding: 8bit\n\n{self.html(text)}\n"
                f"--{boundary}--\n"
            )
        else:
            ctype = f'Content-Type: multipart/mixed; boundary="{boundary}"'
            hdr, mid = self.headers(seq, corpus, ctype)
            text = self.text(rng.randint(2000, 6000))
            att = max(1000, int((size - 2500 - len(text)) * 0.74))
            body = (
                "This is a multi-part message in MIME format.\n\n"
                f"--{boundary}\nContent-Type: text/plain; charset=utf-8\n"
                f"Content-Transfer-Encoding: 8bit\n\n{text}\n"
                f"--{boundary}\n{self.attachment(att, 'pdf')}\n"
                f"--{boundary}--\n"
            )
        raw = ("\n".join(hdr) + "\n\n" + body).encode("utf-8")
        if not raw.endswith(b"\n"):
            raw += b"\n"
        return raw, mid


def make_corpus(name: str, count: int, size: int, jitter: float = 0.2) -> Corpus:
    """`count` messages of about `size` bytes (± jitter), the same for the same arguments."""
    seed = int.from_bytes(hashlib.sha256(f"{SEED}:{name}:{count}:{size}".encode()).digest()[:8])
    gen = _Gen(seed)
    messages: list[bytes] = []
    ids: list[bytes] = []
    for seq in range(count):
        target = int(size * (1 + gen.rng.uniform(-jitter, jitter)))
        raw, mid = gen.message(seq, name, target)
        messages.append(raw)
        ids.append(mid)
    return Corpus(name, messages, ids)


def stage(corpus: Corpus, directory: Path, uid: int, gid: int) -> None:
    """Write the corpus once as files owned by the mail user (hard-linked into mailboxes)."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chown(directory, uid, gid)
    for i, raw in enumerate(corpus.messages):
        path = directory / f"{i:06d}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(raw)
            while view:
                view = view[os.write(fd, view) :]
            os.fchown(fd, uid, gid)
        finally:
            os.close(fd)
    corpus.staging = directory


def fill(corpus: Corpus, maildir: Path, tag: str) -> None:
    """Put every corpus message into `maildir`/new (hard links to the staged files: fast,
    and Dovecot never rewrites a Maildir file in place, it only renames or unlinks it)."""
    assert corpus.staging is not None
    new = maildir / "new"
    base = 1_700_000_000
    for i in range(corpus.count):
        src = corpus.staging / f"{i:06d}"
        dst = new / f"{base + i}.M{i}P{os.getpid()}Q{tag}.bench"
        try:
            os.link(src, dst)
        except OSError:  # another file system: copy instead
            data = src.read_bytes()
            st = src.stat()
            fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, data)
                os.fchown(fd, st.st_uid, st.st_gid)
            finally:
                os.close(fd)


_MSGID = re.compile(rb"^message-id:[ \t]*(<[^>\r\n]+>)", re.IGNORECASE | re.MULTILINE)


def message_id(raw: bytes) -> bytes | None:
    """The Message-ID of a raw message (from its header section)."""
    end = raw.find(b"\n\n")
    head = raw if end < 0 else raw[: end + 1]
    m = _MSGID.search(head)
    return m.group(1) if m else None
