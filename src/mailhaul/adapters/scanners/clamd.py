"""ClamAV's clamd: ``zINSTREAM`` with the spooled message in length-prefixed blocks."""

from __future__ import annotations

import struct
from typing import BinaryIO

from mailhaul.adapters.scanners.channel import Channel, blocks, parse_address
from mailhaul.domain.errors import ScannerUnavailable, ScanSkipped
from mailhaul.domain.filtering import VirusVerdict

NAME = "clamd"


class ClamdScanner:
    """Asks clamd at ``address`` (``host:port`` or a unix socket path) about one message."""

    name = NAME

    def __init__(self, address: str, timeout: float) -> None:
        self._address = parse_address(address, "filter.clamd")
        self._timeout = timeout

    def check(self, spool: BinaryIO) -> VirusVerdict:
        """The verdict on the spooled message; ScannerUnavailable if there is none."""
        channel = Channel(NAME, self._address, self._timeout)
        try:
            channel.send(b"zINSTREAM\0")
            try:
                for block in blocks(spool):
                    channel.send(struct.pack(">I", len(block)) + block)
                channel.send(struct.pack(">I", 0))
            except ScannerUnavailable:
                # clamd closes the stream early past its StreamMaxLength: its answer says so
                answer = channel.answer(until=b"\0")
                if not answer:
                    raise
                return _verdict(answer, channel)
            return _verdict(channel.answer(until=b"\0"), channel)
        finally:
            channel.close()


def _verdict(answer: bytes, channel: Channel) -> VirusVerdict:
    text = answer.rstrip(b"\0\n").decode("utf-8", "replace").strip()
    if not text:
        raise channel.failure("the connection closed without an answer")
    _, sep, result = text.partition(": ")
    if not sep:
        result = text
    if result == "OK":
        return VirusVerdict(NAME)
    if result.endswith(" FOUND"):
        signature = result[: -len(" FOUND")].strip()
        if signature:
            return VirusVerdict(NAME, signature=signature[:200])
    if "size limit exceeded" in result:
        raise ScanSkipped(NAME, "larger than its StreamMaxLength")
    if result.endswith("ERROR"):
        raise channel.failure(f"it could not scan the message ({result[:200]})")
    raise channel.failure(f"an answer that is not clamd's: {text[:200]!r}")
