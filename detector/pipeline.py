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
from detector.policy import Policy, PolicyConfig, confirmed_scores, incident_mask
from detector.records import IngestStats, Thresholds, Verdict
from detector.store.core import Store


AGENTS = "user_agents_60s"  # the feature the policy reads to tell a shared address (PolicyConfig.shared_agents)


def serving_thresholds(model: AnomalyModel, policy: PolicyConfig) -> Thresholds:
    """The thresholds ``model`` serves with under ``policy``: its own, read again for the policy's
    false-positive targets where those are set (an unset one is the model's; an unset block target is
    never above the throttle one). ``ValueError`` if it cannot (an artifact that keeps no calibration
    scores, a block target above the throttle one)."""
    if policy.throttle_fpr is None and policy.block_fpr is None:
        return model.thresholds_
    throttle = model.throttle_fpr if policy.throttle_fpr is None else policy.throttle_fpr
    block = min(model.block_fpr, throttle) if policy.block_fpr is None else policy.block_fpr
    if block > throttle:
        whose = "policy.throttle_fpr" if policy.throttle_fpr is not None else "the model's own"
        raise ValueError(f"policy.block_fpr ({block}) is above the throttle target ({throttle}, {whose})")
    return model.thresholds_at(throttle, block)


@dataclass
class Pipeline:
    """Features, model, policy and store wired together (see module docstring)."""

    model: AnomalyModel
    model_version: str = ""
    policy_config: PolicyConfig = field(default_factory=PolicyConfig)
    thresholds: Thresholds | None = None  # default: the model's calibrated thresholds
    store: Store | None = None
    stream: FeatureStream = field(default_factory=FeatureStream)
    explain_top: int = 3

    def __post_init__(self) -> None:
        self.policy = Policy(self.thresholds_for(self.model), self.policy_config, self.model_version)
        self.stats = IngestStats()
        self.scored_rows = 0

    def thresholds_for(self, model: AnomalyModel) -> Thresholds:
        """The thresholds ``model`` serves with here: ``thresholds`` if given, else ``serving_thresholds``."""
        return self.thresholds if self.thresholds is not None else serving_thresholds(model, self.policy_config)

    def push(self, events: pd.DataFrame) -> list[Verdict]:
        """Feed one batch of events; return the verdict changes of every tick it closed."""
        return self._run(self.stream.push(events))

    def finish(self) -> list[Verdict]:
        """Close the remaining ticks (end of a replay)."""
        return self._run(self.stream.finish())

    def advance(self, event_time: float) -> list[Verdict]:
        """Close the ticks event time ``event_time`` closes though no event reached it (live traffic paused)."""
        return self._run(self.stream.advance(event_time))

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

        agents = frame.raw[:, frame.names.index(AGENTS)] if AGENTS in frame.names else None
        changes = self.policy.update(frame.at, frame.clients, scores, reasons, frame.failing_share, agents)
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
    """Feature rows gathered from logs: one row per client per tick.

    ``groups`` keys a client within its log (``"<log index>:<client>"``) so that the same address in
    two logs counts as two training clients; ``failing`` is the tick's share of failing clients.
    """

    raw: np.ndarray
    clients: np.ndarray
    groups: np.ndarray
    at: np.ndarray
    failing: np.ndarray
    stats: IngestStats

    def take(self, keep: np.ndarray) -> TrainingRows:
        """The rows selected by ``keep`` (the ingest counts stay whole)."""
        return TrainingRows(self.raw[keep], self.clients[keep], self.groups[keep], self.at[keep], self.failing[keep],
                            self.stats)


def training_rows(paths: Iterable[str | Path], fmt: str = "auto", *, stream: Callable[[], FeatureStream] = FeatureStream,
                  mapping: JsonlMapping | None = None, key: ClientKey | None = None,
                  progress: Callable[[int, int], None] | None = None) -> TrainingRows:
    """Every feature row the live pipeline would score over these logs (each log its own stream)."""
    frames: list[tuple[int, FeatureFrame]] = []
    stats = IngestStats()
    specs = stream().specs
    for i, path in enumerate(paths):
        features = stream()
        for batch in read_batches([path], fmt, mapping=mapping, key=key, progress=progress):
            stats = stats + batch.stats
            frames.extend((i, f) for f in features.push(batch.events))
        frames.extend((i, f) for f in features.finish())
    frames = [(i, f) for i, f in frames if len(f)]
    if not frames:
        empty = np.empty(0)
        return TrainingRows(np.empty((0, len(specs))), empty.astype(object), empty.astype(object), empty, empty, stats)
    clients = np.concatenate([f.clients for _, f in frames])
    return TrainingRows(
        raw=np.vstack([f.raw for _, f in frames]),
        clients=clients,
        groups=np.concatenate([np.char.add(f"{i}:", f.clients.astype(str)) for i, f in frames]).astype(object),
        at=np.concatenate([np.full(len(f), f.at) for _, f in frames]),
        failing=np.concatenate([np.full(len(f), f.failing_share) for _, f in frames]),
        stats=stats,
    )


def fit_model(rows: TrainingRows, policy: PolicyConfig | None = None, **params) -> AnomalyModel:
    """Fit an ``AnomalyModel`` on training rows the way the service will judge them.

    Thresholds are calibrated per training client (``rows.groups``) on the scores the policy acts on
    (confirmed over two ticks, ``detector.policy.confirmed_scores``), leaving out the ticks the policy
    never blames anyone for (incidents, see ``detector.policy.incident_mask``), each log on its own clock. ``params`` go to ``AnomalyModel``.
    """
    policy = policy or PolicyConfig()
    logs = np.array([g.split(":", 1)[0] for g in rows.groups]) if len(rows.groups) else np.empty(0, dtype=str)
    exclude = np.zeros(len(rows.at), dtype=bool)
    for log in np.unique(logs):
        mine = logs == log
        exclude[mine] = incident_mask(rows.failing[mine], rows.at[mine], policy)
    def judged(scores: np.ndarray) -> np.ndarray:
        return confirmed_scores(scores, rows.groups, rows.at, policy.confirm_within)

    return AnomalyModel(**params).fit(rows.raw, groups=rows.groups, exclude=exclude, judged=judged, folds=logs)
