"""Store: decisions (with TTLs), the allowlist, API keys, bouncer cursors and each client's latest
observation, behind one interface (``Store``) whatever keeps them: memory or a SQLite file.

Reads are O(1) from memory; writes are committed before they return; time is always passed in.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from detector.store.core import AllowlistedError, Observation, Store
from detector.store.decisions import AllowEntry, Answer, Decision, go_duration, parse_duration, rfc3339
from detector.store.keys import ApiKey
from detector.store.memory import MemoryStore
from detector.store.sqlite import SqliteStore, StoreError

if TYPE_CHECKING:
    from detector.config import Settings

MEMORY = ":memory:"

__all__ = ["AllowEntry", "AllowlistedError", "Answer", "ApiKey", "Decision", "MemoryStore", "Observation",
           "SqliteStore", "Store", "StoreError", "go_duration", "open_store", "parse_duration", "rfc3339", "store_from_settings"]


def open_store(path: str, **options) -> Store:
    """A SQLite store at ``path``, or a memory store for ``":memory:"`` / an empty path."""
    if not path or path == MEMORY:
        return MemoryStore(**options)
    return SqliteStore(path, **options)


def store_from_settings(settings: Settings, path: str | Path | None = None) -> Store:
    """The store the settings describe (``store.path``, or ``path``): shadowed origins, the configured
    allowlist, how long ended decisions are kept, the TTL of a verdict without one."""
    return open_store(str(path or settings.store.path), shadow=settings.decisions.shadowed(settings.policy.shadow),
                      allowlist=settings.policy.allowlist, keep_deleted=settings.store.keep_deleted,
                      default_ttl=settings.policy.throttle_ttl)
