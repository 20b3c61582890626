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


def plan_fetch(
    listing: Sequence[MessageRef], known: KnownMessages, options: RetrievalOptions
) -> FetchPlan:
    """Decide, for one folder's listing, what to fetch and what to delete.

    Rules (fetchmail's names; no combination ever re-delivers a message):
    - delivered earlier and still listed: deleted unless ``keep``; with ``keep`` and
      ``flush`` deleted too; otherwise left.
    - refused earlier: left alone.
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
    listed = Counter(ref.uid for ref in listing)
    for ref in listing:
        if listed[ref.uid] > 1:
            ambiguous.append(ref)
        elif ref.uid in known.delivered:
            if not options.keep or options.flush:
                delete_now.append(ref)
            else:
                old.append(ref)
        elif ref.uid in known.refused:
            refused.append(ref)
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
    )


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
