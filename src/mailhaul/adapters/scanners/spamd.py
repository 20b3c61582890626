"""SpamAssassin's spamd: the SPAMC protocol's ``SYMBOLS`` request."""

from __future__ import annotations

import re
from typing import BinaryIO

from mailhaul.adapters.scanners.channel import Channel, blocks, parse_address
from mailhaul.domain.filtering import SenderContext, SpamVerdict

NAME = "spamd"
_STATUS = re.compile(rb"^SPAMD/\d+\.\d+ (\d+) (\S+)")
_SPAM = re.compile(
    r"^Spam:\s*(True|False|Yes|No)\s*;\s*(-?\d+(?:\.\d+)?)\s*/\s*(-?\d+(?:\.\d+)?)\s*$",
    re.IGNORECASE | re.MULTILINE,
)


class SpamdScanner:
    """Asks spamd at ``address`` (``host:port`` or a unix socket path) about one message."""

    name = NAME

    def __init__(self, address: str, timeout: float) -> None:
        self._address = parse_address(address, "filter.spamd")
        self._timeout = timeout

    def check(self, spool: BinaryIO, size: int, sender: SenderContext) -> SpamVerdict:
        """The verdict on the spooled message of ``size`` bytes; ScannerUnavailable if none.

        spamd has no way to be told the sending host: it reads the message's own
        ``Received:`` lines (mailhaul's is not among the bytes it gets), so ``sender`` is
        not sent."""
        channel = Channel(NAME, self._address, self._timeout)
        try:
            channel.send(
                b"SYMBOLS SPAMC/1.5\r\nContent-length: %d\r\nUser: mailhaul\r\n\r\n" % size
            )
            for block in blocks(spool):
                channel.send(block)
            channel.finish_sending()
            answer = channel.answer()
        finally:
            channel.close()
        return _verdict(answer, channel)


def _verdict(answer: bytes, channel: Channel) -> SpamVerdict:
    status = _STATUS.match(answer)
    if status is None:
        raise channel.failure(f"an answer that is not spamd's: {answer[:80]!r}")
    if status.group(1) != b"0":
        raise channel.failure(f"it could not check the message ({status.group(2).decode()})")
    head, _, body = answer.partition(b"\r\n\r\n")
    found = _SPAM.search(head.decode("latin-1"))
    if found is None:
        raise channel.failure("its answer has no Spam: line")
    rules = tuple(r.strip() for r in body.decode("latin-1").split(",") if r.strip())
    return SpamVerdict(
        NAME,
        score=float(found.group(2)),
        threshold=float(found.group(3)),
        is_spam=found.group(1).lower() in ("true", "yes"),
        rules=rules,
    )
