"""Sources that feed the parsers: log files read in chunks (plain or gzip), followed files, standard input.

A file is read as bytes, so invalid UTF-8 reaches the parser intact; the format is detected once from
the first chunk and then held, so a stray line cannot switch parsers half-way. Following a live file
through rotation, with positions that survive restarts, is ``detector.ingest.tail``; the live feeds that
put these lines on the ingest queue are ``detector.feeds``.
"""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator

from detector.ingest.formats import ClientKey, FormatError, JsonlMapping, ParsedBatch, detect_format, parse_lines
from detector.ingest.lines import LineSplitter
from detector.ingest.tail import FileTailer

CHUNK_LINES = 50_000


def open_log(path: str | Path) -> BinaryIO:
    """Open a log for reading bytes; ``.gz`` files are decompressed; ``-`` is standard input."""
    if str(path) == "-":
        import sys

        return sys.stdin.buffer
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such log file: {path}")
    with open(path, "rb") as fh:
        magic = fh.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def chunks(stream: Iterable[bytes], size: int = CHUNK_LINES) -> Iterator[list[bytes]]:
    """Lists of up to ``size`` lines."""
    buf: list[bytes] = []
    for line in stream:
        buf.append(line)
        if len(buf) >= size:
            yield buf
            buf = []
    if buf:
        yield buf


def read_batches(paths: Iterable[str | Path], fmt: str = "auto", *, mapping: JsonlMapping | None = None,
                 key: ClientKey | None = None, chunk_lines: int = CHUNK_LINES,
                 progress: Callable[[int, int], None] | None = None) -> Iterator[ParsedBatch]:
    """Parse log files chunk by chunk. ``progress(bytes_done, bytes_total)`` is called per chunk."""
    paths = list(paths)
    total = sum(os.path.getsize(p) for p in paths if str(p) != "-" and Path(p).is_file())
    done = 0
    for path in paths:
        with open_log(path) as fh:
            raw = fh.buffer if isinstance(fh, io.TextIOWrapper) else fh
            path_fmt = fmt
            for lines in chunks(raw, chunk_lines):
                if path_fmt == "auto":
                    try:
                        path_fmt = detect_format(lines[:200])
                    except FormatError as exc:
                        raise FormatError(f"{path}: {exc}") from None
                batch = parse_lines(lines, path_fmt, mapping=mapping, key=key)
                done += sum(len(x) for x in lines)
                if progress is not None:
                    progress(done, total)
                yield batch


def follow(path: str | Path, stop: Callable[[], bool], sleep: Callable[[float], None],
           poll: float = 0.2, max_lines: int = 5_000) -> Iterator[list[bytes]]:
    """Follow a growing log file like ``tail -F``: yield lists of complete new lines until ``stop()``.

    Reads from the start of the file, through rotation (rename and create, copytruncate); a partial last
    line waits for its newline. ``FileTailer`` does the work and also tells positions to resume from.
    """
    for chunk in FileTailer(path, max_lines=max_lines).follow(stop, sleep, poll):
        yield chunk.lines


def stream_chunks(read: Callable[[int], bytes], max_lines: int = 5_000,
                  read_bytes: int = 1 << 16) -> Iterator[list[bytes]]:
    """Lines from a stream (standard input) as they arrive: ``read(n)`` returns what is there, ``b""`` at
    the end. Each list holds the complete lines of one read (at most ``max_lines``); a last line without
    a newline comes at the end.

    >>> import io
    >>> list(stream_chunks(io.BytesIO(b"a\\nb\\nc").read1, max_lines=1))
    [[b'a'], [b'b'], [b'c']]
    """
    split = LineSplitter()
    while True:
        data = read(read_bytes)
        if not data:
            break
        lines = split.feed(data)
        for i in range(0, len(lines), max_lines):
            yield lines[i:i + max_lines]
    rest = split.flush()
    if rest:
        yield rest


def paced(batches: Iterable[ParsedBatch], clock: Callable[[], float], sleep: Callable[[float], None],
          stop: Callable[[], bool], step: float = 0.5) -> Iterator[ParsedBatch]:
    """Release events when the clock reaches their end time (a recorded log played back live)."""
    for batch in batches:
        events = batch.events.sort_values("end", kind="stable")
        ends = events["end"].to_numpy()
        first = True
        i = 0
        while i < len(events) and not stop():
            j = int(ends.searchsorted(clock(), side="right"))
            if j > i:
                yield ParsedBatch(events.iloc[i:j], batch.stats if first else type(batch.stats)())
                first = False
                i = j
            else:
                sleep(step)
        if stop():
            return
