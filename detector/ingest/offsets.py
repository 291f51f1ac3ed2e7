"""Where each tailed file was processed to, kept across restarts in a small JSON file next to the store.

The tail source hands its chunks to the ingest queue; once the pipeline has processed a chunk, its
``Position`` is committed here (a whole new file written, then renamed over the old one, so a crash leaves
the previous or the new state, never half of one). After a restart the tailer carries on from the stored
position. The window of lines processed twice after a ``kill -9`` is what was processed but not yet
committed: at most one pipeline batch (``ingest.batch_lines`` lines) per file. A power loss can lose the
last renames (the file is not fsynced on every commit; ``close`` does), which only widens that window.

File format (``version`` 1)::

    {"version": 1, "files": {"/var/log/nginx/access.json.log":
        {"dev": 2049, "inode": 1311, "offset": 52031, "lines": 180, "head": "7b226d73..."}}}
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

from detector.ingest.tail import Position

log = logging.getLogger("detector.ingest.offsets")
VERSION = 1


def offsets_path_for(store_path: str, configured: str | None) -> Path | None:
    """The state file: ``configured`` (``""``: keep none), else next to a SQLite store
    (``detector.db`` -> ``detector.offsets.json``); none for a memory store.

    >>> offsets_path_for("/var/lib/detector/detector.db", None)
    PosixPath('/var/lib/detector/detector.offsets.json')
    >>> offsets_path_for(":memory:", None) is None, offsets_path_for("x.db", "")
    (True, None)
    """
    if configured is not None:
        return Path(configured) if configured else None
    if not store_path or store_path == ":memory:":
        return None
    store = Path(store_path)
    return store.with_name(store.stem + ".offsets.json")


def source_key(path: str | Path) -> str:
    """How a tailed file is named in the state file: its absolute path."""
    return str(Path(path).absolute())


class OffsetBook:
    """Committed positions by tailed file (see the module docstring). ``path=None`` keeps them in memory only."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        self._files: dict[str, Position] = {}
        self.commits = 0
        if self.path is not None and self.path.exists():
            self._files = self._read(self.path)

    @staticmethod
    def _read(path: Path) -> dict[str, Position]:
        try:
            obj = json.loads(path.read_text())
            if obj.get("version") != VERSION:
                raise ValueError(f"unknown version {obj.get('version')!r}")
            return {k: Position.from_json(v) for k, v in obj["files"].items()}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # starting over re-reads the files from their start: lines may be processed twice, none lost
            log.error("ignoring unreadable tail offsets %s: %s", path, exc)
            return {}

    def get(self, key: str) -> Position | None:
        with self._lock:
            return self._files.get(key)

    def snapshot(self) -> dict[str, Position]:
        with self._lock:
            return dict(self._files)

    def commit(self, key: str, position: Position) -> None:
        """Record that everything before ``position`` in file ``key`` has been processed."""
        with self._lock:
            self._files[key] = position
            self.commits += 1
            self._write(durable=False)

    def close(self) -> None:
        """Write once more, durably (fsync)."""
        with self._lock:
            if self._files:
                self._write(durable=True)

    def _write(self, durable: bool) -> None:
        if self.path is None:
            return
        body = json.dumps({"version": VERSION, "files": {k: p.to_json() for k, p in self._files.items()}},
                          indent=1, sort_keys=True).encode()
        tmp = self.path.with_name(self.path.name + ".tmp")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            fh.write(body)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, self.path)
