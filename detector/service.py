"""The running service's parts, built once from the settings and shared by the API, the CLI and the feeds.

``Service`` owns the model, the pipeline (features -> model -> policy -> store), the store, and the
lock that serialises pipeline pushes from several sources and model swaps. It reads no clock: feeds
push events that carry their own event time, and a timer for scoring metrics is handed in by the API.

Two things happen here on top of ``Pipeline``:

* after each scoring tick, verdicts the policy keeps extending (no verdict change, a later ``until``)
  are passed to the store, which renews the client's decision when it is half spent, so a client that
  keeps offending stays blocked at the gateway for as long as the policy says;
* ``reload_model`` swaps the model inside the running pipeline (feature state and policy states stay;
  the thresholds follow the new model, read again for ``policy.throttle_fpr``/``block_fpr`` if set). A
  model that does not load (``ModelSchemaError``, missing files) or cannot serve those targets
  (``ValueError``) raises and the old one keeps serving.

And, for live ingestion (issue 5):

* ``advance(event_time)`` closes ticks when traffic pauses (the ingest consumer estimates event time from
  the wall clock it is given) and lets verdicts lapse on time;
* state stays bounded: every ``EVICT_EVERY`` seconds of event time idle clients are evicted from the
  feature stream and lapsed policy states forgotten; the feature stream tracks at most
  ``features.max_clients`` clients; the store keeps the latest observation of at most
  ``store.max_observations`` clients (the least recently scored go first).
"""

from __future__ import annotations

import math
import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

from detector.config import Settings
from detector.features.stream import FeatureFrame, FeatureStream
from detector.lifecycle import signature
from detector.model import AnomalyModel, load_artifact
from detector.pipeline import Pipeline
from detector.records import IngestStats, Verdict
from detector.store import MemoryStore, Store, store_from_settings


@dataclass
class ScoringStats:
    """Scoring ticks so far: how many, over how many client rows, in how many seconds."""

    ticks: int = 0
    rows: int = 0
    seconds: float = 0.0


EVICT_EVERY = 30.0  # seconds of event time between evictions of idle clients


@dataclass
class ServicePipeline(Pipeline):
    """The live pipeline: times each tick, passes the policy's silent extensions to the store, and keeps
    its state bounded (idle clients evicted, observations capped at ``max_observations``)."""

    timer: Callable[[], float] | None = None
    on_tick: list[Callable[[float, int], None]] = field(default_factory=list)
    max_observations: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.scoring = ScoringStats()
        self._observed: deque[tuple[float, int]] = deque()  # (tick, clients scored) of observations kept
        self._observed_rows = 0
        self._next_eviction = -math.inf
        self.evicted_observations = 0

    def score_frame(self, frame: FeatureFrame) -> list[Verdict]:
        started = self.timer() if self.timer is not None else 0.0
        changes = super().score_frame(frame)
        if self.store is not None:
            self.store.apply(self.standing(frame.at))
        if self.timer is not None:
            seconds = self.timer() - started
            self.scoring.seconds += seconds
            for hook in self.on_tick:
                hook(seconds, len(frame))
        self.scoring.ticks += 1
        self.scoring.rows += len(frame)
        self._cap_observations(frame)
        return changes

    def push(self, events: pd.DataFrame) -> list[Verdict]:
        changes = super().push(events)
        self._evict_idle()
        return changes

    def advance(self, event_time: float) -> list[Verdict]:
        changes = super().advance(event_time)
        self._evict_idle()
        return changes

    def _evict_idle(self) -> None:
        """Every ``EVICT_EVERY`` seconds of event time: forget idle clients' feature state and lapsed policy
        states. Runs between pushes, never while a push is closing ticks (codes are renumbered)."""
        at = self.stream.watermark
        if at >= self._next_eviction and math.isfinite(at):
            self._next_eviction = at + EVICT_EVERY
            self.stream.evict_idle()
            self.policy.forget(at)

    def _cap_observations(self, frame: FeatureFrame) -> None:
        """Keep at most ``max_observations`` observations in the store.

        Observations are counted per tick (an upper bound: a client scored at two ticks counts twice), and
        when they pass the cap the oldest ticks' are evicted down to 90 % of it, so the store's O(n) sweep
        runs once per tenth of the cap, not once per tick."""
        cap = self.max_observations
        if cap is None or self.store is None or not len(frame):
            return
        self._observed.append((frame.at, len(frame)))
        self._observed_rows += len(frame)
        if self._observed_rows <= cap:
            return
        while self._observed_rows > 0.9 * cap and len(self._observed) > 1:
            self._observed_rows -= self._observed.popleft()[1]
        self.evicted_observations += self.store.evict(self._observed[0][0])

    def standing(self, at: float) -> list[Verdict]:
        """Every throttle / block the policy holds at ``at``, with its current ``until``."""
        policy = self.policy
        return [Verdict(client, s.action, s.score, at, until=s.until, reasons=s.reasons,
                        model_version=policy.model_version, simulated=policy.config.shadow, offences=s.offences)
                for client, s in list(policy.states.items()) if s.active(at)]


@dataclass
class Service:
    settings: Settings
    model: AnomalyModel
    card: dict
    store: Store = field(default_factory=MemoryStore)

    def __post_init__(self) -> None:
        self.pipeline = ServicePipeline(
            self.model, self.version, self.settings.policy.to_config(), store=self.store,
            stream=FeatureStream.configured(self.settings.features, live=True),
            max_observations=self.settings.store.max_observations,
        )
        self.stats = IngestStats()
        self.model_path = Path(self.settings.model)
        self.model_signature = signature(self.model_path)
        self.reloads: Counter[str] = Counter()
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, store: Store | None = None) -> Service:
        model, card = load_artifact(settings.model)
        return cls(settings, model, card, store_from_settings(settings) if store is None else store)

    @property
    def version(self) -> str:
        return str(self.card.get("version", ""))

    @property
    def thresholds(self):
        return self.pipeline.policy.thresholds

    @property
    def scoring(self) -> ScoringStats:
        return self.pipeline.scoring

    def ingest(self, events: pd.DataFrame, stats: IngestStats | None = None) -> list[Verdict]:
        """Push one parsed batch through the pipeline (thread-safe)."""
        with self._lock:
            if stats is not None:
                self.stats = self.stats + stats
            return self.pipeline.push(events)

    @property
    def newest(self) -> float:
        """The latest event time the pipeline has seen (or been advanced to); -inf before any event."""
        stream = self.pipeline.stream
        return stream.watermark + stream.lateness

    def advance(self, event_time: float) -> list[Verdict]:
        """Traffic paused: close the ticks event time ``event_time`` closes, and let verdicts whose TTL lapsed
        by then turn back to allow (thread-safe). ``event_time`` is the caller's estimate (see feeds)."""
        with self._lock:
            pipeline = self.pipeline
            changes = pipeline.advance(event_time)
            expired = pipeline.policy.expire(pipeline.stream.watermark)
            if expired and self.store is not None:
                self.store.apply(expired)
            return changes + expired

    def reload_model(self, path: str | Path | None = None) -> tuple[str, str]:
        """Load the artifact at ``path`` (default: the configured one, e.g. ``models/current``) and swap it
        in; returns (old version, new version). Raises ``ModelSchemaError`` / ``FileNotFoundError`` /
        ``ValueError`` (cannot serve the configured false-positive targets) and keeps the old model when the
        new one cannot serve."""
        source = Path(path) if path is not None else self.model_path
        seen = signature(source)
        try:
            model, card = load_artifact(source)
            thresholds = self.pipeline.thresholds_for(model)
        except Exception:
            self.reloads["refused"] += 1
            raise
        with self._lock:
            old = self.version
            self.model, self.card = model, card
            pipeline = self.pipeline
            pipeline.model, pipeline.model_version = model, self.version
            pipeline.policy.thresholds = thresholds
            pipeline.policy.model_version = self.version
            if path is None:
                self.model_signature = seen
            self.reloads["ok"] += 1
        return old, self.version

    def model_changed(self) -> bool:
        """True if what the configured model path names has changed since it was loaded."""
        return signature(self.model_path) != self.model_signature

    def ready(self) -> tuple[bool, str]:
        """Readiness: a model is loaded and the store answers."""
        if self.model is None:
            return False, "no model"
        if not self.store.ping():
            return False, "store unreachable"
        return True, "ready"
