"""Following a growing log file like ``tail -F``, through rotation, from a position that survives restarts.

``FileTailer`` reads a file in chunks of complete lines and tells, with every chunk, the ``Position``
right after it: the file's identity (device, inode and its first bytes) and the byte offset and count of
the lines handed on. Whoever processes a chunk stores that position afterwards (``OffsetBook``), and a
tailer made with it carries on from there: nothing before it is read again, nothing after it is lost.

Rotation, the two ways logrotate does it:

* **rename and create** (nginx's own way: ``mv access.log access.log.1``, then ``nginx -s reopen``): the
  path names a new inode. The old file is read on until it has been quiet for ``rotate_wait`` polls
  (nginx writes to it until it reopens), then the new one is read from its start.
* **copytruncate**: the same inode shrinks (or its first bytes change: truncated and already written
  again). Reading restarts at offset 0. Lines written between logrotate's copy and its truncate are
  in neither file: a limit of copytruncate itself, not of this reader.

Resuming after a restart from a stored position: the same file (same inode, same first bytes, at least
that long) is read on from the offset; if the path is a new file, the old one is looked for in the same
folder (``access.log.1``: same inode and first bytes) and read to its end first, then the new one from
its start. If the old file cannot be found (deleted or compressed meanwhile), the new one is read from its
start and the loss is counted (``lost``).
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from detector.ingest.lines import LineSplitter

log = logging.getLogger("detector.ingest.tail")

HEAD = 128  # bytes at the start of a file that fingerprint it (with its inode)
READ_BYTES = 1 << 20


@dataclass(frozen=True)
class Position:
    """Where a tailed file was handed on to: file identity plus offset (bytes) and count of complete lines."""

    dev: int
    inode: int
    offset: int
    lines: int
    head: bytes = b""  # the file's first min(HEAD, offset) bytes

    def to_json(self) -> dict:
        return {"dev": self.dev, "inode": self.inode, "offset": self.offset, "lines": self.lines,
                "head": self.head.hex()}

    @classmethod
    def from_json(cls, obj: dict) -> Position:
        return cls(int(obj["dev"]), int(obj["inode"]), int(obj["offset"]), int(obj["lines"]),
                   bytes.fromhex(obj.get("head", "")))


@dataclass(frozen=True)
class Chunk:
    """Complete lines (without ``\\n``) and the position right after the last of them."""

    lines: list[bytes]
    position: Position


class _OpenFile:
    """One open file being read: its identity, how far lines were handed on, the unfinished line."""

    def __init__(self, fh, offset: int = 0, lines: int = 0) -> None:
        self.fh = fh
        st = os.fstat(fh.fileno())
        self.dev, self.inode = st.st_dev, st.st_ino
        fh.seek(offset)
        self.offset = offset  # bytes of complete lines handed on
        self.lines = lines
        self.head = os.pread(fh.fileno(), min(HEAD, offset), 0)
        self.split = LineSplitter()
        self.rotated = False  # the path names another file now: drain this one, then switch
        self.quiet = 0  # polls without new data since the rotation was seen

    def position(self) -> Position:
        if len(self.head) < HEAD and self.offset > len(self.head):
            self.head = os.pread(self.fh.fileno(), min(HEAD, self.offset), 0)
        return Position(self.dev, self.inode, self.offset, self.lines, self.head)

    def same_file(self, st: os.stat_result) -> bool:
        return (st.st_dev, st.st_ino) == (self.dev, self.inode)

    def rewritten(self) -> bool:
        """Truncated (copytruncate) since the last read: shorter than what was read, or new first bytes."""
        fd = self.fh.fileno()
        if os.fstat(fd).st_size < self.fh.tell():
            return True
        return bool(self.head) and os.pread(fd, len(self.head), 0) != self.head

    def restart(self) -> None:
        self.fh.seek(0)
        self.offset = self.lines = 0
        self.head = b""
        self.split.reset()

    def close(self) -> None:
        self.fh.close()


def _matches(path: Path, pos: Position) -> bool:
    """True if ``path`` is the file ``pos`` was taken on, and still holds everything before its offset."""
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            return ((st.st_dev, st.st_ino) == (pos.dev, pos.inode) and st.st_size >= pos.offset
                    and os.pread(fh.fileno(), len(pos.head), 0) == pos.head)
    except OSError:
        return False


def find_rotated(path: Path, pos: Position) -> Path | None:
    """The file ``pos`` was taken on, if it was renamed within ``path``'s folder (``access.log.1``)."""
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return None
    for entry in entries:
        try:
            if entry.inode() == pos.inode and entry.is_file(follow_symlinks=False) and _matches(Path(entry.path), pos):
                return Path(entry.path)
        except OSError:
            continue
    return None


class FileTailer:
    """Follow ``path`` (see the module docstring). ``resume``: a stored position to carry on from;
    without one, start at the file's start, or its end with ``from_end``.

    ``counts`` records what happened: ``resumed``, ``rotated``, ``truncated``, ``lost`` (a stored position
    whose file was gone), ``cut`` (over-long lines cut).
    """

    def __init__(self, path: str | Path, resume: Position | None = None, *, from_end: bool = False,
                 max_lines: int = 5000, read_bytes: int = READ_BYTES, rotate_wait: int = 2) -> None:
        self.path = Path(path)
        self.max_lines = max_lines
        self.read_bytes = read_bytes
        self.rotate_wait = rotate_wait
        self.from_end = from_end
        self.counts: Counter[str] = Counter()
        self._cur: _OpenFile | None = None
        self._resume = resume
        self._first = True
        self._ready: list[Chunk] = []

    # -- opening ---------------------------------------------------------------------------------
    def _open_first(self) -> None:
        """Open where the stored position says (or the start / end of the file); ``None`` if no file yet."""
        pos, self._resume = self._resume, None
        if pos is not None:
            if _matches(self.path, pos):
                self._cur = _OpenFile(open(self.path, "rb"), pos.offset, pos.lines)
                self.counts["resumed"] += 1
                return
            old = find_rotated(self.path, pos)
            if old is not None:  # rotated while we were down: finish the old file first
                log.info("resuming %s in its rotated file %s at byte %d", self.path, old, pos.offset)
                self._cur = _OpenFile(open(old, "rb"), pos.offset, pos.lines)
                self._cur.rotated = True
                self.counts["resumed"] += 1
                return
            log.warning("%s: the file last read up to byte %d is gone; reading the current one from its start",
                        self.path, pos.offset)
            self.counts["lost"] += 1
            self._open_path(0)
            return
        self._open_path(None if self.from_end else 0)

    def _open_path(self, offset: int | None) -> None:
        try:
            fh = open(self.path, "rb")
        except FileNotFoundError:
            self._cur = None
            return
        if offset is None:
            offset = os.fstat(fh.fileno()).st_size
        self._cur = _OpenFile(fh, offset)

    # -- reading ---------------------------------------------------------------------------------
    def poll(self) -> Chunk | None:
        """One non-blocking step: the next chunk of complete lines, or ``None`` when there is nothing new."""
        if self._ready:
            return self._ready.pop(0)
        if self._cur is None:
            if self._first:
                self._first = False
                self._open_first()
            else:  # a file that appears later, or after a rotation, is read from its start
                self._open_path(0)
            if self._cur is None:
                return None
        cur = self._cur
        if cur.rewritten():  # checked before reading on: what follows the old offset is not the old file's
            log.warning("%s was truncated; reading it again from the start", self.path)
            self.counts["truncated"] += 1
            cur.restart()
        data = cur.fh.read(self.read_bytes)
        if data:
            cur.quiet = 0
            cut = cur.split.cut
            lines = cur.split.feed(data)
            self.counts["cut"] += cur.split.cut - cut
            return self._hand_on(cur, lines)
        if not cur.rotated:
            try:
                cur.rotated = not cur.same_file(os.stat(self.path))
            except FileNotFoundError:
                cur.rotated = True  # moved away, the new one not created yet
        if cur.rotated:
            cur.quiet += 1
            if cur.quiet >= self.rotate_wait and self.path.exists():
                rest = cur.split.flush()
                chunk = self._hand_on(cur, rest) if rest else None
                cur.close()
                self.counts["rotated"] += 1
                self._open_path(0)
                return chunk
        return None

    def _hand_on(self, cur: _OpenFile, lines: list[bytes]) -> Chunk | None:
        """Advance ``cur``'s position over ``lines``, in chunks of at most ``max_lines``; return the first."""
        if not lines:
            return None
        step = self.max_lines
        for i in range(0, len(lines), step):
            part = lines[i:i + step]
            cur.lines += len(part)
            if i + step < len(lines):
                cur.offset += sum(map(len, part)) + len(part)  # every line but the very last ends in "\n"
            else:  # exact: everything read but the unfinished line
                cur.offset = cur.fh.tell() - cur.split.pending
            self._ready.append(Chunk(part, cur.position()))
        return self._ready.pop(0)

    def follow(self, stop: Callable[[], bool], sleep: Callable[[float], None], poll: float = 0.2) -> Iterator[Chunk]:
        """Chunks as the file grows, until ``stop()``; sleeps ``poll`` seconds when there is nothing new."""
        try:
            while not stop():
                chunk = self.poll()
                if chunk is None:
                    sleep(poll)
                elif chunk.lines:
                    yield chunk
        finally:
            self.close()

    def close(self) -> None:
        if self._cur is not None:
            self._cur.close()
            self._cur = None
