"""Live ingestion: sources put parsed batches on one bounded queue; one consumer pushes them into ``Service``.

```
tail FILE ... ─┐                                   ┌─ Service.ingest (features, model, policy, store)
stdin ─────────┼─► parse ─► IngestQueue (bounded) ─► Ingestor ──┤
POST /v1/ingest┘   (in the source's thread)          (one thread)└─ then each batch's on_done:
                                                                   commit the tail offset / answer the request
```

* ``Feed`` is a producer thread: it reads a source and puts its batches on the queue, waiting while the
  queue is full (a tail simply reads on later); HTTP ingest (``detector.api.ingest``) offers instead and
  answers 503 when the queue is full.
* ``Ingestor`` is the one consumer: it takes up to ``ingest.batch_lines`` events at a time, pushes them
  through ``Service.ingest``, then runs the batches' ``on_done``. When no line has come for
  ``features.idle_close`` wall seconds it closes ticks on the wall clock (``Service.advance``) with the
  event time estimated as the newest event seen plus the wall time since it was pushed, so verdicts do
  not wait for the next line. A line that then arrives more than ``features.lateness`` behind is late.
* ``Ingestion`` holds it all together for ``detector serve`` and ``create_app``.

The clock and sleep are passed in by the caller (the CLI, the API), never read here.
"""

from __future__ import annotations

import logging
import math
import threading
from pathlib import Path
from typing import Callable, Iterable, Iterator

import pandas as pd

from detector.config import Settings
from detector.ingest.formats import FormatError, ParsedBatch, detect_format, empty_events, parse_lines
from detector.ingest.offsets import OffsetBook, offsets_path_for, source_key
from detector.ingest.queue import IngestQueue, Item
from detector.ingest.sources import stream_chunks
from detector.ingest.tail import FileTailer
from detector.records import IngestStats, Verdict
from detector.service import Service

log = logging.getLogger("detector.feeds")

OnChanges = Callable[[list[Verdict]], None]


class Parser:
    """Lines of one source to a ``ParsedBatch``; with ``auto`` the format is detected on the first lines
    that allow it and then held. Lines no format can be detected from are counted ``unknown_format``."""

    def __init__(self, fmt: str, settings: Settings) -> None:
        self.fmt = fmt
        self.mapping = settings.ingest.mapping()
        self.key = settings.ingest.client_key()

    def __call__(self, lines: list[bytes]) -> ParsedBatch:
        if self.fmt == "auto":
            try:
                fmt = detect_format(lines[:200])
                if fmt == "jsonl" and self.mapping is None:
                    raise FormatError("JSON lines without nginx or Envoy field names and no ingest.jsonl mapping")
                self.fmt = fmt
            except FormatError:
                blank = sum(1 for x in lines if not x.strip())
                bad = {k: v for k, v in (("empty", blank), ("unknown_format", len(lines) - blank)) if v}
                return ParsedBatch(empty_events(), IngestStats(len(lines), 0, bad))
        return parse_lines(lines, self.fmt, mapping=self.mapping, key=self.key)


class Feed(threading.Thread):
    """Put every item of ``items(stop)`` on ``queue`` (waiting while it is full) until they end or ``stop()``."""

    def __init__(self, name: str, queue: IngestQueue, items: Callable[[threading.Event], Iterable[Item]]) -> None:
        super().__init__(name=f"feed:{name}", daemon=True)
        self.source = name
        self.queue = queue
        self.items = items
        self.stop_event = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for item in self.items(self.stop_event):
                if not self.queue.put(item, self.stop_event.is_set):
                    break
                if self.stop_event.is_set():
                    break
        except Exception as exc:  # surfaced in logs and on the feed object; the service keeps serving
            self.error = exc
            log.exception("feed %s failed", self.name)

    def stop(self) -> None:
        self.stop_event.set()


def tail_items(tailer: FileTailer, parser: Parser, book: OffsetBook, sleep: Callable[[float], None],
               poll: float = 0.2) -> Callable[[threading.Event], Iterator[Item]]:
    """Items from following a file (``tailer`` starts from the stored offset); each commits its position to
    ``book`` once the pipeline has processed it."""
    key = source_key(tailer.path)
    source = f"tail:{tailer.path}"

    def gen(stop: threading.Event) -> Iterator[Item]:
        for chunk in tailer.follow(stop.is_set, sleep, poll):
            position = chunk.position
            yield Item(source, parser(chunk.lines), [lambda failed, p=position: book.commit(key, p)])

    return gen


def stream_items(source: str, read: Callable[[int], bytes], parser: Parser,
                 max_lines: int = 5000) -> Callable[[threading.Event], Iterator[Item]]:
    """Items from a stream read as it arrives (standard input), until it ends."""
    def gen(stop: threading.Event) -> Iterator[Item]:
        for lines in stream_chunks(read, max_lines):
            yield Item(source, parser(lines))
    return gen


def batch_items(source: str, batches: Callable[[threading.Event], Iterable[ParsedBatch]]) -> Callable[[threading.Event], Iterator[Item]]:
    """Items from already parsed batches (the demo's simulated traffic)."""
    def gen(stop: threading.Event) -> Iterator[Item]:
        for batch in batches(stop):
            yield Item(source, batch)
    return gen


class Ingestor(threading.Thread):
    """The one consumer of the queue (see the module docstring)."""

    def __init__(self, service: Service, queue: IngestQueue, clock: Callable[[], float], *,
                 on_changes: OnChanges | None = None, batch_events: int = 5000, idle_close: float = 1.0,
                 poll: float = 0.2) -> None:
        super().__init__(name="detector-ingest", daemon=True)
        self.service = service
        self.queue = queue
        self.clock = clock
        self.on_changes = on_changes
        self.batch_events = batch_events
        self.idle_close = idle_close
        self.poll = poll
        self._stop_event = threading.Event()
        self._pushed_at: float | None = None  # wall time of the last push
        self._newest = -math.inf  # newest event time at that push
        self.pushes = 0
        self.advances = 0

    def run(self) -> None:
        while True:
            items = self.queue.take(self.batch_events, self.poll)
            try:
                if items:
                    self.process(items)
                elif self._stop_event.is_set():
                    return
                else:
                    self.idle()
            except Exception:  # e.g. printing verdicts to a closed stdout: keep consuming, never stall sources
                log.exception("ingest consumer step failed; going on")

    def process(self, items: list[Item]) -> None:
        """Push ``items`` through the pipeline as one batch, then run their ``on_done``."""
        batches = [i.batch for i in items]
        events = batches[0].events if len(batches) == 1 else pd.concat([b.events for b in batches], ignore_index=True)
        stats = sum((b.stats for b in batches[1:]), batches[0].stats)
        try:
            changes = self.service.ingest(events, stats)
        except Exception:  # counted as failed (and logged), never retried: a poison batch must not loop
            log.exception("pipeline push of %d events failed", len(events))
            self.queue.done(items, failed=True)
            return
        self.queue.done(items)
        self.pushes += 1
        if len(events):
            self._pushed_at = self.clock()
            self._newest = self.service.newest
        if changes and self.on_changes is not None:
            self.on_changes(changes)

    def idle(self) -> None:
        """Nothing came for a while: close ticks on the wall clock (see the module docstring)."""
        if self.idle_close <= 0 or self._pushed_at is None:
            return
        quiet = self.clock() - self._pushed_at
        if quiet < self.idle_close:
            return
        changes = self.service.advance(self._newest + quiet)
        self.advances += 1
        if changes and self.on_changes is not None:
            self.on_changes(changes)

    def stop(self, timeout: float = 10.0) -> None:
        """Process what is queued, then end (within ``timeout`` seconds)."""
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout)


class Ingestion:
    """The queue, its consumer, the feeds and the tail offsets of one running service.

    ``create_app`` makes one when it is not given one (started on the first ``POST /v1/ingest``); the CLI
    makes one with its sources and starts it.
    """

    def __init__(self, service: Service, clock: Callable[[], float], sleep: Callable[[float], None] | None = None,
                 on_changes: OnChanges | None = None) -> None:
        settings = service.settings
        ingest = settings.ingest
        self.service = service
        self.settings = settings
        self.sleep = sleep or (lambda s: threading.Event().wait(s))
        self.queue = IngestQueue(ingest.queue_events)
        self.book = OffsetBook(offsets_path_for(settings.store.path, ingest.offsets_path))
        self.ingestor = Ingestor(service, self.queue, clock, on_changes=on_changes, batch_events=ingest.batch_lines,
                                 idle_close=settings.features.idle_close, poll=min(ingest.poll_interval, 0.25))
        self.feeds: list[Feed] = []
        self.tailers: dict[str, FileTailer] = {}
        self._lock = threading.Lock()
        self._started = False
        self._stopped = False

    def parser(self, fmt: str | None = None) -> Parser:
        return Parser(fmt or self.settings.ingest.format, self.settings)

    def add_tail(self, path: str | Path, fmt: str | None = None) -> Feed:
        """Follow ``path`` from its stored offset (or ``ingest.tail_from`` without one)."""
        ingest = self.settings.ingest
        tailer = FileTailer(path, self.book.get(source_key(path)), from_end=ingest.tail_from == "end",
                            max_lines=ingest.batch_lines)
        feed = Feed(f"tail:{path}", self.queue, tail_items(tailer, self.parser(fmt), self.book, self.sleep,
                                                         ingest.poll_interval))
        self.tailers[feed.source] = tailer
        return self._add(feed)

    def add_stream(self, name: str, read: Callable[[int], bytes], fmt: str | None = None) -> Feed:
        return self._add(Feed(name, self.queue, stream_items(name, read, self.parser(fmt),
                                                             self.settings.ingest.batch_lines)))

    def add_batches(self, name: str, batches: Callable[[threading.Event], Iterable[ParsedBatch]]) -> Feed:
        return self._add(Feed(name, self.queue, batch_items(name, batches)))

    def _add(self, feed: Feed) -> Feed:
        with self._lock:
            self.feeds.append(feed)
            if self._started:
                feed.start()
        return feed

    def start(self) -> None:
        """Start the consumer and every feed (idempotent)."""
        with self._lock:
            if self._started or self._stopped:
                return
            self._started = True
            self.ingestor.start()
            for feed in self.feeds:
                feed.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the feeds, let the consumer process what is queued, write the offsets durably."""
        with self._lock:
            self._stopped = True
            started = self._started
        for feed in self.feeds:
            feed.stop()
        for feed in self.feeds:
            if feed.is_alive():
                feed.join(1.0)  # a feed blocked reading stdin is a daemon thread: leave it
        if started:
            self.ingestor.stop(timeout)
        self.book.close()
