"""The fixed per-client rate limit a model has to beat, tuned on the very log it is judged on.

Each client's rate is the most requests it sent in any sliding window of ``window`` seconds, counted on
request **start** times (the parsers set start = end for formats that log no duration, such as
nginx-combined, so there it is the end time). Windows are half-open, ``[t, t + window)``; the busiest
one always begins at one of the client's own requests, so counting from each request is exact.
Times are compared in whole milliseconds.

A limit ``L`` flags the clients whose rate exceeds ``L``. Every distinct rate gives one candidate
(``L = rate - 1``, the most lenient limit that still flags it) plus "flag nobody"; the best is the
one with the highest F1, ties going to the more lenient limit. Being tuned on the answers, it is the
best any fixed limit could have done on this log: an upper bound for the baseline, not a forecast.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from detector.ingest.formats import OPENED, ended
from detector.records import IngestStats

WINDOW = 60.0


class RequestTimes:
    """Collects each request's client and start time from parsed event batches."""

    def __init__(self) -> None:
        self._clients: list[np.ndarray] = []
        self._times: list[np.ndarray] = []
        self._ends: list[np.ndarray] = []
        self._shown: list[tuple[np.ndarray, np.ndarray]] = []  # start records' clients and starts
        self.requests = 0
        self.without_duration = 0
        self.stats = IngestStats()

    def add(self, events: pd.DataFrame, stats: IngestStats | None = None) -> None:
        if stats is not None:
            self.stats = self.stats + stats
        opened = events[events["status"].to_numpy() == OPENED] if len(events) else events
        if len(opened):  # a start record shows its request at its start (first_seen), and counts no more
            self._shown.append((opened["client"].to_numpy(dtype=object), opened["start"].to_numpy(np.float64)))
        events = ended(events)
        if not len(events):
            return
        self._clients.append(events["client"].to_numpy(dtype=object))
        self._times.append(events["start"].to_numpy(dtype=np.float64))
        self._ends.append(events["end"].to_numpy(dtype=np.float64))
        self.requests += len(events)
        self.without_duration += int(np.isnan(events["duration"].to_numpy(dtype=np.float64)).sum())

    @property
    def basis(self) -> str:
        """Which time the windows count on, in words."""
        if self.without_duration == 0:
            return "request start time"
        if self.without_duration == self.requests:
            return "request end time (the log has no durations)"
        return f"request start time (end time for {self.without_duration} requests without a duration)"

    def first_seen(self, since: pd.Series) -> pd.Series:
        """Per client of ``since``, when the log first showed one of its requests that started at or after
        ``since``: the earliest end among them, or start where a start record (Envoy) showed it then."""
        if not self._clients and not self._shown:
            return pd.Series(dtype=np.float64)
        clients = self._clients + [c for c, _ in self._shown]
        starts = self._times + [t for _, t in self._shown]
        shown_at = self._ends + [t for _, t in self._shown]  # a start record is written at the start
        return first_seen(np.concatenate(clients), np.concatenate(starts), np.concatenate(shown_at), since)

    def max_counts(self, window: float = WINDOW) -> pd.Series:
        """Per client, the most requests in any ``window`` seconds (see the module docstring)."""
        if not self._clients:
            return pd.Series(dtype=np.int64)
        return max_window_counts(np.concatenate(self._clients), np.concatenate(self._times), window)


def first_seen(clients: np.ndarray, starts: np.ndarray, ends: np.ndarray, since: pd.Series) -> pd.Series:
    """Per client of ``since``, when the log first showed a request of it that started at or after
    ``since[client]``: the earliest end among those requests, the moment the first of their lines is
    written (a poll held 25 s shows 25 s after it began; a quick request sent later may show first).
    Clients without such a request are absent.

    >>> first_seen(np.array(["a", "a", "b"]), np.array([5.0, 12.0, 3.0]), np.array([30.0, 12.5, 4.0]),
    ...            pd.Series({"a": 10.0, "b": 8.0})).to_dict()
    {'a': 12.5}
    """
    want = pd.Series(clients).map(since).to_numpy(dtype=np.float64)
    after = starts >= want  # NaN (a client not asked about) compares False
    return pd.Series(ends[after]).groupby(np.asarray(clients)[after], sort=False).min()


def max_window_counts(clients: np.ndarray, times: np.ndarray, window: float = WINDOW) -> pd.Series:
    """The most requests each client sent in any half-open window ``[t, t + window)``.

    >>> max_window_counts(["a", "a", "a", "b", "a"], [0.0, 30.0, 60.0, 5.0, 61.0], 60.0).to_dict()
    {'a': 3, 'b': 1}
    """
    codes, uniques = pd.factorize(np.asarray(clients, dtype=object))
    times = np.asarray(times, dtype=np.float64)
    if len(times) == 0:
        return pd.Series(dtype=np.int64)
    ms = np.round((times - times.min()) * 1000.0).astype(np.int64)
    window_ms = int(round(window * 1000.0))
    stride = int(ms.max()) + window_ms + 1  # a client's keys stay below the next client's first key
    if len(uniques) * stride >= 2**62:
        raise ValueError("log spans too long a time for millisecond window counts")
    key = np.sort(codes.astype(np.int64) * stride + ms)  # by client, then time
    counts = np.searchsorted(key, key + window_ms, side="left") - np.arange(len(key))
    owner = key // stride
    firsts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
    best = np.maximum.reduceat(counts, firsts)
    return pd.Series(best, index=pd.Index(uniques[owner[firsts]], name="client"), name="max_rate")


@dataclass(frozen=True, eq=False)
class BaselineResult:
    """The best fixed limit on this log and every candidate it was chosen from."""

    limit: int  # flag clients with more than ``limit`` requests in a window
    window: float
    basis: str
    curve: pd.DataFrame  # one row per candidate limit: limit, flagged, tp, fp, precision, recall, f1

    def flags(self, rates: pd.Series) -> pd.Series:
        return rates > self.limit


def best_limit(rates: np.ndarray, abusive: np.ndarray, window: float = WINDOW,
               basis: str = "request start time") -> BaselineResult:
    """Scan every useful limit at once and keep the one with the best F1 (module docstring).

    >>> r = best_limit(np.array([10, 50, 5, 60]), np.array([False, True, False, True]))
    >>> r.limit, r.curve.loc[r.curve.limit == r.limit, "f1"].item()
    (49, 1.0)
    """
    rates = np.asarray(rates, dtype=np.int64)
    abusive = np.asarray(abusive, dtype=bool)
    distinct = np.unique(rates[rates > 0])
    top = int(distinct[-1]) if len(distinct) else 0
    limits = np.r_[top, distinct[::-1] - 1].astype(np.int64)  # most lenient first: "flag nobody" leads
    pos = np.sort(rates[abusive])
    neg = np.sort(rates[~abusive])
    tp = len(pos) - np.searchsorted(pos, limits, side="right")  # rate > limit
    fp = len(neg) - np.searchsorted(neg, limits, side="right")
    fn = len(pos) - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), np.nan)
        recall = np.where(len(pos) > 0, tp / max(len(pos), 1), np.nan)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
    curve = pd.DataFrame({"limit": limits, "flagged": tp + fp, "tp": tp, "fp": fp, "precision": precision,
                          "recall": recall, "f1": f1})
    return BaselineResult(limit=int(limits[int(np.argmax(f1))]), window=window, basis=basis, curve=curve)
