"""The per-client state table on event time: events in, one ``FeatureFrame`` per tick out.

Events are held for the longest window plus the allowed lateness, then evicted, so memory is bounded
by the traffic of that span. Every ``tick`` seconds of event time the clients that sent something
since the last tick are featurised over each window; a tick is closed once the newest event seen is
``lateness`` seconds past it, so lines that arrive a little out of order still land in the right
window. Lines older than that are counted as ``late`` and dropped.

Replay, live ingestion, training and the notebooks all drive this one class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import pandas as pd

from detector.features.catalog import FEATURE_NAMES, FEATURES, FeatureSpec, compute_raw
from detector.features.view import ClientEvents, EventArrays, Interner, group_median


@dataclass(frozen=True)
class FeatureFrame:
    """Raw (untransformed) features of some clients at event time ``at``."""

    at: float
    clients: np.ndarray
    raw: np.ndarray  # shape (len(clients), len(names))
    names: tuple[str, ...] = FEATURE_NAMES
    failing_share: float = 0.0  # share of all clients active in the shortest window that got 5xx/429

    def __len__(self) -> int:
        return len(self.clients)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.raw, index=pd.Index(self.clients, name="client"), columns=list(self.names))


@dataclass
class StreamCounters:
    events: int = 0
    late: int = 0
    ticks: int = 0
    rows: int = 0
    # bounded state (live ingestion): see FeatureStream.evict_idle / _admit
    refused_events: int = 0  # events of new clients turned away while max_clients were tracked
    refused_clients: int = 0  # distinct new clients turned away (per batch)
    evicted_clients: int = 0  # idle clients forgotten


@dataclass
class FeatureStream:
    """Sliding windows on event time over a stream of event batches (see module docstring)."""

    tick: float = 2.0
    lateness: float = 2.0
    specs: tuple[FeatureSpec, ...] = FEATURES
    counters: StreamCounters = field(default_factory=StreamCounters)
    max_clients: int | None = None  # clients tracked at most (None: no cap); see _admit
    prefix_clients: int = 2  # a /24 (/64) with this many active addresses is also featurised whole (0: never)

    def __post_init__(self) -> None:
        if self.tick <= 0:
            raise ValueError("tick must be positive")
        self._windows = tuple(sorted({s.window for s in self.specs}))
        self._horizon = max(self._windows) + self.lateness
        self._clients, self._paths, self._agents, self._prefixes = Interner(), Interner(), Interner(), Interner()
        self._held = EventArrays.empty()  # events already placed in closed ticks' windows
        self._pending: list[EventArrays] = []  # events waiting for their tick to close
        self._last_tick: float | None = None  # end of the last closed tick
        self._newest = -math.inf

    @property
    def watermark(self) -> float:
        """Ticks ending at or before this event time are closed."""
        return self._newest - self.lateness

    def push(self, events: pd.DataFrame) -> Iterator[FeatureFrame]:
        """Add a batch of events and yield the frames of every tick this closes."""
        if len(events):
            self.counters.events += len(events)
            events = self._admit(events)
            arrays = EventArrays.from_frame(events, self._clients, self._paths, self._agents, self._prefixes)
            if self._last_tick is not None:
                late = arrays.end <= self._last_tick
                if late.any():
                    self.counters.late += int(late.sum())
                    arrays = arrays.take(~late)
            if len(arrays):
                self._pending.append(arrays)
                self._newest = max(self._newest, float(arrays.end.max()))
        yield from self._close_until(self.watermark)

    def finish(self) -> Iterator[FeatureFrame]:
        """Close every tick that holds pending events (end of a replay)."""
        yield from self._close_until(math.inf)

    def _close_until(self, limit: float) -> Iterator[FeatureFrame]:
        if not self._pending:
            return
        pending = EventArrays.concat(self._pending)
        pending = pending.take(np.argsort(pending.end, kind="stable"))
        ends = pending.end
        first = self._last_tick if self._last_tick is not None else math.floor(ends[0] / self.tick) * self.tick
        # the tick (first + k * tick) each event closes with
        boundaries = first + np.maximum(np.ceil((ends - first) / self.tick), 1.0) * self.tick
        n_close = int(np.searchsorted(boundaries, limit, side="right"))  # sorted, so a prefix
        self._pending = [pending.take(slice(n_close, None))] if n_close < len(pending) else []
        if n_close == 0:
            return
        cuts = boundaries[:n_close]
        starts = np.flatnonzero(np.r_[True, cuts[1:] != cuts[:-1]])
        stops = np.r_[starts[1:], n_close]
        for a, b in zip(starts, stops):
            at = float(cuts[a])
            batch = pending.take(slice(a, b))
            held = self._held
            self._held = EventArrays.concat([held.take(held.end > at - self._horizon), batch])
            self._last_tick = at
            self.counters.ticks += 1
            frame = self.features_at(at, np.unique(batch.client))
            self.counters.rows += len(frame)
            yield frame

    def features_at(self, at: float, codes: np.ndarray) -> FeatureFrame:
        """Raw features of the clients ``codes`` over the held events at event time ``at``.

        The frame also holds one row per network prefix (``"203.0.113.0/24"``) of those clients with at
        least ``prefix_clients`` active addresses in the longest window over which its requests are spread
        (``_spread``): every event of its addresses featurised as if one client sent them, so that forty
        addresses each polling a little too often show as the one flood they are. Its verdicts apply to
        the whole prefix.
        """
        held = self._held
        views = {w: ClientEvents.from_arrays(held, at, w, codes, len(self._clients)) for w in self._windows}
        names = np.asarray(self._clients.names, dtype=object)[codes]
        short = views[self._windows[0]]
        failing = short.population_failing / short.population if short.population else 0.0
        raw = compute_raw(views, self.specs)
        spec_names = tuple(s.name for s in self.specs)
        longest = views[self._windows[-1]]
        if self.prefix_clients > 0 and longest.prefix is not None and len(codes):
            crowded = codes[longest.prefix.addresses >= max(self.prefix_clients, 2)]
            if len(crowded):
                prefix_of = np.full(len(self._clients), -1, dtype=np.int64)
                prefix_of[held.client] = held.prefix
                groups = np.unique(prefix_of[crowded])
                groups = _spread(held, at, self._windows[-1], groups[groups >= 0])
                by_prefix = {w: ClientEvents.from_arrays(held, at, w, groups, len(self._prefixes), by="prefix")
                             for w in self._windows}
                names = np.concatenate([names, np.asarray(self._prefixes.names, dtype=object)[groups]])
                raw = np.vstack([raw, compute_raw(by_prefix, self.specs)])
        return FeatureFrame(at, names, raw, spec_names, failing)

    @property
    def held_events(self) -> int:
        return len(self._held) + sum(len(p) for p in self._pending)

    # -- bounded state and wall-clock progress (live ingestion) -----------------------------------------
    def advance(self, event_time: float) -> Iterator[FeatureFrame]:
        """Close the ticks that an event ending at ``event_time`` would close, though none came (traffic
        paused; the caller estimates event time from the wall clock). Later events are placed as usual."""
        self._newest = max(self._newest, event_time)
        yield from self._close_until(self.watermark)

    @property
    def tracked_clients(self) -> int:
        """Client names held (those with events in the windows, plus idle ones not yet evicted)."""
        return len(self._clients)

    def evict_idle(self) -> int:
        """Forget clients (and paths, user agents, prefixes) with no event held or pending: idle past the longest
        window plus the lateness. Codes are renumbered in their old order, so frames come out the same as
        without eviction. Returns how many clients were forgotten."""
        parts = [self._held, *self._pending]
        before = len(self._clients)
        remapped = {}
        for column, interner in (("client", self._clients), ("path", self._paths), ("ua", self._agents),
                                 ("prefix", self._prefixes)):
            used = np.unique(np.concatenate([getattr(p, column) for p in parts]))
            remapped[column] = interner.keep(used)
        self._held = self._held.recode(**remapped)
        self._pending = [p.recode(**remapped) for p in self._pending]
        gone = before - len(self._clients)
        self.counters.evicted_clients += gone
        return gone

    def _admit(self, events: pd.DataFrame) -> pd.DataFrame:
        """The cap check: with ``max_clients`` tracked, events of further new clients are turned away and
        counted (``refused_events`` / ``refused_clients``), after idle clients were evicted to make room.
        Known clients are never turned away."""
        if self.max_clients is None:
            return events
        names = events["client"]
        known = self._clients.codes
        new = [n for n in pd.unique(names.to_numpy(dtype=object)) if n not in known]
        if len(self._clients) + len(new) <= self.max_clients:
            return events
        self.evict_idle()
        room = max(self.max_clients - len(self._clients), 0)
        if len(new) <= room:
            return events
        refused = new[room:]
        keep = ~names.isin(refused).to_numpy()
        self.counters.refused_clients += len(refused)
        self.counters.refused_events += int((~keep).sum())
        return events[keep]


def _spread(held: EventArrays, at: float, width: float, prefixes: np.ndarray, ratio: float = 4.0) -> np.ndarray:
    """The ``prefixes`` (sorted codes) whose traffic in ``(at - width, at]`` is spread over their
    addresses: no address sent more than half of the prefix's requests, of its failed requests (status
    400 and up) or of its response bytes, nor more than ``ratio`` times the requests of the median address.

    A prefix scored whole is for many addresses acting alike (one operator's fleet). Where one address
    stands out in any of these, the prefix is that address's doing and the address is judged by itself:
    a script on one phone of a carrier's CGNAT pool must not get the pool's other phones blocked with it.
    """
    if len(prefixes) == 0:
        return prefixes
    window = np.flatnonzero((held.end > at - width) & (held.end <= at) & np.isin(held.prefix, prefixes))
    group = np.searchsorted(prefixes, held.prefix[window])  # 0..len(prefixes)-1
    base = int(held.client.max()) + 1
    pairs, inverse = np.unique(group * base + held.client[window], return_inverse=True)
    owner = pairs // base  # the prefix (group) of each (prefix, address) pair
    n = len(prefixes)
    spread = np.ones(n, dtype=bool)
    for weights in (None, (held.status[window] >= 400).astype(np.float64), held.bytes[window]):
        per_address = np.bincount(inverse, weights=weights, minlength=len(pairs)).astype(np.float64)
        top = np.zeros(n)
        np.maximum.at(top, owner, per_address)
        total = np.bincount(owner, weights=per_address, minlength=n)
        spread &= (top <= 0.5 * total) | (total == 0)
        if weights is None:
            spread &= top <= ratio * group_median(per_address, owner, n)
    return prefixes[spread]
