"""One batch of messages from source to sink, in the order that loses nothing.

1. record each as *pending* with the sink's receipt (one commit);
2. stream each from the source into the sink (Maildir: tmp/, fsync, new/), checking that
   what arrived is the listed message (``domain/integrity.py``) before it is committed;
3. flush the run's delivery session (fsync, new/), then mark them *delivered* (one commit).
Deleting or flagging them on the source is the caller's next step, never earlier.

A message the backend refuses for good is recorded as *refused* (it stays on the server and
is skipped until retried). A copy that is not the listed message is not delivered: with
``refuse_mismatches`` it is recorded as refused with the reason, otherwise it is handed back
to the caller (its pending record dropped) for a second look.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from itertools import chain

from mailhaul import __version__
from mailhaul.adapters.db.quarantine import QuarantinedMessage
from mailhaul.adapters.db.records import DeliveredRecord, PendingRecord
from mailhaul.adapters.scanners.channel import blocks
from mailhaul.adapters.spool import Spool
from mailhaul.domain.errors import MessageMismatch, PermanentDeliveryError, ProtocolViolation
from mailhaul.domain.filtering import Judgement, Route, summary_fields
from mailhaul.domain.fingerprint import MAX_HEADER, fingerprint, header_end
from mailhaul.domain.integrity import (
    Received,
    past_any_agreement,
    size_agrees,
    size_mismatch,
    stand_in,
)
from mailhaul.domain.messages import MessageRef
from mailhaul.domain.options import Security
from mailhaul.services.filtering import FilterStage
from mailhaul.services.poll_run import PollRun
from mailhaul.services.whole_delivery import deliver_whole

OVERSIZE_SLACK = 1024 * 1024
JUNK_FOLDER = "Junk"
"""How far past the size limit a server may stream before the message is cut off."""


@dataclass(frozen=True)
class _Handled:
    """One message taken from the source: its size, its header section, and its entry if
    it went into the quarantine rather than the mailbox."""

    size: int
    head: bytes
    quarantined: QuarantinedMessage | None = None


@dataclass
class BatchOutcome:
    """What one batch did: delivered (and recorded), and copies that were not the message."""

    delivered: list[MessageRef] = field(default_factory=list)
    mismatched: list[tuple[MessageRef, str]] = field(default_factory=list)


class BatchDelivery:
    """Delivers batches of one folder of one run."""

    def __init__(
        self, run: PollRun, folder: str, uidvalidity: int, local: str | None = None
    ) -> None:
        self.run = run
        self.folder = folder
        self.uidvalidity = uidvalidity
        self.local = local  # the local folder (None: the mailbox itself)
        self.gmail_ids: dict[str, str] = {}  # UID -> X-GM-MSGID, recorded with the delivery
        self.stage = run.filter_stage()

    def deliver(self, batch: list[MessageRef], refuse_mismatches: bool) -> BatchOutcome:
        """Fetch, deliver and record ``batch``; see the module docstring."""
        run, deps = self.run, self.run.deps
        account_id, destination = run.account.id, run.destination
        pending = [
            PendingRecord(
                self.folder,
                self.uidvalidity,
                ref.uid,
                run.delivery.planned_receipt(destination, ref.uid),
                destination,
            )
            for ref in batch
        ]
        receipts = {record.uid: record.receipt for record in pending}
        with deps.db.begin() as conn:
            deps.records.add_pending(conn, account_id, pending, deps.clock())
        outcome = BatchOutcome()
        records: list[DeliveredRecord] = []
        refusals: list[tuple[str, str]] = []
        received = self._received_header()
        try:
            for ref, chunks in run.source.fetch(batch):
                try:
                    handled = self._deliver(ref, chunks, receipts.get(ref.uid), received)
                except PermanentDeliveryError as exc:
                    # Kept on the server, remembered as refused: no retry storm.
                    note = run.log.scrub(str(exc))[:1000]
                    self._refuse(ref, f"refused for good by the local backend ({note})")
                    refusals.append((ref.uid, note))
                    continue
                except MessageMismatch as exc:
                    why = run.log.scrub(str(exc))[:1000]
                    if refuse_mismatches or exc.final:
                        note = f"what the server sent was not the listed message: {why}"
                        self._refuse(ref, note)
                        refusals.append((ref.uid, note))
                    else:
                        outcome.mismatched.append((ref, why))
                    continue
                outcome.delivered.append(ref)
                record = DeliveredRecord(
                    ref.uid,
                    fingerprint(handled.head, ref.size),
                    ref.size,
                    self.gmail_ids.get(ref.uid),
                )
                if receipts.get(ref.uid) is None or handled.quarantined is not None:
                    # A hand-off (LMTP, SMTP, MDA) cannot be checked after a crash: record
                    # it at once, so a crash can deliver again only the message in hand. A
                    # quarantined message is durable already: recorded with its row.
                    with deps.db.begin() as conn:
                        deps.records.mark_delivered(
                            conn, account_id, self.folder, self.uidvalidity, [record], deps.clock()
                        )
                        if handled.quarantined is not None:
                            deps.quarantine_rows.add(conn, handled.quarantined)
                else:
                    records.append(record)
                run.delivered(handled.size)
                if run.stop.is_set():
                    break  # finish the message in hand, record it, then log out politely
        finally:
            self._record(batch, outcome.delivered, records, refusals)
        return outcome

    def _refuse(self, ref: MessageRef, note: str) -> None:
        run = self.run
        run.counts.skipped += 1
        run.log(
            f"message {ref.uid}: {note}; left on the server, skipped until "
            f"`mailhaul retry {run.account.id}`"
        )

    def _received_header(self) -> bytes:
        """The trace mailhaul prepends: its ``Received:`` line, then ``X-Original-To`` (the
        destination) and ``X-Mailhaul-Account`` (the source account), by which a Sieve
        script tells fetched mail apart (``Delivered-To`` is left out: an MTA delivering it
        to that address would take it for a loop)."""
        account = self.run.account
        spec = account.spec
        endpoint = account.endpoint(self.run.deps.timeout)
        protocol = str(endpoint.protocol).upper()
        if endpoint.security is not Security.NONE:
            protocol += "S"
        source = f"{spec.username}@{spec.host}".replace("\r", "").replace("\n", "")
        return (
            f"Received: from {spec.host} by mailhaul with {protocol}\r\n"
            f"\t(mailhaul {__version__}, account {account.id})\r\n"
            f"\tfor <{self.run.destination}>; {formatdate(localtime=False)}\r\n"
            f"X-Original-To: {self.run.destination}\r\n"
            f"X-Mailhaul-Account: {account.id} ({source}, {spec.protocol})\r\n"
        ).encode()

    def _deliver(
        self, ref: MessageRef, chunks: Iterator[bytes], receipt: str | None, received: bytes
    ) -> _Handled:
        """Stream one message into the sink (through the filter stage when the account has
        checks); returns its size, header section and, if quarantined, its entry."""
        if self.stage is not None:
            return self._deliver_filtered(self.stage, ref, chunks, (receipt, received))
        run = self.run
        delivery = run.delivery.begin(run.destination, receipt, self.local)
        try:
            delivery.write(received)
            total, head = self._receive(ref, chunks, delivery.write)
            delivery.commit()
        except BaseException:
            delivery.abort()
            raise
        return _Handled(total, head)

    def _receive(
        self, ref: MessageRef, chunks: Iterator[bytes], write: Callable[[bytes], None]
    ) -> tuple[int, bytes]:
        """Pass the message's bytes to ``write``, checking that it is the listed message;
        its size and header section."""
        run = self.run
        limit = run.options.max_size + OVERSIZE_SLACK
        head = bytearray()
        head_done = False
        total = feeds = 0
        for chunk in chunks:
            total += len(chunk)
            feeds += chunk.count(b"\n")
            run.renew_lease_if_due()
            if total > limit:
                raise ProtocolViolation(
                    f"message {ref.uid}: the server sent more than the size limit "
                    f"while it listed {ref.size} bytes"
                )
            if past_any_agreement(ref.size, total):
                raise MessageMismatch(
                    f"the server listed {ref.size} bytes but sent over {total}; cut off",
                    final=True,
                )
            if not head_done:
                head += chunk[: MAX_HEADER - len(head)]
                head_done = len(head) >= MAX_HEADER or header_end(head) is not None
            write(chunk)
        _check_copy(ref, Received(total, feeds, bytes(head)))
        return total, bytes(head)

    def _deliver_filtered(
        self,
        stage: FilterStage,
        ref: MessageRef,
        chunks: Iterator[bytes],
        envelope: tuple[str | None, bytes],
    ) -> _Handled:
        """Spool the message, have it judged, then deliver it with the verdict's headers
        above its own bytes, or keep it in the quarantine."""
        run = self.run
        receipt, received = envelope
        with Spool(stage.scanners.spool_dir) as spool:
            total, head = self._receive(ref, chunks, spool.write)
            judgement = stage.judge(spool.rewind(), total, head)
            if judgement.route is Route.QUARANTINE:
                entry = self._quarantine(stage, ref, (received, spool), (total, head), judgement)
                self._note(ref, judgement)
                return _Handled(total, head, entry)
            folder = JUNK_FOLDER if judgement.route is Route.JUNK else self.local
            message = chain([received + judgement.headers], blocks(spool.rewind()))
            deliver_whole(run.delivery, run.destination, receipt, message, folder)
        self._note(ref, judgement)  # counted once it is in the mailbox, not before
        return _Handled(total, head)

    def _note(self, ref: MessageRef, judgement: Judgement) -> None:
        run, counts = self.run, self.run.counts
        spam = judgement.spam
        if spam is not None and spam.is_spam:
            counts.spam += 1
            where = " into Junk" if judgement.route is Route.JUNK else ""
            run.log(
                f"message {ref.uid}: spam by {spam.scanner} "
                f"(score {spam.score:.1f}, required {spam.threshold:.1f}); delivered{where} "
                "with X-Spam-Flag: YES"
            )
        for why in judgement.unchecked:
            run.log(f"message {ref.uid}: delivered unscanned: {run.log.scrub(why)}")
        if judgement.unchecked:
            counts.unscanned += 1

    def _quarantine(
        self,
        stage: FilterStage,
        ref: MessageRef,
        message: tuple[bytes, Spool],
        sized: tuple[int, bytes],
        judgement: Judgement,
    ) -> QuarantinedMessage:
        run = self.run
        received, spool = message
        total, head = sized
        virus = judgement.virus
        assert virus is not None and virus.signature is not None
        name = stage.scanners.quarantine.store(run.account.id, received, spool.rewind())
        run.counts.viruses += 1
        sender, subject = summary_fields(head)
        run.log(
            f"message {ref.uid}: virus {virus.signature} found by {virus.scanner}; "
            "kept in the quarantine, not delivered"
        )
        return QuarantinedMessage(
            id=0,
            account_id=run.account.id,
            name=name,
            folder=self.folder,
            uid=ref.uid,
            signature=virus.signature,
            scanner=virus.scanner,
            size=total,
            sender=sender,
            subject=subject,
            created_at=time.time(),
        )

    def _record(
        self,
        batch: list[MessageRef],
        delivered: list[MessageRef],
        records: list[DeliveredRecord],
        refusals: list[tuple[str, str]],
    ) -> None:
        """Make deliveries durable, then record them; forget pending ones that never came."""
        deps, account_id = self.run.deps, self.run.account.id
        if delivered:
            self.run.delivery.flush()
        done = {ref.uid for ref in delivered} | {uid for uid, _ in refusals}
        missing = [ref.uid for ref in batch if ref.uid not in done]
        now = deps.clock()
        folder, uidvalidity = self.folder, self.uidvalidity
        with deps.db.begin() as conn:
            deps.records.mark_delivered(conn, account_id, folder, uidvalidity, records, now)
            deps.records.mark_refused(conn, account_id, folder, uidvalidity, refusals, now)
            deps.records.drop_pending(conn, account_id, folder, uidvalidity, missing)


def _check_copy(ref: MessageRef, received: Received) -> None:
    """Raise MessageMismatch unless what arrived can be the listed message."""
    kind = stand_in(received.head)
    if kind is not None:
        raise MessageMismatch(f"the server sent {kind} instead of it")
    if not size_agrees(ref.size, received):
        raise MessageMismatch(size_mismatch(ref.size, received))
