"""The server being modelled: channels and their messages, the outage, and what nginx and the app do
to every request after the clients have sent them (rate limits, outage answers, keep-alive
connections).

``GET /v1/poll?channel=<c>&cursor=<n>`` is held up to the hold time (:data:`HOLD`, 25 s, unless
``simulate(hold=...)`` says otherwise): it answers 200 with the
messages newer than the cursor as soon as there is one (at once when some are already waiting),
or 204 with no body when the hold runs out. Messages arrive per channel as a Poisson process.
During the outage every request is answered 503 at once by nginx; polls held when it starts are
cut with a 502. A client key over the rate limit (leaky bucket like nginx ``limit_req``: 20 r/s,
burst 200; ``POST /v1/publish``: 5 r/s, burst 10) or over :data:`MAX_POLLS` concurrent polls gets a
429 with ``Retry-After`` from the app.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

HOLD = 25.0
#: Concurrent polls one key may hold. The app sizes it for its biggest customer office behind one
#: NAT (200 users with a tab open each), so no office is throttled for being an office.
MAX_POLLS = 250
# The burst absorbs an office's fan-out: every tab on a busy channel answered and re-polling at once.
RATE, BURST = 20.0, 200.0
PUBLISH_RATE, PUBLISH_BURST = 5.0, 10.0
KEEPALIVE_TIMEOUT, KEEPALIVE_REQUESTS = 75.0, 1000

# Body sizes of the small answers.
BYTES_503 = 190          # nginx's own 503 page
BYTES_502 = 157          # nginx's own 502 page
BYTES_429 = 56           # {"error":"rate_limited","retry_after":N}
BYTES_404 = 41           # {"error":"not_found", ...}
BYTES_401 = 60

_FIREHOSE = ("orders.eu", "orders.us", "orders.apac", "prices.fx", "prices.crypto", "events.audit",
             "events.billing", "telemetry.fleet", "inventory.updates", "shipments", "payments.settled",
             "search.index", "quotes.equities", "risk.limits")
_WORDS = ("sales", "support", "eng", "ops", "finance", "legal", "design", "data", "infra", "mobile",
          "growth", "hr", "security", "platform", "billing", "ml", "web", "qa", "docs", "research")


@dataclass(frozen=True)
class Feed:
    """What one poll subscribes to: one channel, or several merged (``channel=a,b,c``).

    ``times[i]`` is when message ``i`` arrived, ``ids[i]`` its global id, ``cur[k]`` the cursor a
    client sends after seeing ``k`` messages. Lists, not arrays: the poll loops index them per
    request."""

    name: str
    times: list
    ids: list
    cur: list
    times_np: np.ndarray
    prefix: str


class Service:
    def __init__(self, rng: np.random.Generator, t0: float, t1: float, *, n_channels: int = 300) -> None:
        self.t0, self.t1 = t0, t1
        span = t1 - t0
        length = min(float(rng.uniform(180.0, 300.0)), 0.2 * span)
        o0 = t0 + float(rng.uniform(0.35, 0.6)) * span
        self.outage = (round(o0, 3), round(o0 + length, 3))

        # Channels: ordinary ones (rooms, teams, users, tickers) and
        # firehoses that server-side consumers follow (0.2 to 1.5 messages a second).
        names = []
        for i in range(n_channels):
            kind = i % 4
            if kind == 0:
                names.append(f"room-{100 + i * 7 % 9000}")
            elif kind == 1:
                names.append(f"team-{_WORDS[i % len(_WORDS)]}-{i // len(_WORDS)}")
            elif kind == 2:
                names.append(f"user-{int(rng.integers(0x100000, 0xFFFFFF)):06x}")
            else:
                names.append(f"ticker.{_WORDS[(i * 3) % len(_WORDS)]}{i}")
        # Mean gap between messages from 5 s to 5 min, most channels at the quiet end.
        rates = 1.0 / (5.0 * 60.0 ** np.sqrt(rng.random(n_channels)))
        names.extend(_FIREHOSE)
        rates = np.concatenate([rates, np.exp(rng.uniform(math.log(0.2), math.log(1.5), size=len(_FIREHOSE)))])
        self.n_channels = n_channels
        self.firehoses = list(range(n_channels, n_channels + len(_FIREHOSE)))
        self.names = names
        self.rates = rates
        # Popularity of ordinary channels (who subscribes where): Zipf over a random order.
        pop = 1.0 / np.arange(1, n_channels + 1) ** 0.8
        self.popularity = pop[rng.permutation(n_channels)] / pop.sum()

        lo, hi = t0 - 1800.0, t1 + 120.0  # history before the log starts: backlogs for old cursors
        counts = rng.poisson(rates * (hi - lo))
        chan = np.repeat(np.arange(len(names)), counts)
        times = np.round(rng.uniform(lo, hi, size=len(chan)), 3)
        order = np.lexsort((chan, times))
        chan, times = chan[order], times[order]
        # Global message ids grow with time, with holes (deleted and private messages: 404s).
        ids = 7_340_000 + np.cumsum(rng.geometric(0.8, size=len(times)))
        self.msg_ids = ids
        self.msg_times = times

        self._feeds: dict[tuple[int, ...], Feed] = {}
        by_chan = np.argsort(chan, kind="stable")
        bounds = np.searchsorted(chan[by_chan], np.arange(len(names) + 1))
        self._chan_rows = [by_chan[bounds[c]:bounds[c + 1]] for c in range(len(names))]
        self._seq0 = rng.integers(1000, 90000, size=len(names))

    # -- messages ---------------------------------------------------------------------------

    def feed(self, channels) -> Feed:
        """The feed of one channel index, or of a tuple of them merged."""
        key = (channels,) if isinstance(channels, (int, np.integer)) else tuple(int(c) for c in channels)
        f = self._feeds.get(key)
        if f is not None:
            return f
        rows = np.sort(np.concatenate([self._chan_rows[c] for c in key]))
        times = self.msg_times[rows]
        ids = self.msg_ids[rows]
        if len(key) == 1:
            cur = (int(self._seq0[key[0]]) + np.arange(len(rows) + 1)).tolist()
        else:  # a merged feed's cursor is the global id of the last message seen
            first = int(ids[0]) - 1 if len(ids) else int(self.msg_ids[0])
            cur = [first] + ids.tolist()
        name = ",".join(self.names[c] for c in key)
        f = Feed(name, times.tolist(), ids.tolist(), cur, times, f"/v1/poll?channel={name}&cursor=")
        self._feeds[key] = f
        return f

    def message_exists(self, ids: np.ndarray, at: np.ndarray) -> np.ndarray:
        """Whether message ``ids`` exist (and were created) at times ``at``: 200 or 404."""
        pos = np.searchsorted(self.msg_ids, ids)
        pos_c = np.minimum(pos, len(self.msg_ids) - 1)
        return (self.msg_ids[pos_c] == ids) & (self.msg_times[pos_c] <= at)

    @staticmethod
    def message_size(ids):
        """Body bytes of ``GET /v1/messages/<id>``: a fixed function of the id (ints or arrays)."""
        return 220 + ((ids * 2654435761) >> 9) % 3100

    def pick_channels(self, rng: np.random.Generator, n: int | None = None):
        return rng.choice(self.n_channels, size=n, p=self.popularity)


# -- what happens to requests on the server, applied to the whole table --------------------------

def limits() -> dict[str, float]:
    """The server's limits, as ``meta.json`` reports them."""
    return {"rate": RATE, "burst": BURST, "publish_rate": PUBLISH_RATE, "publish_burst": PUBLISH_BURST,
            "max_concurrent_polls": MAX_POLLS, "keepalive_timeout": KEEPALIVE_TIMEOUT,
            "keepalive_requests": KEEPALIVE_REQUESTS}


def enforce_outage(tab: dict[str, np.ndarray], outage: tuple[float, float], rng: np.random.Generator) -> None:
    """Every request started in the outage gets nginx's quick 503; requests in flight when it
    starts are cut with a 502. Rows the clients already recorded that way are left alone."""
    o0, o1 = outage
    s, d, st = tab["start"], tab["dur"], tab["status"]
    todo = (st != 503) & (st != 502)
    inside = todo & (s >= o0) & (s < o1)
    n = int(inside.sum())
    if n:
        d[inside] = rng.uniform(0.0, 0.002, size=n)
        st[inside] = 503
        tab["bytes"][inside] = BYTES_503
        tab["ups"][inside] = np.nan
    cut = todo & (s < o0) & (s + d > o0)
    n = int(cut.sum())
    if n:
        d[cut] = o0 - s[cut] + rng.uniform(0.0005, 0.003, size=n)
        st[cut] = 502
        tab["bytes"][cut] = BYTES_502
        tab["ups"][cut] = d[cut] - 0.0005


def _bucket(starts: np.ndarray, rate: float, burst: float) -> np.ndarray:
    """nginx ``limit_req`` (leaky bucket, ``nodelay``): which of these sorted requests are refused."""
    refused = np.zeros(len(starts), dtype=bool)
    excess, last = 0.0, -math.inf
    for i, t in enumerate(starts.tolist()):
        e = max(0.0, excess - rate * (t - last)) + 1.0
        if e > burst + 1.0:
            refused[i] = True
        else:
            excess, last = e, t
    return refused


def _limit(rows: np.ndarray, client: np.ndarray, start: np.ndarray, rate: float, burst: float) -> list[np.ndarray]:
    """Refused rows among ``rows`` for each client whose rate ever goes past ``rate`` per second."""
    if len(rows) == 0:
        return []
    order = rows[np.lexsort((start[rows], client[rows]))]
    c, s = client[order], start[order]
    # Requests in the second up to each one (same client): a bucket can only fill past its burst
    # where some one-second window holds more than ``rate`` requests.
    key = c.astype(np.float64) * 1e6 + (s - s.min())
    in_window = np.arange(len(key)) - np.searchsorted(key, key - 1.0, side="right") + 1
    bounds = np.flatnonzero(np.diff(c)) + 1
    starts_ = np.concatenate([[0], bounds])
    ends_ = np.concatenate([bounds, [len(c)]])
    busy = np.maximum.reduceat(in_window, starts_) > rate
    out = []
    for a, b in zip(starts_[busy], ends_[busy]):
        ref = _bucket(s[a:b], rate, burst)
        if ref.any():
            out.append(order[a:b][ref])
    return out


def apply_limits(tab: dict[str, np.ndarray], outage: tuple[float, float], is_poll: np.ndarray,
                 is_publish: np.ndarray, rng: np.random.Generator) -> int:
    """Turn requests over a key's limits into the app's 429 (answered in a millisecond or two).
    Requests the outage answered never reach the app and are not counted. Returns how many were
    refused."""
    client, start, st = tab["client"], tab["start"], tab["status"]
    live = ((start < outage[0]) | (start >= outage[1])) & (st != 502)
    refused = _limit(np.flatnonzero(live), client, start, RATE, BURST)
    refused += _limit(np.flatnonzero(live & is_publish), client, start, PUBLISH_RATE, PUBLISH_BURST)
    # Concurrent polls per key: polls in flight when each starts.
    polls = np.flatnonzero(live & is_poll)
    if len(polls):
        counts = np.bincount(client[polls])
        for c in np.flatnonzero(counts > MAX_POLLS):
            rows = polls[client[polls] == c]
            rows = rows[np.argsort(start[rows], kind="stable")]
            s = start[rows]
            e = np.sort(s + tab["dur"][rows])
            in_flight = np.arange(len(s)) - np.searchsorted(e, s, side="right")
            refused.append(rows[in_flight >= MAX_POLLS])
    if not refused:
        return 0
    idx = np.unique(np.concatenate(refused))
    d = rng.uniform(0.0005, 0.0025, size=len(idx))
    tab["dur"][idx] = d
    tab["ups"][idx] = d - 0.0003
    st[idx] = 429
    tab["bytes"][idx] = BYTES_429
    return len(idx)


def connections(lane: np.ndarray, start_ms: np.ndarray, end_ms: np.ndarray, status: np.ndarray,
                proto: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """nginx ``$connection`` and ``$connection_requests`` from the lanes (sequential streams) the
    clients sent on: a lane keeps its connection until it idles past the keep-alive timeout, the
    connection has served ``keepalive_requests``, the client aborted (499), the request was bad
    (400) or the client spoke HTTP/1.0."""
    n = len(lane)
    if n == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    order = np.lexsort((start_ms, lane))
    ln, s, e, stt, pr = lane[order], start_ms[order], end_ms[order], status[order], proto[order]
    new = np.ones(n, dtype=bool)
    prev_closed = (stt[:-1] == 499) | (stt[:-1] == 400) | (pr[:-1] == 1)
    new[1:] = (ln[1:] != ln[:-1]) | (s[1:] - e[:-1] > KEEPALIVE_TIMEOUT * 1000) | prev_closed
    group = np.cumsum(new) - 1
    first = np.flatnonzero(new)
    k = np.arange(n) - first[group]
    conn_key = group * 1_000_000 + k // KEEPALIVE_REQUESTS
    uniq, inv = np.unique(conn_key, return_inverse=True)
    # Serial numbers in the order connections opened, with gaps (upstream connections and other
    # listeners draw from the same counter).
    opened = np.full(len(uniq), np.iinfo(np.int64).max)
    np.minimum.at(opened, inv, s)
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[np.lexsort((uniq, opened))] = np.arange(len(uniq))
    serial = int(rng.integers(2_000_000, 9_000_000)) + np.cumsum(rng.geometric(0.55, size=len(uniq)))
    conn = np.empty(n, dtype=np.int64)
    reqs = np.empty(n, dtype=np.int64)
    conn[order] = serial[rank[inv]]
    reqs[order] = k % KEEPALIVE_REQUESTS + 1
    return conn, reqs
