"""When each watch next needs the push watcher's loop, kept so that a turn of the loop costs
what is due, not a walk over every watch: a heap of (time, watch) with stale entries skipped,
and the line of connections waiting for the connect rate.

A watch's entry is live while its time is ``Watch.due``; arming it earlier pushes a new one
(the later one goes stale), arming it later does nothing (the earlier one fires, finds
nothing due, and is armed again). So the loop arms after anything that moves a watch's
timers, as often as it likes.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from collections.abc import Iterator

from mailhaul.services.push_watch import Watch


class Timers:
    """The watches' next times (a heap) and the line of those due to connect."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Watch]] = []
        self._order = itertools.count()  # equal times: first armed, first out
        self._line: deque[Watch] = deque()

    def arm(self, watch: Watch) -> None:
        """Make sure the loop looks at ``watch`` by its next time (``Watch.wake_at``)."""
        when = watch.wake_at()
        if when < watch.due:
            watch.due = when
            heapq.heappush(self._heap, (when, next(self._order), watch))

    def due(self, now: float) -> Iterator[Watch]:
        """The watches whose time has come (each once; arm them again after handling)."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            when, _, watch = heapq.heappop(heap)
            if watch.due != when or watch.generation < 0:
                continue  # stale: armed earlier since, or dropped
            watch.due = math.inf
            yield watch

    def queue(self, watch: Watch) -> None:
        """Into the line of connections to open (as the connect rate allows)."""
        if not watch.queued:
            watch.queued = True
            self._line.append(watch)

    def waiting(self) -> bool:
        """Whether connections wait in the line."""
        return bool(self._line)

    def next_in_line(self) -> Watch | None:
        """The first watch of the line (taken out of it), or None."""
        if not self._line:
            return None
        watch = self._line.popleft()
        watch.queued = False
        return watch

    def soonest(self) -> float:
        """The earliest time in the heap (it may be a stale entry: early, never late)."""
        return self._heap[0][0] if self._heap else math.inf

    def __len__(self) -> int:
        return len(self._heap)
