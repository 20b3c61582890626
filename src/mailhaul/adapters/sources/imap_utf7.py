"""Modified UTF-7 for the IMAP client: the pure codec lives in ``mailhaul.domain.imap_utf7``."""

from __future__ import annotations

from mailhaul.domain.imap_utf7 import Utf7Error, decode_mailbox, encode_mailbox

__all__ = ["Utf7Error", "decode_mailbox", "encode_mailbox"]
