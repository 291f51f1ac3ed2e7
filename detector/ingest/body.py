"""Request bodies of ``POST /v1/ingest``: NDJSON, plain or gzip, read piece by piece under a size limit.

``BodyReader`` is fed the body as it streams in and refuses it (``TooLarge``) as soon as either the bytes
received or the bytes they decompress to pass ``max_bytes``, so neither a huge upload nor a small gzip
"bomb" is ever held in memory. Concatenated gzip members (what some shippers send) are read one after
the other. The HTTP edge turns ``TooLarge`` into 413 and ``BadBody`` into 400 / 415.
"""

from __future__ import annotations

import zlib

from detector.ingest.lines import LineSplitter

ENCODINGS = ("identity", "gzip", "x-gzip")


class TooLarge(Exception):
    """The body (as sent, or decompressed) is larger than allowed."""


class BadBody(ValueError):
    """The body cannot be decoded; ``unsupported`` when its Content-Encoding is not one we read."""

    def __init__(self, message: str, unsupported: bool = False) -> None:
        super().__init__(message)
        self.unsupported = unsupported


class BodyReader:
    """Feed the body's pieces in order, then ``finish()`` for its lines (see the module docstring).

    >>> import gzip
    >>> r = BodyReader(100, "gzip")
    >>> r.feed(gzip.compress(b'{"a":1}\\n{"a":2}\\n'))
    >>> r.finish(), r.decoded
    ([b'{"a":1}', b'{"a":2}'], 16)
    """

    def __init__(self, max_bytes: int, encoding: str | None = None) -> None:
        encoding = (encoding or "identity").strip().lower()
        if encoding not in ENCODINGS:
            raise BadBody(f"unsupported Content-Encoding {encoding!r} (send identity or gzip)", unsupported=True)
        self.max_bytes = max_bytes
        self.gzip = encoding != "identity"
        self.received = 0  # bytes as sent
        self.decoded = 0  # bytes after decompression
        self._z = self._inflater() if self.gzip else None
        self._split = LineSplitter()
        self._lines: list[bytes] = []
        self._open_member = False  # a gzip member has begun and not ended

    @staticmethod
    def _inflater():
        return zlib.decompressobj(16 + zlib.MAX_WBITS)

    def feed(self, piece: bytes) -> None:
        if not piece:
            return
        self.received += len(piece)
        if self.received > self.max_bytes:
            raise TooLarge(f"body larger than {self.max_bytes} bytes")
        if self._z is None:
            self._decoded(piece)
            return
        data = piece
        try:
            while data:
                out = self._z.decompress(data, self.max_bytes - self.decoded + 1)
                self._open_member = not self._z.eof
                self._decoded(out)
                if self._z.eof:  # one gzip member ended; another may follow
                    data = self._z.unused_data
                    self._z = self._inflater()
                else:
                    data = self._z.unconsumed_tail
        except zlib.error as exc:
            raise BadBody(f"body is not valid gzip: {exc}") from None

    def _decoded(self, out: bytes) -> None:
        self.decoded += len(out)
        if self.decoded > self.max_bytes:
            raise TooLarge(f"body decompresses to more than {self.max_bytes} bytes")
        self._lines.extend(self._split.feed(out))

    def finish(self) -> list[bytes]:
        """Every line of the body (a last line without a newline included)."""
        if self._open_member:
            raise BadBody("gzip body ends before its end")
        return self._lines + self._split.flush()
