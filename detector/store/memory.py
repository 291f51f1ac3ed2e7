"""In-process store of verdicts and of each client's latest score and features.

The pipeline writes after every tick; ``/authz`` and ``/score`` read with one dictionary look-up.
Writes swap whole records (frozen dataclasses), so readers on other threads never see a half-made one.
Time is passed in: the store never reads the clock.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from detector.records import Verdict


@dataclass(frozen=True)
class Observation:
    """A client's most recent score and raw feature values, at event time ``at``."""

    at: float
    score: float
    features: tuple[tuple[str, float], ...]


class MemoryStore:
    """Verdicts and observations in dictionaries; ``evict`` bounds them by idleness."""

    def __init__(self) -> None:
        self._verdicts: dict[str, Verdict] = {}
        self._observations: dict[str, Observation] = {}
        self._lock = threading.Lock()

    def apply(self, verdicts: Iterable[Verdict]) -> None:
        """Record verdict changes; an ``allow`` removes the client's verdict."""
        with self._lock:
            for v in verdicts:
                if v.action == "allow":
                    self._verdicts.pop(v.client, None)
                else:
                    self._verdicts[v.client] = v

    def observe(self, at: float, clients: Iterable[str], scores: np.ndarray, raw: np.ndarray,
                names: tuple[str, ...]) -> None:
        """Remember the latest score and features of each scored client."""
        obs = self._observations
        for client, score, row in zip(clients, scores.tolist(), raw.tolist()):
            obs[client] = Observation(at, score, tuple(zip(names, row)))

    def verdict(self, client: str, now: float) -> Verdict | None:
        """The client's verdict if one is in force at ``now``."""
        v = self._verdicts.get(client)
        if v is None or (v.until is not None and v.until <= now):
            return None
        return v

    def observation(self, client: str) -> Observation | None:
        return self._observations.get(client)

    def verdicts(self, now: float) -> list[Verdict]:
        """Every verdict in force at ``now``."""
        with self._lock:
            items = list(self._verdicts.values())
        return [v for v in items if v.until is None or v.until > now]

    def evict(self, idle_before: float) -> int:
        """Forget observations older than ``idle_before`` and verdicts that lapsed before it."""
        with self._lock:
            stale = [c for c, o in self._observations.items() if o.at < idle_before]
            for c in stale:
                del self._observations[c]
            lapsed = [c for c, v in self._verdicts.items() if v.until is not None and v.until < idle_before]
            for c in lapsed:
                del self._verdicts[c]
        return len(stale)

    def __len__(self) -> int:
        return len(self._observations)
