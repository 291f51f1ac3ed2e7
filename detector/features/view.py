"""Columnar events with interned strings, and ``ClientEvents``: one window grouped by client.

``EventArrays`` is how the feature stage holds events: numpy columns, with client, path and user agent
replaced by integer codes from an ``Interner`` so that per-tick work is pure numpy. ``ClientEvents`` is
the input of every feature function: rows sorted by client then start time, ``code`` numbering the
clients 0..n-1 in ``clients`` order, so a function answers with one value per client by reducing over
``code``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd


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


_COLUMNS = ("client", "start", "end", "duration", "status", "bytes", "path", "ua")


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

    @classmethod
    def from_frame(cls, events: pd.DataFrame, clients: Interner, paths: Interner, agents: Interner) -> EventArrays:
        return cls(
            client=clients.encode(events["client"]),
            start=events["start"].to_numpy(np.float64),
            end=events["end"].to_numpy(np.float64),
            duration=events["duration"].to_numpy(np.float64),
            status=events["status"].to_numpy(np.int64),
            bytes=events["bytes"].to_numpy(np.float64),
            path=paths.encode(events["path"]),
            ua=agents.encode(events["ua"]),
        )

    @classmethod
    def empty(cls) -> EventArrays:
        return cls(*(np.empty(0, dtype=np.int64 if c in ("client", "status", "path", "ua") else np.float64)
                     for c in _COLUMNS))

    @classmethod
    def concat(cls, parts: list[EventArrays]) -> EventArrays:
        if len(parts) == 1:
            return parts[0]
        return cls(*(np.concatenate([getattr(p, c) for p in parts]) for c in _COLUMNS))

    def take(self, index: np.ndarray | slice) -> EventArrays:
        return EventArrays(*(getattr(self, c)[index] for c in _COLUMNS))

    def recode(self, client: np.ndarray, path: np.ndarray, ua: np.ndarray) -> EventArrays:
        """The same events with their interned codes mapped through ``Interner.keep``'s maps."""
        return replace(self, client=client[self.client], path=path[self.path], ua=ua[self.ua])

    def __len__(self) -> int:
        return len(self.end)


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
    at: float
    width: float
    population: int = 0  # distinct clients (of *all* clients) with a request that ended in the window
    population_failing: int = 0  # ... of which got at least one 5xx or 429

    @property
    def n(self) -> int:
        return len(self.clients)

    @property
    def count(self) -> np.ndarray:
        return np.bincount(self.code, minlength=self.n).astype(np.float64)

    def total(self, values: np.ndarray) -> np.ndarray:
        """Per-client sum of ``values`` (one per event)."""
        return np.bincount(self.code, weights=values, minlength=self.n)

    def by_agent(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sum ``values`` per (client, user agent); return the sums and each pair's client."""
        if len(values) == 0:
            return np.zeros(0), np.zeros(0, dtype=np.int64)
        base = int(self.ua.max()) + 1
        pairs, inverse = np.unique(self.code * base + self.ua, return_inverse=True)
        return np.bincount(inverse, weights=values, minlength=len(pairs)), pairs // base

    def distinct(self, values: np.ndarray) -> np.ndarray:
        """Per-client number of distinct integer ``values``."""
        if len(values) == 0:
            return np.zeros(self.n)
        base = int(values.max()) + 1
        pairs = np.unique(self.code * base + values)
        return np.bincount(pairs // base, minlength=self.n).astype(np.float64)

    @classmethod
    def from_arrays(cls, ev: EventArrays, at: float, width: float, groups: np.ndarray,
                    n_codes: int) -> ClientEvents:
        """Group the events of ``ev`` that end in ``(at - width, at]`` by the client codes ``groups``.

        Groups follow the order of ``groups``; events of other clients are dropped; ``n_codes``
        bounds the client codes.
        """
        position = np.full(n_codes, -1, dtype=np.int64)
        position[groups] = np.arange(len(groups))
        code = position[ev.client]
        in_window = (ev.end > at - width) & (ev.end <= at)
        sel = np.flatnonzero(in_window & (code >= 0))
        sel = sel[np.lexsort((ev.start[sel], code[sel]))]
        status, everyone = ev.status[in_window], ev.client[in_window]
        failing = everyone[(status >= 500) | (status == 429)]
        return cls(clients=groups, code=code[sel], start=ev.start[sel], end=ev.end[sel],
                   duration=ev.duration[sel], status=ev.status[sel], bytes=ev.bytes[sel],
                   path=ev.path[sel], ua=ev.ua[sel], at=float(at), width=float(width),
                   population=len(np.unique(everyone)), population_failing=len(np.unique(failing)))

    @classmethod
    def from_frame(cls, events: pd.DataFrame, at: float, width: float,
                   clients: np.ndarray | None = None) -> ClientEvents:
        """The same from an event frame (tests, notebooks); ``clients`` defaults to those in the window."""
        names, paths, agents = Interner(), Interner(), Interner()
        if clients is not None:
            names.encode(np.asarray(clients, dtype=object))
        arrays = EventArrays.from_frame(events, names, paths, agents)
        if clients is None:
            in_window = (arrays.end > at - width) & (arrays.end <= at)
            groups = np.asarray(pd.unique(arrays.client[in_window]), dtype=np.int64)
        else:
            groups = np.arange(len(clients), dtype=np.int64)
        view = cls.from_arrays(arrays, at, width, groups, len(names))
        return replace(view, clients=np.asarray(names.names, dtype=object)[groups])
