"""One rule of where the header section ends, whoever asks (fingerprints, envelope senders)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailhaul.adapters.sinks.envelope import HeaderBuffer
from mailhaul.domain.fingerprint import header_end, header_section

PIECES = st.sampled_from([b"\r\n", b"\n", b"\r", b"From: a@b.example", b"x", b": ", b"\r\n\r\n"])


def test_the_rule() -> None:
    assert header_end(b"A: 1\r\n\r\nbody") == 8
    assert header_end(b"A: 1\n\nbody") == 6
    assert header_end(b"A: 1\r\n\nbody") == 7  # an LF blank line after a CRLF line end
    assert header_end(b"A: 1\n\r\nbody") is None  # a CR-only "blank line" is not one
    assert header_end(b"A: 1\r\nB: 2\r\n") is None


@given(st.lists(PIECES, max_size=40), st.lists(st.integers(1, 12), min_size=1, max_size=40))
def test_a_sink_reading_chunks_sees_the_header_the_fingerprint_sees(
    pieces: list[bytes], cuts: list[int]
) -> None:
    data = b"".join(pieces)
    buffer = HeaderBuffer()
    pos = 0
    for cut in cuts * (len(data) // max(1, sum(cuts)) + 1):
        if pos >= len(data):
            break
        buffer.add(data[pos : pos + cut])
        pos += cut
        if buffer.complete:
            break
    assert buffer.complete == (header_end(data[:pos]) is not None)
    if buffer.complete:
        assert buffer.header() == header_section(data)
