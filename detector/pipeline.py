"""The pipeline: ingest -> features -> model -> policy -> store, one code path for live and replay.

``Pipeline.push`` takes a batch of parsed events and returns the verdict changes it caused; the live
service calls it from its ingest loop, ``replay`` calls it for each chunk of an old log on the log's own
timestamps. ``training_rows`` runs the same feature stream to collect the rows a model is fitted on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import pandas as pd

from detector.features.stream import FeatureFrame, FeatureStream
from detector.ingest.formats import ClientKey, JsonlMapping
from detector.ingest.sources import read_batches
from detector.model import AnomalyModel
from detector.policy import Policy, PolicyConfig
from detector.records import IngestStats, Thresholds, Verdict
from detector.store.memory import MemoryStore


@dataclass
class Pipeline:
    """Features, model, policy and store wired together (see module docstring)."""

    model: AnomalyModel
    model_version: str = ""
    policy_config: PolicyConfig = field(default_factory=PolicyConfig)
    thresholds: Thresholds | None = None  # default: the model's calibrated thresholds
    store: MemoryStore | None = None
    stream: FeatureStream = field(default_factory=FeatureStream)
    explain_top: int = 3

    def __post_init__(self) -> None:
        self.policy = Policy(self.thresholds or self.model.thresholds_, self.policy_config, self.model_version)
        self.stats = IngestStats()
        self.scored_rows = 0

    def push(self, events: pd.DataFrame) -> list[Verdict]:
        """Feed one batch of events; return the verdict changes of every tick it closed."""
        return self._run(self.stream.push(events))

    def finish(self) -> list[Verdict]:
        """Close the remaining ticks (end of a replay)."""
        return self._run(self.stream.finish())

    def _run(self, frames: Iterator[FeatureFrame]) -> list[Verdict]:
        changes: list[Verdict] = []
        for frame in frames:
            changes.extend(self.score_frame(frame))
        return changes

    def score_frame(self, frame: FeatureFrame) -> list[Verdict]:
        """One ``score_samples`` call for every client of the tick, then the policy."""
        scores = self.model.score_samples(frame.raw)
        self.scored_rows += len(scores)

        def reasons(i: int) -> tuple[str, ...]:
            return tuple(text for _name, text in self.model.explain(frame.raw[i], self.explain_top))

        changes = self.policy.update(frame.at, frame.clients, scores, reasons)
        if self.store is not None:
            self.store.observe(frame.at, frame.clients, scores, frame.raw, frame.names)
            self.store.apply(changes)
        return changes


def replay(paths: Iterable[str | Path], pipeline: Pipeline, fmt: str = "auto", *,
           mapping: JsonlMapping | None = None, key: ClientKey | None = None,
           progress: Callable[[int, int], None] | None = None) -> Iterator[Verdict]:
    """Run the live pipeline over old logs on their own timestamps; yield verdict changes in order."""
    for batch in read_batches(paths, fmt, mapping=mapping, key=key, progress=progress):
        pipeline.stats = pipeline.stats + batch.stats
        yield from pipeline.push(batch.events)
    yield from pipeline.finish()
    yield from pipeline.policy.expire(float("inf"))


@dataclass(frozen=True)
class TrainingRows:
    """Feature rows gathered from logs: one row per client per tick."""

    raw: np.ndarray
    clients: np.ndarray
    at: np.ndarray
    stats: IngestStats


def training_rows(paths: Iterable[str | Path], fmt: str = "auto", *, stream: FeatureStream | None = None,
                  mapping: JsonlMapping | None = None, key: ClientKey | None = None,
                  progress: Callable[[int, int], None] | None = None) -> TrainingRows:
    """Every feature row the live pipeline would score over these logs."""
    stream = stream or FeatureStream()
    frames: list[FeatureFrame] = []
    stats = IngestStats()
    for batch in read_batches(paths, fmt, mapping=mapping, key=key, progress=progress):
        stats = stats + batch.stats
        frames.extend(stream.push(batch.events))
    frames.extend(stream.finish())
    frames = [f for f in frames if len(f)]
    if not frames:
        return TrainingRows(np.empty((0, len(stream.specs))), np.empty(0, dtype=object), np.empty(0), stats)
    return TrainingRows(
        raw=np.vstack([f.raw for f in frames]),
        clients=np.concatenate([f.clients for f in frames]),
        at=np.concatenate([np.full(len(f), f.at) for f in frames]),
        stats=stats,
    )
