"""Check a Maildir against the corpus: every message exactly once, bodies byte for byte.

A delivered file matches its source (found by Message-ID) when it is the source with only
header fields of the tool's known names inserted (mailhaul: Received, X-Original-To and
X-Mailhaul-Account in front, and with checks X-Spam-* / X-Virus-Scanned; fetchmail:
Received after Return-Path/Delivered-To; getmail6: Delivered-To, Return-Path, Received,
X-getmail-retrieved-from-mailbox).
A file that matches only after unfolding header lines is counted as "re-folded" (getmail6
re-folds header lines longer than 78 characters); anything else as "differs". Mismatches
are reported, never raised.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from corpus import Corpus, message_id

ADDED_HEADERS: dict[str, frozenset[str]] = {
    "mailhaul": frozenset(
        {
            "received",
            "x-original-to",
            "x-mailhaul-account",
            "x-spam-flag",
            "x-spam-score",
            "x-spam-status",
            "x-virus-scanned",
        }
    ),
    "fetchmail": frozenset({"received"}),
    "getmail6": frozenset(
        {"delivered-to", "return-path", "received", "x-getmail-retrieved-from-mailbox"}
    ),
    "minimal": frozenset(),
}

_HEADER_LINE = re.compile(rb"([!-9;-~]+):")
_FOLD = re.compile(rb"\n[ \t]+")
_SPACE = re.compile(rb"[ \t]+")


@dataclass
class Verdict:
    expected: int
    files: int = 0
    exact: int = 0
    refolded: int = 0
    differ: int = 0
    other_headers: int = 0  # body exact, but header lines of unexpected names added
    unknown: int = 0
    duplicates: int = 0
    missing: int = 0
    added: Counter[str] = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return self.exact == self.expected == self.files

    @property
    def complete(self) -> bool:
        """Every message arrived exactly once (bodies may be re-folded)."""
        return (
            self.missing == 0
            and self.duplicates == 0
            and self.unknown == 0
            and self.differ == 0
            and self.other_headers == 0
            and self.files == self.expected
        )

    def summary(self) -> str:
        if self.ok:
            return "ok"
        parts = [f"{self.files}/{self.expected} files"]
        labels = {
            "refolded": "header re-folded",
            "differ": "differ",
            "other_headers": "with unexpected added headers",
            "unknown": "unknown",
            "duplicates": "duplicates",
            "missing": "missing",
        }
        for name, label in labels.items():
            n = getattr(self, name)
            if n:
                parts.append(f"{n} {label}")
        return ", ".join(parts)


def _split(raw: bytes) -> tuple[list[bytes], bytes] | None:
    """Header fields (each with its continuation lines) and the body; None if not a message."""
    end = raw.find(b"\n\n")
    if end < 0:
        return None
    fields: list[bytes] = []
    for line in raw[: end + 1].split(b"\n")[:-1]:
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += b"\n" + line
        elif _HEADER_LINE.match(line):
            fields.append(line)
        else:
            return None
    return fields, raw[end + 2 :]


def _added_fields(data: bytes, expected: bytes) -> list[str] | None:
    """Names of the header fields a tool added when `data` is `expected` with fields
    inserted (anywhere in the header section) and nothing else changed; else None."""
    got, want = _split(data), _split(expected)
    if got is None or want is None or got[1] != want[1]:
        return None
    added: list[str] = []
    j = 0
    wanted = want[0]
    for f in got[0]:
        if j < len(wanted) and f == wanted[j]:
            j += 1
        else:
            added.append(f.split(b":", 1)[0].decode("ascii", "replace").lower())
    return added if j == len(wanted) else None


def _normal(raw: bytes) -> bytes:
    return _SPACE.sub(b" ", _FOLD.sub(b" ", raw))


def verify(maildir: Path, corpus: Corpus, tool: str) -> Verdict:
    allowed = ADDED_HEADERS[tool]
    verdict = Verdict(expected=corpus.count)
    seen: Counter[bytes] = Counter()
    for sub in ("new", "cur"):
        folder = maildir / sub
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            verdict.files += 1
            data = path.read_bytes()
            mid = message_id(data)
            expected = corpus.by_id.get(mid) if mid else None
            if expected is None or mid is None:
                verdict.unknown += 1
                continue
            seen[mid] += 1
            names = _added_fields(data, expected)
            if names is not None:
                verdict.added.update(names)
                if all(n in allowed for n in names):
                    verdict.exact += 1
                else:
                    verdict.other_headers += 1
                continue
            norm_data, norm_expected = _normal(data), _normal(expected)
            if _added_fields(norm_data, norm_expected) is not None:
                verdict.refolded += 1
            else:
                verdict.differ += 1
    verdict.duplicates = sum(n - 1 for n in seen.values() if n > 1)
    verdict.missing = sum(1 for mid in corpus.message_ids if mid not in seen)
    return verdict
