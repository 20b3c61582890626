"""Recognising messages by fingerprint: after a folder was rebuilt, and under reused ids.

Two questions a poll asks its records, answered by the header section and size of what
the server lists now (``fingerprint.py``):

- ``recognise``: after a UIDVALIDITY change (or POP3 UIDLs renumbered), which of the
  listed messages were delivered already under their old ids?
- ``check_known``: is the message listed under a unique-id mailhaul delivered earlier
  really that message? A server that resets UIDNEXT after EXPUNGE without changing
  UIDVALIDITY, or whose UIDLs are message numbers, gives new mail an old id. Before such
  a message is deleted as "delivered earlier", and whenever its listed size differs from
  the size recorded at delivery, its header is fetched and compared with the recorded
  fingerprint. A different message is new mail (its old record is forgotten); one whose
  header the server does not send is left on the server, never deleted. A POP3 server
  without ``TOP`` is asked with ``RETR``, read up to the end of the header section.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from mailhaul.adapters.db.records import DeliveredRecord
from mailhaul.domain.errors import UnsupportedByServer
from mailhaul.domain.fingerprint import MAX_HEADER, fingerprint, header_end, matches
from mailhaul.domain.messages import KnownMessages, MessageRef
from mailhaul.domain.options import Protocol
from mailhaul.domain.planning import FetchPlan
from mailhaul.domain.ports import MailSource
from mailhaul.services.poll_run import PollRun


@dataclass(frozen=True)
class FolderScope:
    """One folder of one poll run."""

    run: PollRun
    folder: str


def reconcile_uidvalidity(
    scope: FolderScope, listed: Sequence[MessageRef], old: int, new: int
) -> None:
    """After a UIDVALIDITY change, recognise delivered messages by fingerprint."""
    run, folder = scope.run, scope.folder
    deps = run.deps
    matched = recognise(scope, listed, new)
    with deps.db.begin() as conn:
        deps.records.prune(conn, run.account.id, folder, new, [])
        deps.folders.set_folder_uidvalidity(conn, run.account.id, folder, new)
    run.log(
        f"{folder}: UIDVALIDITY changed from {old} to {new} (the server rebuilt the "
        f"folder); {matched} of {len(listed)} message(s) recognised as already "
        f"delivered by their fingerprint, the others are treated as new"
    )


def renamed_candidates(
    run: PollRun, listed: Sequence[MessageRef], known: KnownMessages
) -> list[MessageRef]:
    """POP3 with keep: new UIDLs that may be kept mail under a new name.

    A server may give kept messages new UIDLs (Courier renumbers, GNU Mailutils derives
    them from the message and the time it rewrote the mailbox): all of them, or only some.
    When delivered UIDLs went missing from the listing, every new one is a candidate.
    """
    if run.account.spec.protocol is not Protocol.POP3 or not run.options.keep:
        return []
    on_server = {ref.uid for ref in listed}
    if not known.delivered - on_server:
        return []
    return [
        ref for ref in listed if ref.uid not in known.delivered and ref.uid not in known.refused
    ]


def recognise(scope: FolderScope, candidates: Sequence[MessageRef], uidvalidity: int) -> int:
    """Record as delivered the candidates whose fingerprint matches a past delivery."""
    run, folder = scope.run, scope.folder
    db, records, account_id = run.deps.db, run.deps.records, run.account.id
    with db.begin() as conn:
        known_prints = records.fingerprints(conn, account_id, folder)
        known = records.known(conn, account_id, folder, uidvalidity)
    # Idempotent: a run that died half-way through this already recorded some.
    recorded = known.delivered | known.refused
    candidates = [ref for ref in candidates if ref.uid not in recorded]
    matched: list[DeliveredRecord] = []
    if known_prints and candidates:
        for ref, header in _headers(run.source, candidates):
            found = matches(header, ref.size, known_prints)
            if found is not None:
                matched.append(DeliveredRecord(ref.uid, fingerprint(header, ref.size), ref.size))
    with db.begin() as conn:
        records.add_delivered(
            conn, account_id, folder, uidvalidity, run.destination, matched, time.time()
        )
    return len(matched)


@dataclass(frozen=True)
class KnownCheck:
    """What ``check_known`` found: the records to plan with, and messages not to delete."""

    known: KnownMessages
    reused: tuple[str, ...] = ()
    held: frozenset[str] = frozenset()


def _suspects(listed: Sequence[MessageRef], known: KnownMessages, plan: FetchPlan) -> list[str]:
    deleting = {ref.uid for ref in plan.delete_now if ref.uid in known.delivered}
    suspects = []
    for ref in listed:
        if ref.uid not in known.delivered:
            continue
        recorded = known.sizes.get(ref.uid, 0)
        if ref.uid in deleting or (ref.size and recorded and ref.size != recorded):
            suspects.append(ref.uid)
    return suspects


def check_known(
    scope: FolderScope,
    listed: Sequence[MessageRef],
    known: KnownMessages,
    plan: FetchPlan,
    uidvalidity: int,
) -> KnownCheck:
    """Check that known ids about to be deleted (or listed with a new size) are the same mail."""
    suspects = _suspects(listed, known, plan)
    if not suspects:
        return KnownCheck(known)
    run, folder = scope.run, scope.folder
    deps, account_id = run.deps, run.account.id
    with deps.db.read() as conn:
        recorded = deps.records.delivered_prints(conn, account_id, folder, uidvalidity, suspects)
    by_uid = {ref.uid: ref for ref in listed if ref.uid in recorded}
    checkable = [ref for uid, ref in by_uid.items() if recorded[uid].fingerprint]
    headers = {ref.uid: (ref, head) for ref, head in _headers(run.source, checkable)}
    reused: list[str] = []
    held: set[str] = set()
    for uid, ref in by_uid.items():
        record = recorded[uid]
        if not record.fingerprint:  # imported state: the size is all there is to compare
            if ref.size and record.size and ref.size != record.size:
                held.add(uid)
            continue
        if uid not in headers:
            held.add(uid)  # no header came: leave it on the server
            continue
        listed_ref, head = headers[uid]
        if not _same_message(head, listed_ref.size or record.size, record):
            reused.append(uid)
    if held:
        run.log(
            f"{folder}: {len(held)} message(s) listed under an id delivered earlier "
            f"could not be checked against what was delivered (the server sent no header, "
            f"or only a size that differs was recorded): left on the server"
        )
    if not reused:
        return KnownCheck(known, held=frozenset(held))
    renamed = _delivered_elsewhere(scope, {uid: headers[uid] for uid in reused}, uidvalidity)
    reused = [uid for uid in reused if uid not in renamed]
    if renamed:
        run.log(
            f"{folder}: {len(renamed)} message(s) delivered earlier are listed under an id "
            f"another delivered message had (the server renumbered them): left as delivered"
        )
    if not reused:
        return KnownCheck(known, held=frozenset(held))
    with deps.db.begin() as conn:
        deps.records.forget(conn, account_id, folder, uidvalidity, reused)
    run.log(
        f"{folder}: {len(reused)} message(s) are listed under an id that earlier "
        f"belonged to another, already delivered message (the server reused the id): "
        f"treated as new mail"
    )
    remaining = known.delivered - set(reused)
    sizes = {uid: size for uid, size in known.sizes.items() if uid in remaining}
    known = dataclasses.replace(known, delivered=remaining, sizes=sizes)
    return KnownCheck(known, tuple(reused), frozenset(held))


def _delivered_elsewhere(
    scope: FolderScope, headers: dict[str, tuple[MessageRef, bytes]], uidvalidity: int
) -> set[str]:
    """Of ids whose message is not the one delivered under them, those whose message was
    delivered under another id (its record is moved to this id, with its fingerprint)."""
    run, folder = scope.run, scope.folder
    deps, account_id = run.deps, run.account.id
    with deps.db.read() as conn:
        prints = deps.records.fingerprints(conn, account_id, folder)
    moved: list[DeliveredRecord] = []
    for uid, (ref, head) in headers.items():
        if matches(head, ref.size, prints) is not None:
            moved.append(DeliveredRecord(uid, fingerprint(head, ref.size), ref.size))
    if moved:
        uids = [record.uid for record in moved]
        with deps.db.begin() as conn:
            deps.records.forget(conn, account_id, folder, uidvalidity, uids)
            deps.records.add_delivered(
                conn, account_id, folder, uidvalidity, run.destination, moved, time.time()
            )
    return {record.uid for record in moved}


def _headers(source: MailSource, refs: Sequence[MessageRef]) -> Iterator[tuple[MessageRef, bytes]]:
    """Each message's header section: ``fetch_headers``, or the start of its body where the
    server has no way to send headers alone (POP3 without TOP)."""
    if not refs:
        return
    done: set[str] = set()
    try:
        for ref, head in source.fetch_headers(refs):
            done.add(ref.uid)
            yield ref, head
        return
    except UnsupportedByServer:
        refs = [ref for ref in refs if ref.uid not in done]
    for ref, chunks in source.fetch(refs):
        start = bytearray()
        for chunk in chunks:
            start += chunk
            if len(start) >= MAX_HEADER or header_end(start) is not None:
                break  # the source drains the rest of the message
        yield ref, bytes(start)


def _same_message(head: bytes, size: int, record: DeliveredRecord) -> bool:
    return matches(head, size, {record.fingerprint}) is not None
