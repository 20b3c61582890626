"""Polling one account: run → retrieve → deliver → record → delete, never losing mail.

Order for every batch of messages:
1. record each as *pending* with the sink's receipt (one commit);
2. stream each from the source into the sink (Maildir: tmp/, fsync, new/);
3. flush the sink (fsync the directories), then mark them *delivered* (one commit);
4. only then delete them on the source (or flag \\Seen with ``keep``).
A crash between 2 and 3 leaves pending records: the next run asks the sink whether each
receipt arrived and settles it, so the message is neither lost nor delivered twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.utils import formatdate

from mailhaul import __version__
from mailhaul.adapters.db.accounts import AccountStore
from mailhaul.adapters.db.database import Database
from mailhaul.adapters.db.records import DeliveredRecord, MessageRecords, PendingRecord
from mailhaul.adapters.db.runs import RunStore
from mailhaul.adapters.secrets import SecretBox
from mailhaul.domain.account import Account
from mailhaul.domain.errors import (
    AccountBusy,
    AuthenticationFailed,
    MailhaulError,
    ProtocolViolation,
    UnsupportedByServer,
)
from mailhaul.domain.fingerprint import MAX_HEADER, fingerprint, header_end
from mailhaul.domain.messages import KnownMessages, MessageRef
from mailhaul.domain.options import Credentials, Protocol, Security, SourceEndpoint
from mailhaul.domain.planning import batches, plan_fetch
from mailhaul.domain.ports import LogFn, MailSink, MailSource
from mailhaul.domain.scheduling import next_poll_at
from mailhaul.services.leases import Leases, new_owner
from mailhaul.services.runlog import RunLog

logger = logging.getLogger(__name__)

SourceFactory = Callable[[SourceEndpoint, Credentials, LogFn], MailSource]
ProgressFn = Callable[[int, int, int, int], None]
"""Called with (account id, messages done, messages planned, bytes done)."""

BATCH_COUNT = 64
BATCH_BYTES = 8 * 1024 * 1024
OVERSIZE_SLACK = 1024 * 1024


@dataclass
class RunSummary:
    """What one poll did."""

    account_id: int
    run_id: int | None
    result: str  # ok | error | busy
    fetched: int = 0
    bytes: int = 0
    deleted: int = 0
    skipped: int = 0
    error: str | None = None
    duration: float = 0.0


@dataclass
class _Counts:
    fetched: int = 0
    bytes: int = 0
    deleted: int = 0
    skipped: int = 0
    planned: int = 0
    extra: dict[str, int] = field(default_factory=dict)


def _protocol_name(endpoint: SourceEndpoint) -> str:
    name = str(endpoint.protocol).upper()
    return name + "S" if endpoint.security is not Security.NONE else name


class Poller:
    """Runs polls of accounts; safe to use from several threads at once."""

    def __init__(
        self,
        db: Database,
        accounts: AccountStore,
        records: MessageRecords,
        runs: RunStore,
        secret_box: SecretBox,
        sink: MailSink,
        source_factory: SourceFactory,
        timeout: float,
        leases: Leases | None = None,
    ) -> None:
        self.db = db
        self.accounts = accounts
        self.records = records
        self.runs = runs
        self.secret_box = secret_box
        self.sink = sink
        self.source_factory = source_factory
        self.timeout = timeout
        self.leases = leases or Leases(db, accounts)

    # the run as a whole ------------------------------------------------------------------
    def poll(
        self,
        account_id: int,
        trigger: str = "manual",
        stop: threading.Event | None = None,
        progress: ProgressFn | None = None,
    ) -> RunSummary:
        """Poll one account now; raises AccountBusy/NotFound, returns the summary otherwise."""
        owner = new_owner()
        self.leases.claim(account_id, owner)
        started = time.time()
        try:
            with self.db.begin() as conn:
                stale = self.runs.interrupt_stale(conn, account_id, started)
                run_id = self.runs.start(conn, account_id, trigger, started)
                account = self.accounts.get(conn, account_id)
                token = self.accounts.password_token(conn, account_id)
        except BaseException:
            self.leases.release(account_id, owner)
            raise
        log = RunLog(account_id)
        if stale:
            log("an earlier run was interrupted (its process stopped); picking up from there")
        counts = _Counts()
        error: str | None = None
        failure: MailhaulError | None = None
        try:
            password = self.secret_box.decrypt(token, account_id)
            log.add_secret(password)
            self._run(account, password, log, counts, owner, stop or threading.Event(), progress)
        except MailhaulError as exc:
            failure = exc
            error = log.scrub(str(exc))
            log(f"error: {error}")
        except Exception as exc:  # a bug: keep the service alive and say what happened
            logger.exception("account %s: internal error", account_id)
            error = log.scrub(f"internal error: {type(exc).__name__}: {exc}")
            log(error)
        except BaseException:  # Ctrl-C in the foreground: record it, then stop
            error = "interrupted"
            log("interrupted")
            self._finish(run_id, account, owner, counts, error, None, log, time.time())
            raise
        finished = time.time()
        self._finish(run_id, account, owner, counts, error, failure, log, finished)
        return RunSummary(
            account_id=account_id,
            run_id=run_id,
            result="error" if error else "ok",
            fetched=counts.fetched,
            bytes=counts.bytes,
            deleted=counts.deleted,
            skipped=counts.skipped,
            error=error,
            duration=finished - started,
        )

    def _finish(
        self,
        run_id: int,
        account: Account,
        owner: str,
        counts: _Counts,
        error: str | None,
        failure: MailhaulError | None,
        log: RunLog,
        finished: float,
    ) -> None:
        failures = 0 if error is None else account.consecutive_failures + 1
        if isinstance(failure, AuthenticationFailed):
            state = "login failed"
        elif error is not None:
            state = "error"
        else:
            state = "ok"
        summary = (
            f"{counts.fetched} fetched ({counts.bytes} bytes), {counts.deleted} deleted, "
            f"{counts.skipped} left on the server"
        )
        log(f"finished: {'error' if error else 'ok'}; {summary}")
        with self.db.begin() as conn:
            self.runs.finish(
                conn,
                run_id,
                result="error" if error else "ok",
                finished_at=finished,
                fetched=counts.fetched,
                size=counts.bytes,
                deleted=counts.deleted,
                skipped=counts.skipped,
                error=error,
                log=log.text(),
            )
            self.accounts.finish(
                conn,
                account.id,
                owner,
                state=state,
                result="error" if error else "ok",
                error=error,
                finished_at=finished,
                next_poll_at=next_poll_at(finished, account.spec.interval, failures),
                consecutive_failures=failures,
            )

    def _run(
        self,
        account: Account,
        password: str,
        log: RunLog,
        counts: _Counts,
        owner: str,
        stop: threading.Event,
        progress: ProgressFn | None,
    ) -> None:
        endpoint = account.endpoint(self.timeout)
        self._settle_pending(account, log)
        log(f"connecting to {endpoint.describe()} as {account.spec.username}")
        if endpoint.security is not Security.NONE and not endpoint.verify_cert:
            log("warning: certificate verification is switched off for this account")
        source = self.source_factory(endpoint, Credentials(account.spec.username, password), log)
        try:
            source.connect()
            for folder in account.spec.options.folders:
                if stop.is_set():
                    break
                _FolderPoll(self, account, source, folder, log, counts, owner, stop, progress).run()
        except BaseException:
            source.abort()
            raise
        source.close()

    def _settle_pending(self, account: Account, log: RunLog) -> None:
        """Settle deliveries a crashed run left unconfirmed."""
        with self.db.begin() as conn:
            pending = self.records.pending(conn, account.id)
        if not pending:
            return
        confirmed = dropped = 0
        for record in pending:
            known = (
                self.sink.was_delivered(record.destination, record.receipt)
                if record.receipt
                else None
            )
            with self.db.begin() as conn:
                if known:
                    self.records.confirm_pending(conn, account.id, record, time.time())
                    confirmed += 1
                else:
                    self.records.drop_pending(
                        conn, account.id, record.folder, record.uidvalidity, [record.uid]
                    )
                    dropped += 1
        log(
            f"settled an interrupted run: {confirmed} message(s) had been delivered, "
            f"{dropped} had not and will be fetched again"
        )


class _FolderPoll:
    """One folder of one run: plan, delete old, fetch in batches, prune."""

    def __init__(
        self,
        poller: Poller,
        account: Account,
        source: MailSource,
        folder: str,
        log: RunLog,
        counts: _Counts,
        owner: str,
        stop: threading.Event,
        progress: ProgressFn | None,
    ) -> None:
        self.p = poller
        self.account = account
        self.source = source
        self.folder = folder
        self.log = log
        self.counts = counts
        self.owner = owner
        self.stop = stop
        self.progress = progress
        self.destination = account.spec.destination
        self.options = account.spec.options
        self.renew_at = 0.0

    def _renew_lease(self) -> None:
        """Extend the lease (per batch, and during a long message); AccountBusy if lost."""
        self.p.leases.renew(self.account.id, self.owner)
        self.renew_at = time.monotonic() + self.p.leases.ttl / 3

    def run(self) -> None:
        p, account, options = self.p, self.account, self.options
        listing = self.source.select(self.folder)
        if not listing.stable_uids and options.keep:
            raise UnsupportedByServer(
                "the server does not support UIDL, so mailhaul cannot tell new mail from old: "
                "'keep' needs UIDL (switch keep off to fetch and delete everything)"
            )
        uidvalidity = listing.uidvalidity or 0
        with p.db.begin() as conn:
            stored = p.records.folder_uidvalidity(conn, account.id, self.folder)
        if stored is None:
            with p.db.begin() as conn:
                p.records.set_folder_uidvalidity(conn, account.id, self.folder, uidvalidity)
        elif stored != uidvalidity:
            self._reconcile_uidvalidity(listing.messages, stored, uidvalidity)
        with p.db.begin() as conn:
            known = p.records.known(conn, account.id, self.folder, uidvalidity)
        if not listing.stable_uids:
            known = KnownMessages()
        elif self._uidls_renumbered(listing.messages, known):
            new = [ref for ref in listing.messages if ref.uid not in known.refused]
            matched = self._recognise(new, uidvalidity)
            self.log(
                f"{self.folder}: none of the {len(known.delivered)} kept message(s) delivered "
                f"earlier is listed under its old UIDL (the server may have renumbered them); "
                f"{matched} of {len(new)} recognised as already delivered by their fingerprint"
            )
            with p.db.begin() as conn:
                known = p.records.known(conn, account.id, self.folder, uidvalidity)
        plan = plan_fetch(listing.messages, known, options)
        self.log(
            f"{self.folder}: {len(listing.messages)} message(s) on the server, "
            f"{len(plan.fetch)} new, {len(plan.old)} old, {len(plan.delete_now)} to delete, "
            f"{len(plan.too_large)} over the size limit, {len(plan.refused)} refused earlier"
        )
        for ref in plan.too_large:
            self.log(
                f"message {ref.uid} ({ref.size} bytes) is over the size limit "
                f"({options.max_size} bytes): left on the server"
            )
        self.counts.skipped += len(plan.too_large) + len(plan.refused)
        if plan.delete_now:
            self.source.delete(plan.delete_now)
            self.counts.deleted += len(plan.delete_now)
            self.log(f"{self.folder}: deleted {len(plan.delete_now)} old message(s)")
        self.counts.planned += len(plan.fetch)
        for batch in batches(plan.fetch, BATCH_COUNT, BATCH_BYTES):
            if self.stop.is_set():
                self.log("stopping on request: the rest is fetched next run")
                break
            self._renew_lease()
            self._fetch_batch(batch, uidvalidity)
        if listing.stable_uids:
            listed = {ref.uid for ref in listing.messages}
            gone = sorted((known.delivered | known.refused) - listed)
            with p.db.begin() as conn:
                p.records.prune(conn, account.id, self.folder, uidvalidity, gone)

    def _uidls_renumbered(self, listed: tuple[MessageRef, ...], known: KnownMessages) -> bool:
        """POP3 with keep: everything listed is new although kept mail should still be there."""
        if self.account.spec.protocol is not Protocol.POP3 or not self.options.keep:
            return False
        if not known.delivered or not listed:
            return False
        return not any(ref.uid in known.delivered for ref in listed)

    def _reconcile_uidvalidity(self, listed: tuple[MessageRef, ...], old: int, new: int) -> None:
        """After a UIDVALIDITY change, recognise delivered messages by fingerprint."""
        matched = self._recognise(listed, new)
        with self.p.db.begin() as conn:
            self.p.records.prune(conn, self.account.id, self.folder, new, [])
            self.p.records.set_folder_uidvalidity(conn, self.account.id, self.folder, new)
        self.log(
            f"{self.folder}: UIDVALIDITY changed from {old} to {new} (the server rebuilt the "
            f"folder); {matched} of {len(listed)} message(s) recognised as already "
            f"delivered by their fingerprint, the others are treated as new"
        )

    def _recognise(self, candidates: Sequence[MessageRef], uidvalidity: int) -> int:
        """Record as delivered the candidates whose fingerprint matches a past delivery."""
        p, account = self.p, self.account
        with p.db.begin() as conn:
            known_prints = p.records.fingerprints(conn, account.id, self.folder)
            known = p.records.known(conn, account.id, self.folder, uidvalidity)
        # Idempotent: a run that died half-way through this already recorded some.
        recorded = known.delivered | known.refused
        candidates = [ref for ref in candidates if ref.uid not in recorded]
        matched: list[DeliveredRecord] = []
        if known_prints and candidates:
            for ref, header in self.source.fetch_headers(candidates):
                print_ = fingerprint(header, ref.size)
                if print_ in known_prints:
                    matched.append(DeliveredRecord(ref.uid, print_, ref.size))
        with p.db.begin() as conn:
            p.records.add_delivered(
                conn, account.id, self.folder, uidvalidity, self.destination, matched, time.time()
            )
        return len(matched)

    def _received_header(self) -> bytes:
        spec = self.account.spec
        endpoint = self.account.endpoint(self.p.timeout)
        return (
            f"Received: from {spec.host} by mailhaul with {_protocol_name(endpoint)}\r\n"
            f"\t(mailhaul {__version__}, account {self.account.id})\r\n"
            f"\tfor <{self.destination}>; {formatdate(localtime=False)}\r\n"
        ).encode()

    def _fetch_batch(self, batch: list[MessageRef], uidvalidity: int) -> None:
        p, account, sink = self.p, self.account, self.p.sink
        pending = [
            PendingRecord(
                self.folder,
                uidvalidity,
                ref.uid,
                sink.planned_receipt(self.destination, ref.uid),
                self.destination,
            )
            for ref in batch
        ]
        receipts = {record.uid: record.receipt for record in pending}
        with p.db.begin() as conn:
            p.records.add_pending(conn, account.id, pending, time.time())
        delivered: list[MessageRef] = []
        records: list[DeliveredRecord] = []
        limit = self.options.max_size + OVERSIZE_SLACK
        try:
            for ref, chunks in self.source.fetch(batch):
                delivery = sink.begin(self.destination, receipts.get(ref.uid))
                try:
                    delivery.write(self._received_header())
                    head = bytearray()
                    head_done = False
                    total = 0
                    for chunk in chunks:
                        total += len(chunk)
                        if time.monotonic() > self.renew_at:
                            self._renew_lease()
                        if total > limit:
                            raise ProtocolViolation(
                                f"message {ref.uid}: the server sent more than the size limit "
                                f"while it listed {ref.size} bytes"
                            )
                        if not head_done:
                            head += chunk[: MAX_HEADER - len(head)]
                            head_done = len(head) >= MAX_HEADER or header_end(head) is not None
                        delivery.write(chunk)
                    delivery.commit()
                except BaseException:
                    delivery.abort()
                    raise
                delivered.append(ref)
                records.append(
                    DeliveredRecord(ref.uid, fingerprint(bytes(head), ref.size), ref.size)
                )
                self.counts.fetched += 1
                self.counts.bytes += total
                if self.progress:
                    self.progress(
                        account.id, self.counts.fetched, self.counts.planned, self.counts.bytes
                    )
        finally:
            self._record(batch, delivered, records, uidvalidity)
        if delivered:
            if self.options.keep:
                self.source.mark_seen(delivered)
            else:
                self.source.delete(delivered)
                self.counts.deleted += len(delivered)

    def _record(
        self,
        batch: list[MessageRef],
        delivered: list[MessageRef],
        records: list[DeliveredRecord],
        uidvalidity: int,
    ) -> None:
        """Make deliveries durable, then record them; forget pending ones that never came."""
        p, account = self.p, self.account
        if delivered:
            p.sink.flush()
        done = {ref.uid for ref in delivered}
        missing = [ref.uid for ref in batch if ref.uid not in done]
        with p.db.begin() as conn:
            p.records.mark_delivered(
                conn, account.id, self.folder, uidvalidity, records, time.time()
            )
            p.records.drop_pending(conn, account.id, self.folder, uidvalidity, missing)


__all__ = ["AccountBusy", "Poller", "RunSummary", "SourceFactory"]
