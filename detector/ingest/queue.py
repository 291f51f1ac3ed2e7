"""The bounded queue between the sources (tail, stdin, HTTP) and the one thread that runs the pipeline.

Sources parse their lines into batches and put them here; the consumer (``detector.feeds.Ingestor``)
takes them off, pushes them through ``Service.ingest`` and then calls each batch's ``on_done`` (a tail
source commits its file offset there; an HTTP request is answered there). The queue holds at most
``capacity`` events (a batch is admitted while fewer are queued, so one batch may overshoot):

* ``offer`` never waits: a full queue refuses the batch (HTTP answers 503 + ``Retry-After``);
* ``put`` waits until there is room (a tail or stdin source simply reads on later).

Nothing is dropped silently. Per source, under one lock, so every snapshot adds up exactly:

* ``received`` = ``parsed`` + ``malformed`` + ``skipped`` (lines; malformed and skipped ones are also
  counted by reason in ``Service.stats``);
* ``parsed`` = ``queued`` + ``processed`` + ``failed`` + ``rejected_full`` (events).

A batch a stopping source could not queue is not counted at all (a tail reads it again after a restart).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field, fields, replace
from typing import Callable

from detector.ingest.formats import ParsedBatch


@dataclass(frozen=True)
class SourceCounts:
    """Lines and events of one source so far (see the module docstring for how they add up)."""

    received: int = 0  # lines read
    parsed: int = 0  # lines that became events
    malformed: int = 0  # lines the parser rejected
    skipped: int = 0  # well-formed records of no request's start or end (Envoy's periodic records)
    rejected_full: int = 0  # events refused because the queue was full
    queued: int = 0  # events waiting now
    processed: int = 0  # events pushed through the pipeline
    failed: int = 0  # events whose pipeline push raised (logged)

    def add(self, **deltas: int) -> SourceCounts:
        return replace(self, **{k: getattr(self, k) + v for k, v in deltas.items()})

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class Item:
    """One parsed batch on its way to the pipeline, and what to do once it went through."""

    source: str
    batch: ParsedBatch
    on_done: list[Callable[[bool], None]] = field(default_factory=list)  # called with failed=True/False

    @property
    def events(self) -> int:
        return len(self.batch.events)


class IngestQueue:
    """See the module docstring. ``capacity``: events queued at most (before the last admitted batch)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("queue capacity must be at least 1")
        self.capacity = capacity
        self._items: deque[Item] = deque()
        self._depth = 0
        self._cond = threading.Condition()
        self._counts: dict[str, SourceCounts] = {}

    @property
    def depth(self) -> int:
        """Events queued now."""
        return self._depth

    def full(self) -> bool:
        return self._depth >= self.capacity

    def _count(self, item: Item, **extra: int) -> None:
        stats = item.batch.stats
        old = self._counts.get(item.source, SourceCounts())
        self._counts[item.source] = old.add(received=stats.read, parsed=stats.parsed, malformed=stats.rejected,
                                            skipped=stats.passed, **extra)

    def _admit(self, item: Item) -> None:
        self._count(item, queued=item.events)
        self._items.append(item)
        self._depth += item.events
        self._cond.notify_all()

    def offer(self, item: Item) -> bool:
        """Queue ``item`` if there is room now; else count its events as ``rejected_full`` and return False."""
        with self._cond:
            if self._depth >= self.capacity and item.events:
                self._count(item, rejected_full=item.events)
                return False
            self._admit(item)
            return True

    def put(self, item: Item, stop: Callable[[], bool], wait: float = 0.1) -> bool:
        """Queue ``item``, waiting while the queue is full; False (nothing counted) if ``stop()`` first."""
        with self._cond:
            while self._depth >= self.capacity and item.events:
                if stop():
                    return False
                self._cond.wait(wait)
            self._admit(item)
            return True

    def take(self, max_events: int, timeout: float) -> list[Item]:
        """The oldest items, up to ``max_events`` events (at least one item); [] if none came within ``timeout``."""
        with self._cond:
            if not self._items:
                self._cond.wait(timeout)
            out: list[Item] = []
            n = 0
            while self._items and (not out or n + self._items[0].events <= max_events):
                item = self._items.popleft()
                out.append(item)
                n += item.events
            if out:
                self._cond.notify_all()  # room for waiting producers (their events still count until done)
            return out

    def done(self, items: list[Item], failed: bool = False) -> None:
        """Account for ``items`` having gone through the pipeline (or failed in it), then run their ``on_done``."""
        with self._cond:
            for item in items:
                n = item.events
                self._depth -= n
                old = self._counts[item.source]
                self._counts[item.source] = old.add(queued=-n, **({"failed": n} if failed else {"processed": n}))
            self._cond.notify_all()
        for item in items:
            for callback in item.on_done:
                callback(failed)

    def counts(self) -> dict[str, SourceCounts]:
        """A consistent snapshot of every source's counts."""
        with self._cond:
            return dict(self._counts)

    def empty(self) -> bool:
        with self._cond:
            return not self._items
