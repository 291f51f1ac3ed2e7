"""Live feeds: threads that read a source and push its batches into the running ``Service``.

A feed owns no logic of its own: parsing is ``ingest``, everything after is ``Service.ingest``. The
clock and sleep are passed in by the caller (the CLI), so feeds run the same under test.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Callable, Iterable

from detector.ingest.formats import ParsedBatch, detect_format, parse_lines
from detector.ingest.sources import follow
from detector.records import Verdict
from detector.service import Service

log = logging.getLogger("detector.feeds")


class Feed(threading.Thread):
    """Push every batch of ``batches`` into ``service`` until the batches end or ``stop`` is set."""

    def __init__(self, name: str, service: Service, batches: Callable[[threading.Event], Iterable[ParsedBatch]],
                 on_changes: Callable[[list[Verdict]], None] | None = None):
        super().__init__(name=f"feed:{name}", daemon=True)
        self.service = service
        self.batches = batches
        self.on_changes = on_changes
        self.stop_event = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for batch in self.batches(self.stop_event):
                changes = self.service.ingest(batch.events, batch.stats)
                if changes and self.on_changes is not None:
                    self.on_changes(changes)
                if self.stop_event.is_set():
                    break
        except Exception as exc:  # surfaced in logs and on the feed object; the service keeps serving
            self.error = exc
            log.exception("feed %s failed", self.name)

    def stop(self) -> None:
        self.stop_event.set()


def tail_batches(path: str | Path, fmt: str, service: Service, sleep: Callable[[float], None]):
    """Batches from following ``path`` (format detected on the first lines when ``auto``)."""
    ingest = service.settings.ingest

    def gen(stop: threading.Event) -> Iterable[ParsedBatch]:
        chosen = fmt
        for lines in follow(path, stop.is_set, sleep):
            if chosen == "auto":
                chosen = detect_format(lines[:50])
            yield parse_lines(lines, chosen, mapping=ingest.mapping(), key=ingest.client_key())

    return gen
