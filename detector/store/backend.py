"""Where a store keeps its decisions, allowlist, API keys and bouncer cursors between runs.

``Store`` (``detector.store.core``) holds every read in memory and writes through a ``Backend``: each
change is written and committed before the store's method returns, so what an operator was told is
done survives a crash. ``MemoryBackend`` keeps nothing (tests, replay); ``SqliteBackend`` is the
embedded default.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Iterable, Protocol

from detector.store.decisions import AllowEntry, Decision
from detector.store.keys import ApiKey


@dataclass
class Snapshot:
    """Everything a backend holds, as loaded at start-up (and again after another process wrote)."""

    decisions: list[Decision] = field(default_factory=list)
    allowlist: list[AllowEntry] = field(default_factory=list)
    keys: list[ApiKey] = field(default_factory=list)
    cursors: dict[int, set[int]] = field(default_factory=dict)  # key id -> decision ids it was sent


class Backend(Protocol):
    persistent: bool  # False: load() cannot restore memory after a failed write (it never fails)

    def load(self) -> Snapshot: ...
    def insert_decision(self, d: Decision) -> int: ...
    def lift_decision(self, decision_id: int, lifted_at: float) -> None: ...
    def delete_decisions(self, ids: Iterable[int]) -> None: ...
    def insert_allow(self, entry: AllowEntry) -> int: ...
    def delete_allow(self, entry_id: int) -> None: ...
    def insert_key(self, key: ApiKey) -> int: ...
    def delete_key(self, key_id: int) -> None: ...
    def cursor_update(self, key_id: int, add: Iterable[int], remove: Iterable[int]) -> None: ...
    def cursor_drop(self, key_id: int) -> None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def changed(self) -> bool:
        """True if another process committed since this backend last loaded or committed."""
        ...
    def ping(self) -> bool: ...
    def close(self) -> None: ...


class MemoryBackend:
    """Keeps nothing but a counter per kind of id: state lives in the store's memory only."""

    persistent = False

    def __init__(self) -> None:
        self._ids = itertools.count(1)

    def load(self) -> Snapshot:
        return Snapshot()

    def insert_decision(self, d: Decision) -> int:
        return next(self._ids)

    def insert_allow(self, entry: AllowEntry) -> int:
        return next(self._ids)

    def insert_key(self, key: ApiKey) -> int:
        return next(self._ids)

    def lift_decision(self, decision_id: int, lifted_at: float) -> None:
        pass

    def delete_decisions(self, ids: Iterable[int]) -> None:
        pass

    def delete_allow(self, entry_id: int) -> None:
        pass

    def delete_key(self, key_id: int) -> None:
        pass

    def cursor_update(self, key_id: int, add: Iterable[int], remove: Iterable[int]) -> None:
        pass

    def cursor_drop(self, key_id: int) -> None:
        pass

    def commit(self) -> None:
        pass

    def rollback(self) -> None:
        pass

    def changed(self) -> bool:
        return False

    def ping(self) -> bool:
        return True

    def close(self) -> None:
        pass
