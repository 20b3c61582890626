"""One whole message written into a delivery session in one go (a judged message from the
spool, a quarantined message released, a notice): begin, write the blocks, commit; the
delivery is aborted on any failure, so nothing half-written is ever made durable by the
session's flush."""

from __future__ import annotations

from collections.abc import Iterable

from mailhaul.domain.ports import DeliverySession


def deliver_whole(
    session: DeliverySession,
    destination: str,
    receipt: str | None,
    blocks: Iterable[bytes],
    folder: str | None = None,
) -> None:
    """Write ``blocks`` as one message for ``destination`` (in ``folder`` where the sink
    files into one) and commit it (the caller flushes the session); DeliveryError as the
    sink raises it."""
    delivery = session.begin(destination, receipt, folder)
    try:
        for block in blocks:
            delivery.write(block)
        delivery.commit()
    except BaseException:
        delivery.abort()
        raise
