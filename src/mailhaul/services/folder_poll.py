"""One folder of one poll run: list, plan, deliver in batches, finish on the source.

The steps, in order (``FolderPoll.poll``):
1. a quiet folder (nothing to do last time) whose STATUS is unchanged stops here;
2. list it, and bring what is known up to date: a new UIDVALIDITY or renumbered POP3
   UIDLs are reconciled by fingerprint (``recognition``);
3. plan (pure, ``domain/planning.py``), after checking that known ids about to be deleted
   still name the mail delivered under them;
4. apply the plan: flag kept mail a dead run left unflagged, delete what is old, then
   deliver the new mail batch by batch (``batch_delivery``: pending → stream → check the
   copy → flush → delivered);
5. finish the delivered messages on the source: delete them, or flag them \\Seen with
   ``keep`` (every ``FINISH_EVERY`` messages and at the end of the folder), never before
   they are recorded;
6. IMAP: copies that were not the listed message get a second look (a fresh SELECT: gone
   means expunged elsewhere, still there means one more fetch, and a second failure a
   refusal); on POP3 the first failure is final;
7. forget records of messages no longer listed, and remember the folder's state if the
   poll found nothing to do.
"""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass, replace

from mailhaul.adapters.db.unfetched import (
    add_baseline,
    add_duplicates,
    delivered_gmail_ids,
    first_recorded,
)
from mailhaul.domain.errors import UnsupportedByServer
from mailhaul.domain.messages import FolderListing, KnownMessages, MessageRef
from mailhaul.domain.options import Protocol
from mailhaul.domain.planning import FetchPlan, batches, plan_fetch
from mailhaul.domain.quiet import QuietFolder, nothing_to_do, options_key, still_quiet
from mailhaul.services.batch_delivery import BatchDelivery
from mailhaul.services.poll_run import PollRun
from mailhaul.services.recognition import (
    FolderScope,
    check_known,
    recognise,
    reconcile_uidvalidity,
    renamed_candidates,
)

BATCH_COUNT = 256
"""Messages per batch (one pending commit, one parallel fsync, one delivered commit): a
crash costs at most one batch of work to fetch again, never a message."""
BATCH_BYTES = 8 * 1024 * 1024
FINISH_EVERY = 512
"""Delivered messages deleted (or flagged) on the source together, in one round trip."""


@dataclass(frozen=True)
class Listed:
    """A folder as listed now, and what the records know of it under its UIDVALIDITY."""

    listing: FolderListing
    known: KnownMessages
    uidvalidity: int
    renumbered: bool  # the UIDVALIDITY differs from the one last recorded


class FolderPoll:
    """One folder of one run; see the module docstring for the steps."""

    def __init__(
        self, run: PollRun, folder: str, quick_check: bool = True, local: str | None = None
    ) -> None:
        self.run = run
        self.folder = folder
        self.local = local  # the local folder its mail lands in (None: the mailbox itself)
        self.quick_check = quick_check  # False after a crash: list in full first
        self.scope = FolderScope(run, folder)
        self._to_finish: list[MessageRef] = []
        self._suspects: dict[str, str] = {}  # uid -> why its copy was not the message

    def poll(self) -> None:
        """Run the steps for this folder."""
        run = self.run
        deps = run.deps
        with deps.db.read() as conn:
            stored, quiet = deps.folders.folder_record(conn, run.account.id, self.folder)
        if self.quick_check and self._unchanged(quiet):
            return
        listed = self._since(self._list(stored))
        plan = self._plan(listed)
        delivery = BatchDelivery(run, self.folder, listed.uidvalidity, self.local)
        self._apply(plan, listed, delivery)
        self._finish_on_source()
        self._look_again(delivery)
        self._forget_gone(listed)
        self._note_quiet(
            quiet, listed.listing, not listed.renumbered and nothing_to_do(plan, listed.known)
        )

    # 1. the STATUS check ------------------------------------------------------------------
    def _unchanged(self, quiet: QuietFolder | None) -> bool:
        if quiet is None:
            return False
        options = self.run.options
        if options.keep and options.delete_after_days is not None:
            return False  # kept mail may have had its days: the listing tells
        state = self.run.source.folder_state(self.folder)
        if state is None or not still_quiet(quiet, state, self.run.options, time.time()):
            return False
        self.run.log(
            f"{self.folder}: unchanged since it was last listed ({state.messages} "
            f"message(s), {state.unseen} unread): nothing new"
        )
        return True

    # 2. listing ---------------------------------------------------------------------------
    def _list(self, stored: int | None) -> Listed:
        run = self.run
        deps, account_id = run.deps, run.account.id
        with deps.db.read() as conn:
            hint = (
                deps.records.known(conn, account_id, self.folder, stored)
                if stored is not None
                else KnownMessages()
            )
        known_uids = hint.handled
        listing = run.source.select(self.folder, known_uids)
        if known_uids and (listing.uidvalidity or 0) != stored:
            listing = run.source.select(self.folder)  # renumbered: sizes of all are needed
        options = run.options
        if not listing.stable_uids and (options.keep or options.new_only or options.since):
            raise UnsupportedByServer(
                "the server does not support UIDL, so mailhaul cannot tell new mail from old: "
                "'keep', 'new only' and 'since' need UIDL (switch them off to fetch and delete "
                "everything)"
            )
        uidvalidity = listing.uidvalidity or 0
        first: float | None = None  # new only, renumbered: when the first sync was
        if stored is None:
            with deps.db.begin() as conn:  # one transaction: a crash cannot skip the baseline
                deps.folders.set_folder_uidvalidity(conn, account_id, self.folder, uidvalidity)
                if options.new_only and listing.messages:
                    baseline = [ref.uid for ref in listing.messages]
                    where = (self.folder, uidvalidity)
                    add_baseline(conn, account_id, where, baseline, deps.clock())
                    run.log(
                        f"{self.folder}: first sync, new mail only: the {len(baseline)} "
                        "message(s) already here stay on the server, not fetched"
                    )
        elif stored != uidvalidity:
            if options.new_only:  # read before the old records go
                with deps.db.read() as conn:
                    first = first_recorded(conn, account_id, (self.folder, stored))
            reconcile_uidvalidity(self.scope, listing.messages, stored, uidvalidity)
        known = hint if stored == uidvalidity else self._known(uidvalidity)
        if not listing.stable_uids:
            known = KnownMessages()
        elif new := renamed_candidates(run, listing.messages, known):
            missing = len(known.delivered - {ref.uid for ref in listing.messages})
            matched = recognise(self.scope, new, uidvalidity)
            run.log(
                f"{self.folder}: {missing} kept message(s) delivered earlier are no longer "
                f"listed under their UIDL (the server may have renamed them); {matched} of "
                f"{len(new)} new UIDL(s) recognised as already delivered by their fingerprint"
            )
            known = self._known(uidvalidity)
        listed = Listed(listing, known, uidvalidity, stored != uidvalidity)
        if options.new_only and first is None and known.baseline - listing.uids:
            with deps.db.read() as conn:  # left mail gone, or renamed (POP3 UIDLs)
                first = first_recorded(conn, account_id, (self.folder, uidvalidity))
        if options.new_only and first is not None:
            # Renumbered: the first sync's baseline is lost with the old UIDs; what is dated
            # before that day stays old (delivered mail is recognised by its fingerprint).
            day = datetime.datetime.fromtimestamp(first, datetime.UTC).date()
            why = f"dated before the first sync ({day.isoformat()}) stay on the server (new only)"
            listed = self._leave_before(listed, day, why)
        return listed

    def _since(self, listed: Listed) -> Listed:
        """With ``since``: messages not known yet and dated before it are left alone, and
        recorded so (each is looked at once)."""
        day = self.run.options.since
        if day is None:
            return listed
        return self._leave_before(
            listed, day, f"dated before {day.isoformat()} stay on the server, not fetched (since)"
        )

    def _leave_before(self, listed: Listed, day: datetime.date, why: str) -> Listed:
        """Record the messages not known yet and dated before ``day`` as left alone."""
        run = self.run
        known = listed.known
        unknown = [ref for ref in listed.listing.messages if ref.uid not in known.handled]
        if not unknown:
            return listed
        before = run.source.dated_before(unknown, day)
        if not before:
            return listed
        deps = run.deps
        with deps.db.begin() as conn:
            where = (self.folder, listed.uidvalidity)
            add_baseline(conn, run.account.id, where, sorted(before), deps.clock())
        run.log(f"{self.folder}: {len(before)} message(s) {why}")
        return replace(listed, known=replace(known, baseline=known.baseline | before))

    def _known(self, uidvalidity: int) -> KnownMessages:
        deps = self.run.deps
        with deps.db.begin() as conn:
            return deps.records.known(conn, self.run.account.id, self.folder, uidvalidity)

    # 3. the plan --------------------------------------------------------------------------
    def _plan(self, listed: Listed) -> FetchPlan:
        messages, options = listed.listing.messages, self.run.options
        now = self.run.deps.clock()
        plan = plan_fetch(messages, listed.known, options, now)
        checked = check_known(self.scope, messages, listed.known, plan, listed.uidvalidity)
        if checked.reused:
            plan = plan_fetch(messages, checked.known, options, now)
        if checked.held:
            held = tuple(ref for ref in plan.delete_now if ref.uid in checked.held)
            rest = tuple(ref for ref in plan.delete_now if ref.uid not in checked.held)
            expired = tuple(ref for ref in plan.expired if ref.uid not in checked.held)
            plan = replace(plan, delete_now=rest, old=plan.old + held, expired=expired)
        self._log_plan(len(messages), plan)
        return plan

    def _log_plan(self, listed: int, plan: FetchPlan) -> None:
        log, folder = self.run.log, self.folder
        log(
            f"{folder}: {listed} message(s) on the server, "
            f"{len(plan.fetch)} new, {len(plan.old)} old, {len(plan.delete_now)} to delete, "
            f"{len(plan.too_large)} over the size limit, {len(plan.refused)} refused earlier"
        )
        for ref in plan.too_large:
            log(
                f"message {ref.uid} ({ref.size} bytes) is over the size limit "
                f"({self.run.options.max_size} bytes): left on the server"
            )
        if plan.ambiguous:
            uids = sorted({ref.uid for ref in plan.ambiguous})
            log(
                f"{folder}: the server lists {len(plan.ambiguous)} messages under "
                f"{len(uids)} unique-id(s) it also gives another message ({', '.join(uids[:5])}"
                f"{' …' if len(uids) > 5 else ''}): they cannot be told apart, so they are "
                f"left on the server, neither fetched nor deleted"
            )

    # 4. applying it -----------------------------------------------------------------------
    def _apply(self, plan: FetchPlan, listed: Listed, delivery: BatchDelivery) -> None:
        run, folder = self.run, self.folder
        counts, source = run.counts, run.source
        counts.skipped += len(plan.too_large) + len(plan.refused) + len(plan.ambiguous)
        known = listed.known
        unflagged = [ref for ref in plan.old if not ref.seen and ref.uid in known.delivered]
        if run.options.keep and listed.listing.uidvalidity is not None and unflagged:
            # Kept and recorded, but a run died before flagging them \Seen: do it now.
            source.mark_seen(unflagged)
            run.log(f"{folder}: flagged {len(unflagged)} delivered message(s) \\Seen")
        if plan.delete_now:
            self._off_the_source(list(plan.delete_now))
            counts.deleted += len(plan.delete_now)
            moved = f"moved {len(plan.delete_now)} delivered message(s) to {run.options.move_to}"
            gone = f"deleted {len(plan.delete_now)} old message(s)"
            run.log(f"{folder}: {moved if run.options.move_to else gone}")
        if plan.expired:
            run.log(
                f"{folder}: of those, {len(plan.expired)} kept for "
                f"{run.options.delete_after_days} day(s) since their delivery (delete after)"
            )
        wanted = self._gmail_copies(list(plan.fetch), listed, delivery)
        fetch = run.budget.take(wanted)
        if len(fetch) < len(wanted):
            counts.limited = True
            run.log(
                f"{folder}: the per-run limit is reached: {len(wanted) - len(fetch)} "
                "message(s) wait for the next run, which is due at once"
            )
        counts.planned += len(fetch)
        for batch in batches(fetch, BATCH_COUNT, BATCH_BYTES):
            if run.stop.is_set():
                run.log("stopping on request: the rest is fetched next run")
                break
            self._deliver(delivery, batch)

    def _gmail_copies(
        self, refs: list[MessageRef], listed: Listed, delivery: BatchDelivery
    ) -> list[MessageRef]:
        """Gmail (X-GM-EXT-1): a message delivered already from another label is recorded
        for this folder, not delivered again; the others carry their id into the record."""
        run = self.run
        ids = run.source.gmail_ids(refs) if refs else {}
        if not ids:
            return refs
        deps, account_id = run.deps, run.account.id
        with deps.db.begin() as conn:
            done = delivered_gmail_ids(conn, account_id, ids.values())
            copies = {uid: gm for uid, gm in ids.items() if gm in done}
            if copies:
                where = (self.folder, listed.uidvalidity)
                add_duplicates(conn, account_id, where, copies, deps.clock())
        delivery.gmail_ids = {uid: gm for uid, gm in ids.items() if uid not in copies}
        if not copies:
            return refs
        run.log(
            f"{self.folder}: {len(copies)} message(s) delivered already from another label "
            "(the same Gmail message): not delivered again"
        )
        self._to_finish.extend(ref for ref in refs if ref.uid in copies)
        return [ref for ref in refs if ref.uid not in copies]

    def _deliver(self, delivery: BatchDelivery, batch: list[MessageRef]) -> None:
        run = self.run
        run.renew_lease()
        second_look = run.account.spec.protocol is Protocol.IMAP
        final = not second_look or any(ref.uid in self._suspects for ref in batch)
        outcome = delivery.deliver(batch, refuse_mismatches=final)
        for ref, why in outcome.mismatched:
            self._suspects[ref.uid] = why
            run.log(
                f"message {ref.uid}: {why}; nothing delivered for it, the folder will be "
                f"listed again and it will be fetched once more if it is still there"
            )
        self._to_finish.extend(outcome.delivered)
        if len(self._to_finish) >= FINISH_EVERY:
            self._finish_on_source()

    # 5. finishing on the source -----------------------------------------------------------
    def _finish_on_source(self) -> None:
        """Delete (or, with keep, flag \\Seen) the recorded deliveries on the source.

        Every FINISH_EVERY messages and at the end of the folder rather than per batch
        (fewer round trips); safe because every one of them is recorded already: a run that
        dies first leaves them on the server, and the next run deletes them unfetched.
        """
        done, self._to_finish = self._to_finish, []
        if not done:
            return
        run = self.run
        if run.options.keep:
            run.source.mark_seen(done)
        else:
            self._off_the_source(done)
            run.counts.deleted += len(done)

    def _off_the_source(self, refs: list[MessageRef]) -> None:
        """Delete recorded messages on the source, or move them to ``move_to`` (made if
        missing, once a run)."""
        run = self.run
        target = run.options.move_to
        if not target:
            run.source.delete(refs)
            return
        if not run.move_target_ready:
            run.source.ensure_folder(target)
            run.move_target_ready = True
        run.source.move(refs, target)

    # 6. the second look -------------------------------------------------------------------
    def _look_again(self, delivery: BatchDelivery) -> None:
        """IMAP: list the folder afresh; fetch each suspect still there once more."""
        suspects, run = self._suspects, self.run
        if not suspects or run.stop.is_set():
            return
        listing = run.source.select(self.folder)  # a fresh view: expunges elsewhere show
        present = {ref.uid: ref for ref in listing.messages if ref.uid in suspects}
        for uid, why in suspects.items():
            if uid not in present:
                run.log(
                    f"message {uid} is no longer on the server (expunged by another client): "
                    f"what the server sent for it ({why}) was not delivered"
                )
        again = [present[uid] for uid in suspects if uid in present]
        if again:
            self._deliver(delivery, again)  # a second mismatch is a refusal
            self._finish_on_source()

    # 7. records ---------------------------------------------------------------------------
    def _forget_gone(self, listed: Listed) -> None:
        if not listed.listing.stable_uids:
            return
        known = listed.known
        on_server = {ref.uid for ref in listed.listing.messages}
        gone = sorted((known.delivered | known.refused) - on_server)
        if gone:
            deps = self.run.deps
            with deps.db.begin() as conn:
                deps.records.prune(conn, self.run.account.id, self.folder, listed.uidvalidity, gone)

    def _note_quiet(self, before: QuietFolder | None, listing: FolderListing, idle: bool) -> None:
        """Remember the folder's state if this poll found nothing to do; else forget it."""
        run = self.run
        after = None
        if idle and listing.state is not None and not run.stop.is_set():
            after = QuietFolder(listing.state, options_key(run.options), time.time())
        if after is None and before is None:
            return
        with run.deps.db.begin() as conn:
            run.deps.folders.set_quiet(conn, run.account.id, self.folder, after)
