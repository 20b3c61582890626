"""The retrieval plan: which listed messages to fetch, to leave, and to delete."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from mailhaul.domain.messages import KnownMessages, MessageRef
from mailhaul.domain.options import RetrievalOptions


@dataclass(frozen=True)
class FetchPlan:
    """What one poll of one folder will do.

    ``fetch``: new messages to deliver (each then deleted unless keep, else flagged \\Seen).
    ``delete_now``: already delivered (or old, with flush) messages to delete before fetching.
    ``too_large``: new messages over the size limit, left on the server.
    ``old``: messages left alone because they are old (seen or already delivered, kept).
    ``refused``: messages the backend refused earlier, left alone until retried.
    ``ambiguous``: messages listed under a unique-id the server also gives another message
    (a broken UIDL listing): neither can be told apart from the other, so both are left
    on the server, neither fetched nor deleted, for this run.
    """

    fetch: tuple[MessageRef, ...] = ()
    delete_now: tuple[MessageRef, ...] = ()
    too_large: tuple[MessageRef, ...] = ()
    old: tuple[MessageRef, ...] = ()
    refused: tuple[MessageRef, ...] = field(default=())
    ambiguous: tuple[MessageRef, ...] = field(default=())
    expired: tuple[MessageRef, ...] = field(default=())
    """Of ``delete_now``: kept mail whose ``delete_after_days`` have passed."""


def plan_fetch(
    listing: Sequence[MessageRef],
    known: KnownMessages,
    options: RetrievalOptions,
    now: float | None = None,
) -> FetchPlan:
    """Decide, for one folder's listing, what to fetch and what to delete.

    Rules (fetchmail's names; no combination ever re-delivers a message):
    - delivered earlier and still listed: deleted unless ``keep``; with ``keep`` and
      ``flush`` deleted too; with ``keep`` and ``delete_after_days``, deleted once that
      many days have passed since its delivery (``now``); otherwise left.
    - refused earlier: left alone.
    - on the server before the first sync (``new_only``, ``since``): left alone.
    - \\Seen at listing and not ``fetchall``: old; deleted with ``flush``, else left.
    - larger than ``max_size``: left, reported.
    - listed more than once (two messages, one unique-id): left alone, all of them.
    - otherwise: fetched.
    """
    fetch: list[MessageRef] = []
    delete_now: list[MessageRef] = []
    too_large: list[MessageRef] = []
    old: list[MessageRef] = []
    refused: list[MessageRef] = []
    ambiguous: list[MessageRef] = []
    expired: list[MessageRef] = []
    listed = Counter(ref.uid for ref in listing)
    keep_until = _keep_until(options, now)
    for ref in listing:
        if listed[ref.uid] > 1:
            ambiguous.append(ref)
        elif ref.uid in known.delivered:
            if not options.keep or options.flush:
                delete_now.append(ref)
            elif keep_until is not None and known.delivered_at.get(ref.uid, now or 0) <= keep_until:
                delete_now.append(ref)
                expired.append(ref)
            else:
                old.append(ref)
        elif ref.uid in known.refused:
            refused.append(ref)
        elif ref.uid in known.baseline:
            old.append(ref)  # there before the first sync: never fetched, never deleted
        elif ref.seen and not options.fetchall:
            (delete_now if options.flush else old).append(ref)
        elif ref.size > options.max_size:
            too_large.append(ref)
        else:
            fetch.append(ref)
    return FetchPlan(
        fetch=tuple(fetch),
        delete_now=tuple(delete_now),
        too_large=tuple(too_large),
        old=tuple(old),
        refused=tuple(refused),
        ambiguous=tuple(ambiguous),
        expired=tuple(expired),
    )


DAY = 86400.0


def _keep_until(options: RetrievalOptions, now: float | None) -> float | None:
    """Mail delivered at or before this time has been kept long enough (None: forever)."""
    if not options.keep or options.delete_after_days is None or now is None:
        return None
    return now - options.delete_after_days * DAY


@dataclass
class RunBudget:
    """What a run may still fetch under ``max_messages_per_run``/``max_bytes_per_run``
    (None: no limit), across its folders; ``reached`` once it cut a plan short."""

    messages: int | None = None
    bytes: int | None = None
    reached: bool = False
    started: bool = False

    def take(self, refs: Sequence[MessageRef]) -> list[MessageRef]:
        """The first of ``refs`` that fit; the rest waits for the next run. One message
        always fits into a run that has fetched nothing yet, however large."""
        taken: list[MessageRef] = []
        for ref in refs:
            if self.messages is not None and self.messages <= 0:
                break
            if self.bytes is not None and ref.size > self.bytes and self.started:
                break
            taken.append(ref)
            self.started = True
            if self.messages is not None:
                self.messages -= 1
            if self.bytes is not None:
                self.bytes = max(0, self.bytes - ref.size)
        if len(taken) < len(refs):
            self.reached = True
        return taken


def batches(refs: Sequence[MessageRef], max_count: int, max_bytes: int) -> list[list[MessageRef]]:
    """Split ``refs`` into batches of at most ``max_count`` messages and about ``max_bytes``.

    A single message larger than ``max_bytes`` forms a batch of its own.
    """
    result: list[list[MessageRef]] = []
    current: list[MessageRef] = []
    size = 0
    for ref in refs:
        if current and (len(current) >= max_count or size + ref.size > max_bytes):
            result.append(current)
            current, size = [], 0
        current.append(ref)
        size += ref.size
    if current:
        result.append(current)
    return result
