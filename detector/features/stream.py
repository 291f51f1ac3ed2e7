"""The per-client state table on event time: events in, one ``FeatureFrame`` per tick out.

Events are held for the longest window plus the allowed lateness, then evicted, so memory is bounded
by the traffic of that span. A window longer than every window whose functions read all events (5 min
of refusals) holds only the events its functions read (``FeatureSpec.only``), and of the others the
newest of each client's user agents, so that it knows which were served (``ClientEvents.served``): five
minutes of all traffic would be five times the memory, for one count. Every ``tick`` seconds of event time the clients
that sent something since the last tick are featurised over each window; a tick is closed once the
newest event seen is ``lateness`` seconds past it, so lines that arrive a little out of order still land
in the right window. Lines older than that are counted as ``late`` and dropped.

Start records (``detector.ingest.formats.OPENED``: Envoy's or nginx's line at a request's start) are not events of
the windows: each is held as an *open request* of its client from the tick it falls in until the same
request's end arrives (or ``max_open`` seconds pass without it: a lost line), for the features that
read what is open now (``ClientEvents.open_code``). A tick's start records featurise their client only
when one of its user agents then holds two or more requests open (``_doubled``), so forty polls opened
at once are scored at the next tick, before the first of them ends; and such a client is featurised
once more at the tick after, if it still holds them, so that the policy has a second score to confirm
the first by (``detector.policy``: one odd tick is not enough) though all forty opened within one tick
and nothing of it ends for a hold time.

Replay, live ingestion, training and the notebooks all drive this one class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np
import pandas as pd

from detector.features.catalog import FEATURE_NAMES, FEATURES, FeatureSpec, compute_raw
from detector.features.view import ClientEvents, EventArrays, Interner, group_max, group_median
from detector.ingest.formats import OPENED

if TYPE_CHECKING:
    from detector.config import FeatureSettings


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
    # start records (FeatureStream._track_open)
    open_closed: int = 0  # open requests whose end came
    open_expired: int = 0  # open requests forgotten after max_open without their end
    open_refused: int = 0  # start records turned away while max_open_requests were open


@dataclass
class FeatureStream:
    """Sliding windows on event time over a stream of event batches (see module docstring)."""

    tick: float = 1.0  # also the config's default (``FeatureSettings.tick``): evaluate scores as serve does
    lateness: float = 2.0
    specs: tuple[FeatureSpec, ...] = FEATURES
    counters: StreamCounters = field(default_factory=StreamCounters)
    max_clients: int | None = None  # clients tracked at most (None: no cap); see _admit
    prefix_clients: int = 2  # a /24 (/64) with this many active addresses is also featurised whole (0: never)
    max_open: float = 600.0  # seconds an open request (a start record) waits for its end before it is forgotten
    max_open_requests: int = 200_000  # open requests held at most; further start records are counted, not held
    #: open requests are read only while at least this share of recent ends closed one (see ``_open_usable``)
    min_matched: float = 0.9

    @classmethod
    def configured(cls, settings: FeatureSettings, *, live: bool = False) -> FeatureStream:
        """The stream ``settings`` describe; ``live`` adds the cap on
        clients tracked (``max_clients``) that a service needs and a replay of a finished log does not."""
        return cls(tick=settings.tick, lateness=settings.lateness, prefix_clients=settings.prefix_clients,
                   max_open=settings.max_open, max_open_requests=settings.max_open_requests,
                   max_clients=settings.max_clients if live else None)

    def __post_init__(self) -> None:
        if self.tick <= 0:
            raise ValueError("tick must be positive")
        every = {s.window for s in self.specs if s.only is None}
        #: window -> the status mask of the only events it holds (``_kept``)
        self._sparse: dict[float, Callable[[np.ndarray], np.ndarray]] = {}
        for spec in self.specs:
            if spec.only is not None and spec.window > max(every, default=0.0):
                if self._sparse.setdefault(spec.window, spec.only) is not spec.only:
                    raise ValueError(f"the {spec.window:g} s window's features read different events")
        self._windows = tuple(sorted({s.window for s in self.specs} - set(self._sparse)))
        if not self._windows:
            raise ValueError("the features need a window of all events (the longest window sees only some)")
        self._horizon = max(self._windows) + self.lateness
        self._kept = {w: EventArrays.empty() for w in self._sparse}  # the events each sparse window holds
        #: for each sparse window, the newest of the other events of each (client, user agent): what served it
        self._served = {w: EventArrays.empty() for w in self._sparse}
        self._clients, self._paths, self._agents, self._prefixes = Interner(), Interner(), Interner(), Interner()
        self._held = EventArrays.empty()  # events already placed in closed ticks' windows
        self._pending: list[EventArrays] = []  # events waiting for their tick to close
        self._last_tick: float | None = None  # end of the last closed tick
        self._newest = -math.inf
        self._open = EventArrays.empty()  # start records whose request has not ended (see module docstring)
        self._opened_at = -math.inf  # the newest start record's time
        self._first_opened = math.inf  # the oldest start record's start: later requests should all have one
        self._ends_seen = self._ends_matched = 0.0  # ends of such requests, and those that closed one (decaying)
        self._follow = np.empty(0, dtype=np.int64)  # clients doubled at the last tick: featurised again at the next

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
                    self._close_open(arrays.take(late & (arrays.status != OPENED)))  # a late end still closes
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
            batch, opening = self._track_open(batch, at)
            doubled = self._doubled(opening)
            codes = np.union1d(np.union1d(np.unique(batch.client), doubled), self._doubled(self._follow))
            self._follow = doubled
            held = self._held
            self._held = EventArrays.concat([held.take(held.end > at - self._horizon), batch])
            for w, only in self._sparse.items():
                mask = only(batch.status)
                kept = self._kept[w]
                self._kept[w] = EventArrays.concat([kept.take(kept.end > at - w - self.lateness), batch.take(mask)])
                served = self._served[w]
                self._served[w] = _newest_per_agent(EventArrays.concat([
                    served.take(served.end > at - w - self.lateness), batch.take(~mask)]))
            self._last_tick = at
            self.counters.ticks += 1
            frame = self.features_at(at, codes)
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
        opened = self._open if self._open_usable(at) else None
        views = {w: ClientEvents.from_arrays(held, at, w, codes, len(self._clients), opened=opened)
                 for w in self._windows}
        for w in self._sparse:
            views[w] = self._sparse_view(w, at, codes)
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
                by_prefix.update({w: ClientEvents.from_arrays(self._kept[w], at, w, groups, len(self._prefixes),
                                                              by="prefix") for w in self._sparse})
                names = np.concatenate([names, np.asarray(self._prefixes.names, dtype=object)[groups]])
                raw = np.vstack([raw, compute_raw(by_prefix, self.specs)])
        return FeatureFrame(at, names, raw, spec_names, failing)

    def _sparse_view(self, width: float, at: float, codes: np.ndarray) -> ClientEvents:
        """The clients ``codes`` over the events a sparse window holds (``_kept``); an event's user agent
        counts as served (``ClientEvents.served``) where it had an answer of another kind in the window
        (``_served``), as the window holds none of those."""
        view = ClientEvents.from_arrays(self._kept[width], at, width, codes, len(self._clients))
        served = self._served[width]
        served = served.take((served.end > at - width) & (served.end <= at))
        base = len(self._agents) + 1
        return replace(view, served=np.isin(codes[view.code] * base + view.ua,
                                            served.client * base + served.ua))

    def _track_open(self, batch: EventArrays, at: float) -> tuple[EventArrays, np.ndarray]:
        """Move the tick's start records to the open requests (at most ``max_open_requests``), close those
        whose end is in ``batch``, forget those older than ``max_open``; return the batch's ended requests
        and the clients (sorted codes) whose start records it held."""
        starts = batch.status == OPENED
        opening = np.unique(batch.client[starts])
        if len(opening):
            new = batch.take(starts)
            room = max(self.max_open_requests - len(self._open), 0)
            if len(new) > room:
                self.counters.open_refused += len(new) - room
                new = new.take(slice(0, room))
            self._open = EventArrays.concat([self._open, new])
            self._opened_at = max(self._opened_at, float(batch.end[starts].max()))
            self._first_opened = min(self._first_opened, float(batch.start[starts].min()))
            batch = batch.take(~starts)
        self._ends_seen *= _MEMORY
        self._ends_matched *= _MEMORY
        self._close_open(batch)
        if len(self._open):
            fresh = self._open.start > at - self.max_open
            if not fresh.all():
                self.counters.open_expired += int((~fresh).sum())
                self._open = self._open.take(fresh)
        return batch, opening

    def _close_open(self, ended: EventArrays) -> None:
        """Close the open requests whose ends are in ``ended``, and note how many of its requests begun since
        the first start record found theirs (``_open_usable``)."""
        if not len(ended) or self._first_opened == math.inf:
            return
        closed = 0
        if len(self._open):
            keep = _unmatched(_request_keys(self._open), _request_keys(ended))
            closed = int((~keep).sum())
            if closed:
                self._open = self._open.take(keep)
        self.counters.open_closed += closed
        self._ends_seen += float((ended.start >= self._first_opened).sum())
        self._ends_matched += closed

    def _open_usable(self, at: float) -> bool:
        """Whether the open requests can be read: start records came within ``max_open``, and at least
        ``min_matched`` of the recent ends of requests begun since the first one closed an open request.
        Where a filter rewrites the path (or a user agent, or the client field) between Envoy's start
        record and its end record, nothing matches, every request would stay "open" for ``max_open``
        and an ordinary client would look like a flood; the feature is then NaN, as without start records."""
        return (at - self._opened_at <= self.max_open and self._ends_seen >= 1.0
                and self._ends_matched >= self.min_matched * self._ends_seen)

    def _doubled(self, clients: np.ndarray) -> np.ndarray:
        """Those of ``clients`` (sorted codes) with a user agent holding two or more open requests. A start
        record alone featurises its client only then: one program's first poll of a minute, or a page's
        next poll, changes nothing a row would show, and a row at every start would only double the rows
        (and the training clients' chances of an odd tick, so the calibrated thresholds)."""
        if not len(clients) or not len(self._open):
            return clients[:0]
        mine = np.isin(self._open.client, clients)
        base = int(self._open.ua.max()) + 1
        pairs, counts = np.unique(self._open.client[mine] * base + self._open.ua[mine], return_counts=True)
        return np.unique(pairs[counts >= 2] // base)

    @property
    def matched_share(self) -> float:
        """The share of recent ends that closed an open request (``_open_usable`` reads open requests only
        while it is at least ``min_matched``); NaN before any start record or end came."""
        return self._ends_matched / self._ends_seen if self._ends_seen > 0 else math.nan

    @property
    def open_requests(self) -> int:
        """Requests begun (start records) and not yet ended."""
        return len(self._open)

    @property
    def held_events(self) -> int:
        return (len(self._held) + sum(len(p) for p in self._pending) + len(self._open)
                + sum(len(k) for k in self._kept.values()) + sum(len(k) for k in self._served.values()))

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
        parts = [self._held, *self._pending, self._open, *self._kept.values()]  # not _served: it keeps nobody
        before = len(self._clients)
        remapped = {}
        for column, interner in (("client", self._clients), ("path", self._paths), ("ua", self._agents),
                                 ("prefix", self._prefixes)):
            used = np.unique(np.concatenate([getattr(p, column) for p in parts]))
            remapped[column] = interner.keep(used)
        self._held = self._held.recode(**remapped)
        self._pending = [p.recode(**remapped) for p in self._pending]
        self._open = self._open.recode(**remapped)
        self._kept = {w: kept.recode(**remapped) for w, kept in self._kept.items()}
        # a forgotten client's (or user agent's) answers are forgotten with it: they served nothing held
        self._served = {w: _known(served.recode(**remapped)) for w, served in self._served.items()}
        follow = remapped["client"][self._follow]
        self._follow = follow[follow >= 0]
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


#: Per tick, the weight left to earlier ends in ``_open_usable``'s share (about the last 30 ticks count).
_MEMORY = 0.97


def _newest_per_agent(ev: EventArrays) -> EventArrays:
    """The newest event (by end) of each (client, user agent) of ``ev``.

    >>> zero = {c: np.zeros(4) for c in ("start", "duration", "status", "bytes", "path", "request", "target", "prefix")}
    >>> ev = EventArrays(client=np.array([0, 0, 1, 0]), ua=np.array([3, 3, 3, 4]), end=np.array([5.0, 9.0, 7.0, 1.0]),
    ...                  **zero)
    >>> newest = _newest_per_agent(ev)
    >>> sorted(zip(newest.client.tolist(), newest.ua.tolist(), newest.end.tolist()))
    [(0, 3, 9.0), (0, 4, 1.0), (1, 3, 7.0)]
    """
    if len(ev) < 2:
        return ev
    order = np.lexsort((ev.end, ev.ua, ev.client))
    client, ua = ev.client[order], ev.ua[order]
    last = np.r_[(client[1:] != client[:-1]) | (ua[1:] != ua[:-1]), True]
    return ev.take(order[last])


def _known(ev: EventArrays) -> EventArrays:
    """``ev`` without the events whose client or user agent ``FeatureStream.evict_idle`` forgot (coded -1)."""
    return ev.take((ev.client >= 0) & (ev.ua >= 0))


def _request_keys(ev: EventArrays) -> np.ndarray:
    """One 64-bit key per request: client, user agent, path and query, start to the millisecond. A start
    record and its request's end share it (Envoy writes the same ``start_time`` on both)."""
    with np.errstate(over="ignore"):
        key = ev.request.astype(np.uint64)
        for column, odd in ((ev.client, 0x9E3779B97F4A7C15), (ev.ua, 0xC2B2AE3D27D4EB4F), (ev.path, 0xD6E8FEB86659FD93),
                            (np.round(ev.start * 1000.0).astype(np.int64), 0x165667B19E3779F9)):
            key = (key ^ column.astype(np.uint64)) * np.uint64(odd)
    return key


def _unmatched(open_keys: np.ndarray, end_keys: np.ndarray) -> np.ndarray:
    """Which open requests no end in ``end_keys`` closes: each end closes one open request of its key.

    >>> _unmatched(np.array([5, 7, 5, 5]), np.array([5, 5, 9])).tolist()
    [False, True, False, True]
    """
    keep = np.ones(len(open_keys), dtype=bool)
    if not len(open_keys) or not len(end_keys):
        return keep
    keys, counts = np.unique(end_keys, return_counts=True)
    order = np.argsort(open_keys, kind="stable")
    ordered = open_keys[order]
    rank = np.arange(len(ordered)) - np.searchsorted(ordered, ordered, side="left")  # k-th open request of its key
    at = np.minimum(np.searchsorted(keys, ordered), len(keys) - 1)
    closing = np.where(keys[at] == ordered, counts[at], 0)
    keep[order[rank < closing]] = False
    return keep


def _spread(held: EventArrays, at: float, width: float, prefixes: np.ndarray, ratio: float = 4.0) -> np.ndarray:
    """The ``prefixes`` (sorted codes) whose traffic in ``(at - width, at]`` is spread over their
    addresses: no address sent more than half of the prefix's requests, of its failed requests (4xx: a
    server's 5xx in an outage fall on every address alike, and hid a scanner among its neighbours' 502s)
    or of its response bytes (even without its own largest answer), nor more than ``ratio`` times the
    requests of the median address.

    A prefix scored whole is for many addresses acting alike (one operator's fleet). Where one address
    stands out in any of these, the prefix is that address's doing and the address is judged by itself:
    a script on one phone of a carrier's CGNAT pool must not get the pool's other phones blocked with it.
    An address's largest answer does not count towards its share of the bytes: one large answer (a page's
    history, fetched once) is most of a minute's bytes of a prefix that polls, and kept forty addresses of
    a flood from being seen together for that minute; a phone that downloads much (a replayed cursor's
    answers) gets many answers.
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
    nbytes = held.bytes[window].astype(np.float64)
    largest = group_max(nbytes, inverse, len(pairs))
    status = held.status[window]
    failed = ((status >= 400) & (status < 500)).astype(np.float64)  # the server's own 5xx fall on everyone alike
    for weights, less in ((None, 0.0), (failed, 0.0), (nbytes, largest)):
        per_address = np.bincount(inverse, weights=weights, minlength=len(pairs)).astype(np.float64)
        top = group_max(per_address - less, owner, n)
        total = np.bincount(owner, weights=per_address, minlength=n)
        spread &= (top <= 0.5 * total) | (total == 0)
        if weights is None:
            spread &= top <= ratio * group_median(per_address, owner, n)
    return prefixes[spread]
