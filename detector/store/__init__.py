"""Store: where verdicts and the latest per-client observations live, read by the API in O(1)."""

from detector.store.memory import MemoryStore, Observation

__all__ = ["MemoryStore", "Observation"]
