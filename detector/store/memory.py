"""The in-process store: ``Store`` over a backend that keeps nothing (tests, replay, ``store.path = ":memory:"``).

Decisions, the allowlist and keys live only as long as the process. The pipeline writes after every
tick; ``/authz`` and ``/score`` read with a few dictionary look-ups. Time is passed in.
"""

from __future__ import annotations

from detector.store.backend import MemoryBackend
from detector.store.core import Observation, Store

__all__ = ["MemoryStore", "Observation"]


class MemoryStore(Store):
    """A ``Store`` that forgets everything when the process ends."""

    def __init__(self, **options) -> None:
        super().__init__(MemoryBackend(), **options)
