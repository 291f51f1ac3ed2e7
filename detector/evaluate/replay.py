"""Run the live pipeline over logs (``detector.pipeline.replay``) and keep what evaluation needs besides
the verdicts: every client's highest score, and each request's start time for the rate-limit baseline,
so the log is read once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pandas as pd

from detector.evaluate.baseline import RequestTimes
from detector.features.stream import FeatureStream
from detector.ingest.formats import ClientKey, JsonlMapping
from detector.model import load_artifact
from detector.pipeline import Pipeline, replay
from detector.policy import PolicyConfig
from detector.records import Thresholds
from detector.store.memory import MemoryStore

_REDUCE_ROWS = 1_000_000


class MaxScoreStore(MemoryStore):
    """A store that keeps each client's highest score over every tick instead of the latest features.

    ``Pipeline.score_frame`` hands every tick's scores to ``observe``; verdicts are still applied.
    """

    def __init__(self) -> None:
        super().__init__()
        self._clients: list[np.ndarray] = []
        self._scores: list[np.ndarray] = []
        self._pending = 0
        self._max = pd.Series(dtype=np.float64)

    def observe(self, at, clients, scores, raw, names) -> None:
        self._clients.append(np.asarray(clients, dtype=object))
        self._scores.append(np.asarray(scores, dtype=np.float64))
        self._pending += len(self._scores[-1])
        if self._pending >= _REDUCE_ROWS:
            self._reduce()

    def _reduce(self) -> None:
        if not self._scores:
            return
        latest = pd.Series(np.concatenate(self._scores), index=np.concatenate(self._clients))
        both = pd.concat([self._max, latest]) if len(self._max) else latest
        self._max = both.groupby(level=0, sort=False).max()
        self._clients, self._scores, self._pending = [], [], 0

    def max_scores(self) -> pd.Series:
        """Each scored client's highest score."""
        self._reduce()
        return self._max.rename_axis("client")


@dataclass
class RecordingPipeline(Pipeline):
    """The pipeline, noting each batch's request times on the way in."""

    requests: RequestTimes = field(default_factory=RequestTimes)

    def push(self, events: pd.DataFrame):
        self.requests.add(events)
        return super().push(events)


@dataclass(frozen=True, eq=False)
class ReplayRun:
    verdicts: list[dict]  # Verdict.to_json() lines, in event-time order
    scores: pd.Series
    requests: RequestTimes
    card: dict
    thresholds: Thresholds  # what the policy acted on (the card's, or read again for the config's targets)


def run_replay(log_paths: Iterable[str | Path], model_path: str | Path, fmt: str = "auto",
               progress: Callable[[int, int], None] | None = None,
               policy: PolicyConfig | None = None, stream: FeatureStream | None = None,
               mapping: JsonlMapping | None = None, key: ClientKey | None = None) -> ReplayRun:
    """Load the model, replay the logs through the pipeline (with ``policy`` and ``stream``, default the
    defaults: those of a service without a config file; ``mapping`` and ``key`` as ``read_batches``
    takes them), return verdicts, max scores and times."""
    model, card = load_artifact(model_path)
    store = MaxScoreStore()
    pipeline = RecordingPipeline(model, model_version=str(card.get("version", "")), store=store,
                                 policy_config=policy or PolicyConfig(), stream=stream or FeatureStream())
    verdicts = [v.to_json() for v in replay(list(log_paths), pipeline, fmt, mapping=mapping, key=key,
                                            progress=progress)]
    pipeline.requests.stats = pipeline.stats
    return ReplayRun(verdicts, store.max_scores(), pipeline.requests, card, pipeline.policy.thresholds)
