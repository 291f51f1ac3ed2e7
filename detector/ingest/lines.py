"""Splitting a stream of bytes into complete lines, as the live sources (tail, stdin, HTTP bodies) read it.

Data arrives in arbitrary pieces; ``LineSplitter.feed`` hands back the complete lines and keeps the
unfinished tail for the next piece, so a line is never parsed half-written. A "line" that never ends
(garbage without a newline) is cut at ``max_line`` bytes and handed on as it is (the parser then
counts it as malformed), so a runaway writer cannot grow memory.
"""

from __future__ import annotations

MAX_LINE = 1 << 20  # 1 MiB: far beyond any access-log line


class LineSplitter:
    """Bytes in, complete lines (without their ``\\n``) out; see the module docstring.

    >>> s = LineSplitter()
    >>> s.feed(b'a\\nbc'), s.feed(b'd\\n\\ne'), s.pending, s.flush()
    ([b'a'], [b'bcd', b''], 1, [b'e'])
    """

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        self._partial = b""
        self.cut = 0  # over-long lines cut at max_line

    @property
    def pending(self) -> int:
        """Bytes of an unfinished line held back."""
        return len(self._partial)

    def feed(self, data: bytes) -> list[bytes]:
        if not data:
            return []
        parts = (self._partial + data).split(b"\n") if self._partial else data.split(b"\n")
        self._partial = parts.pop()
        if len(self._partial) > self.max_line:
            parts.append(self._partial)
            self._partial = b""
            self.cut += 1
        return parts

    def flush(self) -> list[bytes]:
        """The unfinished last line, at the end of the input (an empty list when there is none)."""
        rest, self._partial = self._partial, b""
        return [rest] if rest else []

    def reset(self) -> None:
        """Forget the unfinished line (the file it came from was truncated)."""
        self._partial = b""
