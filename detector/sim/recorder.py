"""The request table the populations fill, and cheap scalar randomness for their loops.

A row is one request as the server saw it: who (client index, lane = the sequential stream it
belongs to, which later becomes a keep-alive connection), when (start, duration in seconds), what
(method code, URI, protocol, referer code, user-agent id) and the answer (status, body bytes,
upstream time or NaN when nginx answered itself). ``attack`` marks rows an abusive actor sent as
part of its attack.
"""

from __future__ import annotations

import math

import numpy as np

METHODS = ("GET", "POST", "HEAD", "OPTIONS", "PUT")
GET, POST, HEAD, OPTIONS, PUT = range(len(METHODS))
PROTOCOLS = ("HTTP/1.1", "HTTP/1.0", "HTTP/2.0")
REFERERS = ("", "https://app.example.com/", "https://app.example.com/login")
NAN = math.nan

# Column order of a scalar row tuple (what ``Recorder.rows.append`` takes).
ROW = ("client", "lane", "start", "dur", "method", "uri", "status", "bytes", "ua", "ups", "attack",
       "referer", "proto")
_DTYPES = {
    "client": np.int32, "lane": np.int64, "start": np.float64, "dur": np.float64, "method": np.int8,
    "uri": object, "status": np.int16, "bytes": np.int64, "ua": np.int32, "ups": np.float64,
    "attack": np.bool_, "referer": np.int8, "proto": np.int8,
}


class Rand:
    """Scalar draws for per-request loops, served from pre-drawn blocks of a numpy generator
    (a Generator call per scalar costs far more than indexing a list)."""

    __slots__ = ("rng", "_buf", "_i")

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self._buf: list[float] = []
        self._i = 0

    def u(self) -> float:
        i = self._i
        if i >= len(self._buf):
            self._buf = self.rng.random(2048).tolist()
            i = 0
        self._i = i + 1
        return self._buf[i]

    def uniform(self, lo: float, hi: float) -> float:
        return lo + (hi - lo) * self.u()

    def expo(self, mean: float) -> float:
        return -mean * math.log(1.0 - self.u())

    def chance(self, p: float) -> bool:
        return self.u() < p


class Recorder:
    """Collects rows from scalar loops (tuples in ``rows``) and vectorised generators (``add_many``)."""

    def __init__(self) -> None:
        self.rows: list[tuple] = []
        self._chunks: list[dict[str, np.ndarray]] = []
        self._ua_ids: dict[str, int] = {}
        self.agents: list[str] = []
        self._lanes = 0

    def ua(self, agent: str) -> int:
        """The id of a user-agent string (registered on first use)."""
        i = self._ua_ids.get(agent)
        if i is None:
            i = self._ua_ids[agent] = len(self.agents)
            self.agents.append(agent)
        return i

    def lane(self) -> int:
        self._lanes += 1
        return self._lanes

    def lanes(self, n: int) -> np.ndarray:
        first = self._lanes + 1
        self._lanes += n
        return np.arange(first, first + n, dtype=np.int64)

    def add_many(self, *, client: int, lane, start, dur, method, uri, status, nbytes, ua, ups,
                 attack: bool, referer=0, proto=0) -> None:
        """Append ``len(start)`` rows; scalars are broadcast, ``uri`` is a list or one string."""
        start = np.asarray(start, dtype=np.float64)
        n = len(start)
        if n == 0:
            return
        if isinstance(uri, str):
            uri = [uri] * n
        cols = {"client": client, "lane": lane, "start": start, "dur": dur, "method": method,
                "status": status, "bytes": nbytes, "ua": ua, "ups": ups, "attack": attack,
                "referer": referer, "proto": proto}
        chunk = {k: np.broadcast_to(np.asarray(v, dtype=_DTYPES[k]), (n,)).copy() for k, v in cols.items()}
        arr = np.empty(n, dtype=object)
        arr[:] = uri
        chunk["uri"] = arr
        self._chunks.append(chunk)

    def __len__(self) -> int:
        return len(self.rows) + sum(len(c["start"]) for c in self._chunks)

    def table(self) -> dict[str, np.ndarray]:
        """All rows as columns (scalar rows first, then chunks, each in recording order)."""
        parts = []
        if self.rows:
            cols = list(zip(*self.rows))
            part = {}
            for name, col in zip(ROW, cols):
                if name == "uri":
                    arr = np.empty(len(col), dtype=object)
                    arr[:] = col
                    part[name] = arr
                else:
                    part[name] = np.asarray(col, dtype=_DTYPES[name])
            parts.append(part)
        parts.extend(self._chunks)
        if not parts:
            return {k: np.empty(0, dtype=_DTYPES[k]) for k in ROW}
        return {k: np.concatenate([p[k] for p in parts]) for k in ROW}
