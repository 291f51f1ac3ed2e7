"""Background upkeep of a running service, one thread started by ``detector serve`` (or a test):

* reload the model when what ``model`` (e.g. ``models/current``) names changes; a refused model is
  logged once and the old one keeps serving;
* pick up writes another process made to the store file (``detector decisions add --store ...``);
* prune ended decisions and idle clients' observations.

The clock is passed in, like everywhere under ``api``.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

from detector.lifecycle import signature
from detector.service import Service

log = logging.getLogger("detector.upkeep")
IDLE_OBSERVATIONS = 3600.0  # forget a client's latest score after an hour without traffic


class Upkeep(threading.Thread):
    def __init__(self, service: Service, clock: Callable[[], float], interval: float) -> None:
        super().__init__(name="detector-upkeep", daemon=True)
        self.service = service
        self.clock = clock
        self.interval = interval
        self._stop_event = threading.Event()
        self._refused: tuple | None = None

    def run_once(self) -> str | None:
        """One round; returns what happened to the model (``reloaded VERSION`` / ``refused: ...``) if anything."""
        service = self.service
        outcome = None
        if service.model_changed():
            seen = signature(service.model_path)
            if seen is not None and seen != self._refused:
                try:
                    old, new = service.reload_model()
                    outcome = f"reloaded {new}"
                    log.warning("model reloaded: %s -> %s", old, new)
                    self._refused = None
                except Exception as exc:  # ModelSchemaError, a half-written artifact, ...: keep serving
                    self._refused = seen
                    outcome = f"refused: {exc}"
                    log.error("model not reloaded, still serving %s: %s", service.version, exc)
        now = self.clock()
        service.store.sync()
        service.store.prune(now)
        service.store.evict(now - IDLE_OBSERVATIONS)
        return outcome

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            try:
                self.run_once()
            except Exception:
                log.exception("upkeep failed; retrying in %s s", self.interval)

    def stop(self) -> None:
        self._stop_event.set()
