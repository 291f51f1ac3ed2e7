"""The running service's parts, built once from the settings and shared by the API and the live feed.

``Service`` owns the model, the pipeline (features -> model -> policy -> store) and the store, and the
lock that serialises pipeline pushes from several sources. It reads no clock: feeds push events that
carry their own event time.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pandas as pd

from detector.config import Settings
from detector.features.stream import FeatureStream
from detector.model import AnomalyModel, load_artifact
from detector.pipeline import Pipeline
from detector.records import IngestStats, Verdict
from detector.store.memory import MemoryStore


@dataclass
class Service:
    settings: Settings
    model: AnomalyModel
    card: dict
    store: MemoryStore = field(default_factory=MemoryStore)

    def __post_init__(self) -> None:
        self.pipeline = Pipeline(
            self.model, self.version, self.settings.policy.to_config(), store=self.store,
            stream=FeatureStream(tick=self.settings.features.tick, lateness=self.settings.features.lateness),
        )
        self.stats = IngestStats()
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, store: MemoryStore | None = None) -> Service:
        model, card = load_artifact(settings.model)
        return cls(settings, model, card, MemoryStore() if store is None else store)

    @property
    def version(self) -> str:
        return str(self.card.get("version", ""))

    @property
    def thresholds(self):
        return self.pipeline.policy.thresholds

    def ingest(self, events: pd.DataFrame, stats: IngestStats | None = None) -> list[Verdict]:
        """Push one parsed batch through the pipeline (thread-safe)."""
        with self._lock:
            if stats is not None:
                self.stats = self.stats + stats
            return self.pipeline.push(events)
