"""Columnar events with interned strings, and ``ClientEvents``: one window grouped by client.

``EventArrays`` is how the feature stage holds events: numpy columns, with client, path, user agent and
the client's network prefix (IPv4 /24, IPv6 /64) replaced by integer codes from an ``Interner``, and the
whole request (path and query) by a 64-bit hash, so that per-tick work is pure numpy. ``ClientEvents`` is
the input of every feature function: rows sorted by client then start time, ``code`` numbering the
clients 0..n-1 in ``clients`` order, so a function answers with one value per client by reducing over
``code``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
import pandas as pd

from detector.ingest.formats import OPENED
from detector.ingest.identity import prefix_of


class Interner:
    """Strings to dense integer codes, stable for the life of the interner."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}
        self.names: list[str] = []

    def encode(self, values: np.ndarray | pd.Series) -> np.ndarray:
        local, uniques = pd.factorize(np.asarray(values, dtype=object))
        lookup = np.empty(len(uniques), dtype=np.int64)
        codes, names = self.codes, self.names
        for i, name in enumerate(uniques):
            code = codes.get(name)
            if code is None:
                code = codes[name] = len(names)
                names.append(name)
            lookup[i] = code
        return lookup[local] if len(local) else np.empty(0, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.names)

    def keep(self, codes: np.ndarray) -> np.ndarray:
        """Keep only the names of the sorted ``codes``, renumbered 0.. in the same order; return the map
        from old to new codes (-1 for a forgotten one). For evicting idle names (``FeatureStream``)."""
        remap = np.full(len(self.names), -1, dtype=np.int64)
        remap[codes] = np.arange(len(codes))
        self.names = [self.names[i] for i in codes.tolist()]
        self.codes = {name: i for i, name in enumerate(self.names)}
        return remap


_COLUMNS = ("client", "start", "end", "duration", "status", "bytes", "path", "ua", "request", "target", "prefix")
_CODES = ("client", "status", "path", "ua", "request", "target", "prefix")


def distinct_per_group(groups: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Number of distinct integer ``values`` per integer group ``0..n-1``.

    >>> distinct_per_group(np.array([0, 0, 0, 2]), np.array([7, 7, 3, 7]), 3).tolist()
    [2.0, 0.0, 1.0]
    """
    if len(values) == 0:
        return np.zeros(n)
    base = int(values.max()) + 1
    return np.bincount(np.unique(groups * base + values) // base, minlength=n).astype(np.float64)


def group_max(values: np.ndarray, groups: np.ndarray, n: int) -> np.ndarray:
    """Largest of ``values`` per integer group ``0..n-1``, and at least 0 (counts, bytes, open requests).

    >>> group_max(np.array([5.0, 1.0, 3.0]), np.array([0, 0, 2]), 3).tolist()
    [5.0, 0.0, 3.0]
    """
    out = np.zeros(n)
    np.maximum.at(out, groups, values)
    return out


def group_median(values: np.ndarray, groups: np.ndarray, n: int) -> np.ndarray:
    """Median of ``values`` per integer group ``0..n-1`` (NaN for an empty group), in numpy alone.

    >>> group_median(np.array([5.0, 1.0, 3.0, 2.0, 4.0]), np.array([0, 0, 0, 2, 2]), 3).tolist()
    [3.0, nan, 3.0]
    """
    out = np.full(n, np.nan)
    if len(values) == 0:
        return out
    order = np.lexsort((values, groups))
    ordered = values[order]
    counts = np.bincount(groups, minlength=n)
    starts = np.cumsum(counts) - counts
    has = counts > 0
    lo = starts[has] + (counts[has] - 1) // 2
    hi = starts[has] + counts[has] // 2
    out[has] = (ordered[lo] + ordered[hi]) / 2
    return out


def refused(status: np.ndarray) -> np.ndarray:
    """4xx answers other than 429 and 499: what the client asked for was refused (401, 403, 404, ...).

    >>> refused(np.array([200, 401, 404, 429, 499, 503])).tolist()
    [False, True, True, False, False, False]
    """
    return (status >= 400) & (status < 500) & (status != 429) & (status != 499)


def counted_agents(groups: np.ndarray, agents: np.ndarray, status: np.ndarray, n: int) -> np.ndarray:
    """Distinct user agents per group ``0..n-1`` not only refused: a user agent whose every request was
    refused (``refused``) is a string sent along, not a person (see ``ClientEvents.agents``).

    >>> counted_agents(np.array([0, 0, 0, 1]), np.array([5, 6, 6, 5]), np.array([200, 401, 404, 429]), 2).tolist()
    [1.0, 1.0]
    """
    counted = ~refused(status)
    return distinct_per_group(groups[counted], agents[counted], n)


NOT_REPEATABLE = 0  # the request code of a request that changes state (POST, PUT, ...)
#: A request held this long (seconds) may be a long poll; a window without one shows no long polling.
LONG_POLL = 5.0


def poll_paths(paths: np.ndarray, durations: np.ndarray, clients: np.ndarray, population: int | None = None,
               share: float = 0.1, least: float = 0.05) -> np.ndarray:
    """The long-poll endpoint(s) of a window, read off everyone's traffic: the paths (sorted codes) on
    which at least ``share`` of the clients holding any request ``LONG_POLL`` s or longer held one, and
    at least ``least`` of all the window's clients (``clients``: one entry per request; ``population``:
    how many distinct, when known). Empty when the window shows no long polling (nothing held, or no
    durations).

    Counted in clients, not requests: the server holds the polls of most of its clients, while a handful
    of clients can hold long requests of their own (downloads; connections that never send a request
    line, closed with a 408). Counted in requests, eight such clients made their paths the endpoint during
    an outage (when the server holds no poll), and every poll of everyone else became a read nothing
    prompted; and one client's slow report among sixty clients' quick requests is no long polling.

    >>> poll_paths(np.array([1, 1, 1, 2, 3, 3]), np.array([25.0, 20.0, 24.0, 0.1, 13.0, 30.0]),
    ...            np.array([7, 8, 9, 7, 7, 7])).tolist()
    [1, 3]
    >>> poll_paths(np.array([1, 1, 3]), np.array([25.0, 0.1, 30.0]), np.arange(3), least=0.5).tolist()
    []
    """
    long = np.nan_to_num(np.asarray(durations, dtype=np.float64), nan=0.0) >= LONG_POLL
    if not long.any():
        return np.empty(0, dtype=np.int64)
    path, who = np.asarray(paths, dtype=np.int64)[long], np.asarray(clients, dtype=np.int64)[long]
    base = int(who.max()) + 1
    codes, holders = np.unique(pd.unique(path * base + who) // base, return_counts=True)
    everyone = len(pd.unique(np.asarray(clients))) if population is None else population
    enough = (holders >= share * len(pd.unique(who))) & (holders >= least * everyone)
    return codes[enough].astype(np.int64)


#: Methods that change nothing; a request with another method, where the log names one, is a write.
READS = ("GET", "HEAD", "OPTIONS")


def request_hashes(events: pd.DataFrame) -> np.ndarray:
    """A 64-bit hash of each read's path and query: the same read sent again hashes the same.

    Requests that change state (a POST to ``/v1/publish``, ...) are ``NOT_REPEATABLE``: the same path
    with another body is another request. A request whose method the log does not give (a mapped JSONL
    format without one, a malformed request line) counts as a read, not as a write.

    >>> frame = pd.DataFrame({"path": ["/a"] * 5, "method": ["GET", "POST", "", "get", "OPTIONS"]})
    >>> (request_hashes(frame) == NOT_REPEATABLE).tolist()
    [False, True, False, False, False]
    """
    if not len(events):
        return np.empty(0, dtype=np.int64)
    query = events["query"] if "query" in events else pd.Series("", index=events.index)
    uri = events["path"].astype(str).to_numpy(dtype=object) + "?" + query.astype(str).to_numpy(dtype=object)
    return np.where(_writes(events), NOT_REPEATABLE, pd.util.hash_array(uri).view(np.int64))


def _writes(events: pd.DataFrame) -> np.ndarray:
    """Per event, a request that changes state: a method the log names other than ``READS``."""
    if "method" not in events:
        return np.zeros(len(events), dtype=bool)
    method = events["method"].fillna("").astype(str).str.strip().str.upper()
    return (~method.isin(READS + ("", "-"))).to_numpy()


NO_TARGET = 0  # the write target (``write_targets``) of a read
#: A path segment that names one record rather than a kind of thing: a number, a UUID, a long hex id.
_RECORD_ID = (r"(?<=/)(?:\d+|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
              r"|[0-9a-fA-F]{16,})(?=/|$)")


def write_targets(events: pd.DataFrame, writes: np.ndarray | None = None) -> np.ndarray:
    """A 64-bit hash of what each write (``writes``, default ``_writes``) writes to: its path with every
    segment that is a record id (a number, a UUID, a long hex string) taken out; ``NO_TARGET`` for a read.

    A chat client marks each message it shows as read (``POST /v1/messages/<id>/read``) and an editor
    saves each note it changed (``PUT /v1/notes/<id>``): one target, however many records. A program
    posting to one room after another by name writes to many.

    >>> frame = pd.DataFrame({"path": ["/v1/messages/17/read", "/v1/messages/4242/read", "/v1/rooms/sales/messages",
    ...                                "/v1/rooms/support/messages", "/v1/rooms/sales/messages"],
    ...                       "method": ["POST", "POST", "POST", "POST", "GET"]})
    >>> t = write_targets(frame)
    >>> [bool(t[0] == t[1]), bool(t[1] == t[2]), bool(t[2] == t[3]), bool(t[4] == NO_TARGET)]
    [True, False, False, True]
    """
    if not len(events):
        return np.empty(0, dtype=np.int64)
    writes = _writes(events) if writes is None else writes
    targets = np.full(len(events), NO_TARGET, dtype=np.int64)
    if writes.any():
        paths = events["path"].astype(str)[writes].str.replace(_RECORD_ID, "*", regex=True)
        targets[writes] = pd.util.hash_array(paths.to_numpy(dtype=object)).view(np.int64)
    return targets


def prefix_codes(clients: np.ndarray, prefixes: Interner) -> np.ndarray:
    """The interned network prefix (``prefix_of``: IPv4 /24, IPv6 /64) of each client name."""
    local, uniques = pd.factorize(np.asarray(clients, dtype=object))
    return prefixes.encode(np.array([prefix_of(str(c)) for c in uniques], dtype=object))[local] \
        if len(local) else np.empty(0, dtype=np.int64)


@dataclass(frozen=True)
class EventArrays:
    """Events as numpy columns; ``client``, ``path`` and ``ua`` are interned codes."""

    client: np.ndarray
    start: np.ndarray
    end: np.ndarray
    duration: np.ndarray
    status: np.ndarray
    bytes: np.ndarray
    path: np.ndarray
    ua: np.ndarray
    request: np.ndarray  # int64 hash of a read's path and query (``request_hashes``)
    target: np.ndarray  # int64 hash of what a write writes to (``write_targets``)
    prefix: np.ndarray  # interned network prefix of the client

    @classmethod
    def from_frame(cls, events: pd.DataFrame, clients: Interner, paths: Interner, agents: Interner,
                   prefixes: Interner) -> EventArrays:
        request = request_hashes(events)
        return cls(
            client=clients.encode(events["client"]),
            start=events["start"].to_numpy(np.float64),
            end=events["end"].to_numpy(np.float64),
            duration=events["duration"].to_numpy(np.float64),
            status=events["status"].to_numpy(np.int64),
            bytes=events["bytes"].to_numpy(np.float64),
            path=paths.encode(events["path"]),
            ua=agents.encode(events["ua"]),
            request=request,
            target=write_targets(events, request == NOT_REPEATABLE),
            prefix=prefix_codes(events["client"], prefixes),
        )

    @classmethod
    def empty(cls) -> EventArrays:
        return cls(*(np.empty(0, dtype=np.int64 if c in _CODES else np.float64)
                     for c in _COLUMNS))

    @classmethod
    def concat(cls, parts: list[EventArrays]) -> EventArrays:
        if len(parts) == 1:
            return parts[0]
        return cls(*(np.concatenate([getattr(p, c) for p in parts]) for c in _COLUMNS))

    def take(self, index: np.ndarray | slice) -> EventArrays:
        return EventArrays(*(getattr(self, c)[index] for c in _COLUMNS))

    def recode(self, client: np.ndarray, path: np.ndarray, ua: np.ndarray, prefix: np.ndarray) -> EventArrays:
        """The same events with their interned codes mapped through ``Interner.keep``'s maps."""
        return replace(self, client=client[self.client], path=path[self.path], ua=ua[self.ua],
                       prefix=prefix[self.prefix])

    def __len__(self) -> int:
        return len(self.end)


@dataclass(frozen=True)
class PrefixView:
    """What *all* addresses of each client's network prefix (IPv4 /24, IPv6 /64) did in the window.

    One value per client of the ``ClientEvents`` it belongs to (the client itself included), counted
    over every event of the prefix, not only the scored clients' events: many addresses acting together
    show here although each looks mild alone.
    """

    addresses: np.ndarray  # distinct addresses of the prefix with a request that ended in the window
    requests: np.ndarray  # requests of the prefix
    agents: np.ndarray  # distinct user agents of the prefix, not only refused (as ``ClientEvents.agents``)
    failures: np.ndarray  # 4xx answers (429 and 499 included) of the prefix

    @classmethod
    def of(cls, prefix: np.ndarray, client: np.ndarray, ua: np.ndarray, status: np.ndarray,
           client_prefix: np.ndarray) -> PrefixView:
        """From the window's events (``prefix``, ``client``, ``ua``, ``status`` per event) for clients whose
        prefixes are ``client_prefix``."""
        if len(prefix) == 0:
            zero = np.zeros(len(client_prefix))
            return cls(zero, zero, zero, zero)
        keys, inverse = np.unique(prefix, return_inverse=True)
        k = len(keys)
        fail = ((status >= 400) & (status < 500)).astype(np.float64)
        per = np.column_stack([distinct_per_group(inverse, client, k),
                               np.bincount(inverse, minlength=k).astype(np.float64),
                               counted_agents(inverse, ua, status, k),
                               np.bincount(inverse, weights=fail, minlength=k)])
        at = np.searchsorted(keys, client_prefix)
        found = (at < k) & (keys[np.minimum(at, k - 1)] == client_prefix)
        rows = np.where(found[:, None], per[np.minimum(at, k - 1)], 0.0)
        return cls(*rows.T)


@dataclass(frozen=True)
class ClientEvents:
    """Events of a window ``(at - width, at]`` (by end time), grouped by client."""

    clients: np.ndarray  # the client of each group (keys or codes)
    code: np.ndarray  # int64 group of each event
    start: np.ndarray
    end: np.ndarray
    duration: np.ndarray  # NaN where the format carries none
    status: np.ndarray
    bytes: np.ndarray
    path: np.ndarray  # int codes of distinct paths
    ua: np.ndarray  # int codes of distinct user agents
    request: np.ndarray  # int64 hash of path and query
    target: np.ndarray  # int64 hash of what a write writes to, NO_TARGET for a read (``write_targets``)
    at: float
    width: float
    population: int = 0  # distinct clients (of *all* clients) with a request that ended in the window
    population_failing: int = 0  # ... of which got at least one 5xx or 429
    #: the server's hold time as seen: the 99th percentile of the durations on the long-poll endpoint
    #: (``poll_paths``), or of all durations where the window shows none
    population_hold: float = float("nan")
    bodies_logged: bool = True  # some answer in the window (anyone's) has a body: the log gives response sizes
    prefix_source: tuple | None = field(default=None, repr=False, compare=False)  # PrefixView.of's arguments
    fleet_ua: np.ndarray | None = None  # grouped by prefix: each event's user-agent string (``ua`` is per address)
    #: the window's long-poll endpoint(s) (module ``poll_paths``); none where it shows no long polling
    poll_paths: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64), repr=False, compare=False)
    open_code: np.ndarray | None = None  # group of each request open at ``at`` (start records); None: none known
    open_ua: np.ndarray | None = None  # ... its user agent
    open_start: np.ndarray | None = None  # ... and its start
    #: per event, whether its client's user agent had an answer not refused (``refused``) in the window, where
    #: the window holds only refusals (``FeatureStream``'s long windows); None: read off the window's events
    served: np.ndarray | None = None

    @cached_property
    def prefix(self) -> PrefixView | None:
        """The window seen per network prefix, one entry per client (worked out when first asked for)."""
        return None if self.prefix_source is None else PrefixView.of(*self.prefix_source)

    @property
    def n(self) -> int:
        return len(self.clients)

    @cached_property
    def count(self) -> np.ndarray:
        """Requests per client."""
        return np.bincount(self.code, minlength=self.n).astype(np.float64)

    @cached_property
    def agents(self) -> np.ndarray:
        """Distinct user agents per client not only refused (many features divide by it).

        Dividing by user agents keeps an office behind one NAT from being blamed for its number of people;
        a user agent whose every request was refused (``refused``: 401, 403, 404, ...) is not a person
        being served but a string sent along, so a client rotating its user agent while stuffing
        credentials or scanning does not divide its rate by its rotation. Any other answer counts, a 429
        or 5xx included: an office throttled, or caught in an outage, is still as many people.
        """
        return counted_agents(self.code, self.ua, self.status, self.n)

    def total(self, values: np.ndarray) -> np.ndarray:
        """Per-client sum of ``values`` (one per event)."""
        return np.bincount(self.code, weights=values, minlength=self.n)

    @cached_property
    def shared(self) -> dict:
        """Intermediate results that several feature functions derive alike from this window (the repeated
        answers that both the repeat count and its bytes are read off), kept so each is worked out once."""
        return {}

    @cached_property
    def agent_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Each event's (client, user agent) pair as 0..k-1, and each pair's client (worked out once)."""
        if len(self.code) == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        base = int(self.ua.max()) + 1
        pairs, inverse = np.unique(self.code * base + self.ua, return_inverse=True)
        return inverse.reshape(-1), pairs // base

    def by_agent(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sum ``values`` per (client, user agent); return the sums and each pair's client."""
        inverse, owner = self.agent_pairs
        return np.bincount(inverse, weights=values, minlength=len(owner)).astype(np.float64), owner

    def distinct(self, values: np.ndarray) -> np.ndarray:
        """Per-client number of distinct integer ``values``."""
        return distinct_per_group(self.code, values, self.n)

    @classmethod
    def from_arrays(cls, ev: EventArrays, at: float, width: float, groups: np.ndarray,
                    n_codes: int, by: str = "client", opened: EventArrays | None = None) -> ClientEvents:
        """Group the events of ``ev`` that end in ``(at - width, at]`` by the client codes ``groups``.

        Groups follow the order of ``groups``; events of other clients are dropped; ``n_codes``
        bounds the client codes. ``by="prefix"`` groups by network prefix instead (``groups`` are then
        prefix codes): a whole /24 seen as one client. ``opened`` holds the requests open at ``at`` (start
        records, ``FeatureStream``), None where the log writes none; a prefix row never has them.
        """
        position = np.full(n_codes, -1, dtype=np.int64)
        position[groups] = np.arange(len(groups))
        open_code = open_ua = open_start = None
        if opened is not None and by == "client":
            mine = position[opened.client]
            open_code, open_ua, open_start = mine[mine >= 0], opened.ua[mine >= 0], opened.start[mine >= 0]
        code = position[ev.prefix if by == "prefix" else ev.client]
        strings = ev.ua
        if by == "prefix":  # one program is one user agent *on one address*: a fleet's hosts share a UA string
            ev = replace(ev, ua=np.unique(ev.client * (int(ev.ua.max(initial=0)) + 1) + ev.ua, return_inverse=True)[1]
                         .reshape(-1))
        in_window = (ev.end > at - width) & (ev.end <= at)
        sel = np.flatnonzero(in_window & (code >= 0))
        sel = sel[np.lexsort((ev.start[sel], code[sel]))]
        status, everyone = ev.status[in_window], ev.client[in_window]
        failing = everyone[(status >= 500) | (status == 429)]
        group_prefix = np.full(len(groups), -1, dtype=np.int64)
        group_prefix[code[sel]] = ev.prefix[sel]  # scored clients without events here have no prefix row
        prefix = (ev.prefix[in_window], everyone, strings[in_window], status, group_prefix)
        population = len(pd.unique(everyone))
        polls = poll_paths(ev.path[in_window], ev.duration[in_window], everyone, population)
        durations = ev.duration[in_window]
        if len(polls):  # the server's hold is read off its polls (not off a few clients' long downloads)
            durations = durations[np.isin(ev.path[in_window], polls)]
        durations = durations[~np.isnan(durations)]
        hold = float(np.percentile(durations, 99)) if len(durations) else float("nan")
        return cls(clients=groups, code=code[sel], start=ev.start[sel], end=ev.end[sel],
                   duration=ev.duration[sel], status=ev.status[sel], bytes=ev.bytes[sel],
                   path=ev.path[sel], ua=ev.ua[sel], request=ev.request[sel], target=ev.target[sel],
                   at=float(at), width=float(width),
                   population=population, population_failing=len(np.unique(failing)),
                   prefix_source=prefix, population_hold=hold, bodies_logged=bool((ev.bytes[in_window] > 0).any()),
                   fleet_ua=strings[sel] if by == "prefix" else None,
                   poll_paths=polls, open_code=open_code,
                   open_ua=open_ua, open_start=open_start)

    @classmethod
    def from_frame(cls, events: pd.DataFrame, at: float, width: float,
                   clients: np.ndarray | None = None) -> ClientEvents:
        """The same from an event frame (tests, notebooks); ``clients`` defaults to those in the window.
        Every start record in ``events`` (status ``OPENED``) is taken as a request open at ``at``: no end
        is matched to it here (``FeatureStream`` does that), so give only those still open."""
        names, paths, agents, prefixes = Interner(), Interner(), Interner(), Interner()
        if clients is not None:
            names.encode(np.asarray(clients, dtype=object))
        arrays = EventArrays.from_frame(events, names, paths, agents, prefixes)
        starts = arrays.status == OPENED
        opened = arrays.take(starts) if starts.any() else None
        arrays = arrays.take(~starts)
        if clients is None:
            in_window = (arrays.end > at - width) & (arrays.end <= at)
            groups = np.asarray(pd.unique(arrays.client[in_window]), dtype=np.int64)
        else:
            groups = np.arange(len(clients), dtype=np.int64)
        view = cls.from_arrays(arrays, at, width, groups, len(names), opened=opened)
        return replace(view, clients=np.asarray(names.names, dtype=object)[groups])
