"""Normal client behaviours: browser tabs, mobile apps, server-side consumers, offices behind one NAT,
health checkers. Abusive actors reuse :func:`browser_session` and :func:`poll_loop` for the normal
part of their hour (see ``attacks.py``).

A poll loop is inherently sequential (the next poll starts when the last one ended), so it is a
tight Python loop over pre-drawn randomness; fixed-rate traffic (probes) is generated with numpy.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass

import numpy as np

from . import agents
from .recorder import GET, NAN, POST, Rand, Recorder
from .service import BYTES_401, BYTES_502, BYTES_503, HOLD, Feed, Service

INF = math.inf
MAX_BATCH = 100  # messages one poll answer carries at most (the rest: next poll, at once)
FETCH_ALL_MAX = 10


@dataclass
class World:
    """What every behaviour needs: the server, the table being filled, the log's time span."""

    svc: Service
    rec: Recorder
    t0: float
    t1: float
    hold: float = HOLD  # how long the server holds a poll with nothing to answer


@dataclass(frozen=True)
class Backoff:
    """Retry delay after ``n`` failures in a row: ``min(cap, base * factor**(n-1))`` scaled by a
    uniform draw in ``[jitter, 1]``."""

    base: float
    factor: float
    cap: float
    jitter: float

    def delay(self, rnd: Rand, fails: int) -> float:
        d = self.base * self.factor ** min(fails - 1, 30)
        return min(self.cap, d) * (self.jitter + (1.0 - self.jitter) * rnd.u())


def poll_loop(w: World, rnd: Rand, client: int, lane: int, feed: Feed, ua: int, t: float, t_end: float,
              seen: int, *, gap: tuple[float, float], backoff: Backoff, hold: float | None = None,
              abort: bool = True, net_err: float = 0.0, fetch_p: float = 0.0, fetch_all: bool = False,
              fetch_lane: int = 0, extra: str = "", attack: bool = False, referer: int = 0) -> tuple[float, int]:
    """One client's long-poll loop on ``feed`` from ``t`` until ``t_end``.

    Re-polls ``gap`` seconds after each answer; on a 502/503 or a network error (probability
    ``net_err`` per poll, seen by nginx as a 499) waits ``backoff``. A poll still held at ``t_end``
    is aborted (499) when ``abort``, else dropped (the log ends first). After a 200, fetches the
    newest message with probability ``fetch_p``, or every delivered message when ``fetch_all``.
    Returns the time the loop stopped and how many messages of the feed the client has seen."""
    hold = w.hold if hold is None else hold
    append = w.rec.rows.append
    times, ids, cur, prefix = feed.times, feed.ids, feed.cur, feed.prefix
    n_msgs = len(times)
    o0, o1 = w.svc.outage
    u = rnd.u
    gap_lo, gap_w = gap[0], gap[1] - gap[0]
    fails = 0
    while t < t_end:
        if o0 <= t < o1:  # nginx answers the outage itself
            d = 0.002 * u()
            append((client, lane, t, d, GET, f"{prefix}{cur[seen]}{extra}", 503, BYTES_503, ua, NAN, attack,
                    referer, 0))
            fails += 1
            t += d + backoff.delay(rnd, fails)
            continue
        nm = times[seen] if seen < n_msgs else INF
        if nm <= t:
            resp = t + 0.002 + 0.012 * u()
            k = bisect_right(times, t, seen) - seen
        elif nm <= t + hold:
            resp = nm + 0.001 + 0.007 * u()
            k = bisect_right(times, nm, seen) - seen
        else:
            resp = t + hold + 0.0005 + 0.0025 * u()
            k = 0
        uri = f"{prefix}{cur[seen]}{extra}"
        if t < o0 < resp and o0 < t_end:  # in flight when the service goes down
            d = o0 - t + 0.0005 + 0.0025 * u()
            append((client, lane, t, d, GET, uri, 502, BYTES_502, ua, d - 0.0005, attack, referer, 0))
            fails = 1
            t += d + backoff.delay(rnd, fails)
            continue
        if resp > t_end:
            if abort:
                d = t_end - t
                append((client, lane, t, d, GET, uri, 499, 0, ua, NAN if u() < 0.3 else d, attack, referer, 0))
            return t_end, seen
        if net_err and u() < net_err:  # the phone lost its network mid-poll
            d = (resp - t) * u()
            append((client, lane, t, d, GET, uri, 499, 0, ua, NAN if u() < 0.3 else d, attack, referer, 0))
            fails += 1
            t += d + backoff.delay(rnd, fails)
            continue
        d = resp - t
        fails = 0
        if k:
            k = min(k, MAX_BATCH)
            append((client, lane, t, d, GET, uri, 200, int(140 + 260 * k + 400 * u()), ua, d - 0.0004, attack,
                    referer, 0))
            seen += k
            if fetch_all:  # the newest FETCH_ALL_MAX of a batch; a catch-up batch is read from the body
                ft = resp + 0.001 + 0.004 * u()
                for mid in ids[max(seen - k, seen - FETCH_ALL_MAX):seen]:
                    fd = 0.003 + 0.015 * u()
                    append((client, fetch_lane, ft, fd, GET, f"/v1/messages/{mid}", 200, Service.message_size(mid),
                            ua, fd - 0.0003, attack, referer, 0))
                    ft += fd + 0.001 * u()
            elif fetch_p and u() < fetch_p:
                mid = ids[seen - 1]
                fd = 0.004 + 0.03 * u()
                append((client, fetch_lane, resp + 0.02 + 0.4 * u(), fd, GET, f"/v1/messages/{mid}",
                        200, Service.message_size(mid), ua, fd - 0.0003, attack, referer, 0))
        else:
            append((client, lane, t, d, GET, uri, 204, 0, ua, d - 0.0004, attack, referer, 0))
        t = resp + gap_lo + gap_w * u()
    return t, seen


# -- browsers ------------------------------------------------------------------------------------

_ASSETS = (("/static/app.js", 183_412), ("/static/app.css", 24_907), ("/static/vendor.js", 96_230))
_IMAGES = (("/static/img/logo.svg", 3_214), ("/static/img/avatar-default.png", 5_877),
           ("/static/img/hero.webp", 41_380), ("/static/img/icons.svg", 9_120))


def page_load(w: World, rnd: Rand, client: int, ua: int, lanes: tuple[int, int], t: float, first: bool,
              attack: bool = False) -> float:
    """``GET /`` and its assets (nginx serves those itself: no upstream time). Returns when the app
    starts polling."""
    append = w.rec.rows.append
    u = rnd.u
    d = 0.015 + 0.06 * u()
    append((client, lanes[0], t, d, GET, "/", 200, 6_000 + int(400 * u()), ua, d - 0.0005, attack, 0, 0))
    bandwidth = 0.5e6 + 9.5e6 * u()  # bytes per second this client downloads at
    ends = [t + d, t + d]
    files = list(_ASSETS)
    if first or u() < 0.1:
        files.append(("/favicon.ico", 4_286))
    files.extend(_IMAGES[: int(u() * 4)])
    for i, (path, size) in enumerate(files):
        lane = i % 2
        s = ends[lane] + 0.002 + 0.03 * u()
        if not first and u() < 0.85:
            status, nbytes, fd = 304, 0, 0.001 * u()
        else:
            status, nbytes, fd = 200, size, size / bandwidth + 0.001 * u()
        append((client, lanes[lane], s, fd, GET, path, status, nbytes, ua, NAN, attack, 1, 0))
        ends[lane] = s + fd
    return max(ends) + 0.05 + 0.3 * u()


def login(w: World, rnd: Rand, client: int, ua: int, lane: int, t: float, attack: bool = False) -> float:
    """A person signing in (now and then mistyping first). Returns when it is done."""
    append = w.rec.rows.append
    u = rnd.u
    if u() < 0.06:
        d = 0.08 + 0.15 * u()
        append((client, lane, t, d, POST, "/login", 401, BYTES_401, ua, d - 0.0004, attack, 2, 0))
        t += d + 3.0 + 9.0 * u()
    d = 0.08 + 0.17 * u()
    append((client, lane, t, d, POST, "/login", 200, 300 + int(120 * u()), ua, d - 0.0004, attack, 2, 0))
    return t + d + 0.2 + 0.5 * u()


@dataclass(frozen=True)
class Tab:
    """How one person's browser tab behaves."""

    feed: Feed
    ua: int
    gap: float                 # typical re-poll delay (0.05 to 1 s), jittered +-40% per poll
    backoff: Backoff
    fetch_p: float = 0.15      # fetches a message after a 200
    login_p: float = 0.25      # signs in when the session starts
    reload_every: float = 1200.0  # mean seconds between page reloads
    publish_every: float = 300.0  # mean seconds between messages the person sends


def browser_session(w: World, rnd: Rand, client: int, tab: Tab, s0: float, s1: float, *, warm: bool,
                    attack: bool = False) -> None:
    """One tab open from ``s0`` to ``s1``: page load (skipped when ``warm``: already open and
    polling when the log starts), polling, reloads (the held poll is aborted: 499, then the page
    and its assets again), messages sent now and then, and the tab closed at ``s1`` (499)."""
    rec = w.rec
    end = min(s1, w.t1)
    abort = s1 < w.t1
    lanes = (rec.lane(), rec.lane())
    poll_lane = rec.lane()
    u = rnd.u
    bounds = [s0]
    t = s0
    while True:
        t += rnd.expo(tab.reload_every)
        if t >= end:
            break
        bounds.append(t)
    bounds.append(end)
    gap = (tab.gap * 0.6, tab.gap * 1.4)
    times = tab.feed.times
    for i in range(len(bounds) - 1):
        a, b = bounds[i], bounds[i + 1]
        if i == 0 and warm:
            t = a - w.hold * u()  # mid-poll when the log starts
        else:
            t = page_load(w, rnd, client, tab.ua, lanes, a, first=(i == 0), attack=attack)
            if i == 0 and u() < tab.login_p:
                t = login(w, rnd, client, tab.ua, lanes[0], t, attack)
        if t >= b:
            continue
        poll_loop(w, rnd, client, poll_lane, tab.feed, tab.ua, t, b, bisect_right(times, t),
                  gap=gap, backoff=tab.backoff, abort=abort or i < len(bounds) - 2, fetch_p=tab.fetch_p,
                  fetch_lane=lanes[1], attack=attack, referer=1)
        # Messages the person sends while the page is open.
        p = a + rnd.expo(tab.publish_every)
        while p < b:
            d = 0.006 + 0.035 * u()
            rec.rows.append((client, lanes[1], p, d, POST, "/v1/publish", 200, 38 + int(30 * u()), tab.ua,
                             d - 0.0004, attack, 1, 0))
            p += rnd.expo(tab.publish_every)


def _browser_backoff(rnd: Rand) -> Backoff:
    return Backoff(1.0, 2.0, (8.0, 15.0, 30.0, 60.0)[int(rnd.u() * 4)], 0.5)


def make_tab(w: World, rng: np.random.Generator, rnd: Rand, ua: str | None = None, channel: int | None = None,
             **kw) -> Tab:
    ch = int(w.svc.pick_channels(rng)) if channel is None else channel
    ua_s = agents.pick_browser(rng) if ua is None else ua
    return Tab(feed=w.svc.feed(ch), ua=w.rec.ua(ua_s), gap=rnd.uniform(0.05, 1.0), backoff=_browser_backoff(rnd), **kw)


def browser(w: World, rng: np.random.Generator, client: int) -> None:
    """A home or mobile-network user: a tab or two, sessions that start and stop during the hour."""
    rnd = Rand(rng)
    tab = make_tab(w, rng, rnd)
    span = w.t1 - w.t0
    sessions = []
    if rnd.chance(0.3):  # already online when the log starts
        sessions.append((w.t0, w.t1 + 1.0 if rnd.chance(0.5) else w.t0 + rnd.expo(1200.0), True))
    for _ in range(int(rng.poisson(0.7))):
        a = w.t0 + span * rnd.u()
        sessions.append((a, a + float(rng.lognormal(math.log(720.0), 0.9)), False))
    if not sessions:
        a = w.t0 + span * rnd.u()
        sessions.append((a, a + float(rng.lognormal(math.log(720.0), 0.9)), False))
    for s0, s1, warm in sessions:
        browser_session(w, rnd, client, tab, s0, s1, warm=warm)


def nat_office(w: World, rng: np.random.Generator, client: int) -> None:
    """An office behind one NAT address: 20 to 200 people (small offices are commoner), each a browser
    tab on one of the team's channels, on the 10 to 40 browser builds the office runs; most are in all
    hour."""
    rnd = Rand(rng)
    n_users = int(round(math.exp(rng.uniform(math.log(20), math.log(200)))))
    pool, weights = agents.office_pool(rng, int(rng.integers(10, 41)))
    team = w.svc.pick_channels(rng, int(rng.integers(6, 21)))
    team_w = 1.0 / np.arange(1, len(team) + 1) ** 0.7
    team_w /= team_w.sum()
    user_ua = rng.choice(len(pool), size=n_users, p=weights)
    user_ch = rng.choice(team, size=n_users, p=team_w)
    span = w.t1 - w.t0
    for i in range(n_users):
        tab = make_tab(w, rng, rnd, ua=pool[int(user_ua[i])], channel=int(user_ch[i]), login_p=0.05,
                       reload_every=1800.0, publish_every=240.0)
        warm = rnd.chance(0.8)
        s0 = w.t0 if warm else w.t0 + 0.8 * span * rnd.u()
        s1 = w.t1 + 1.0 if rnd.chance(0.85) else s0 + (w.t1 + 1.0 - s0) * rnd.u()
        browser_session(w, rnd, client, tab, s0, s1, warm=warm)


# -- mobile apps ---------------------------------------------------------------------------------

def mobile(w: World, rng: np.random.Generator, client: int) -> None:
    """The app on a phone: polls while in the foreground, silent for minutes in the background,
    exponential back-off with jitter on errors; some app builds hold for 10 or 15 s only. Its
    cursor survives the background, so the first poll after it answers at once with the backlog."""
    rnd = Rand(rng)
    rec = w.rec
    ua = rec.ua(agents.MOBILE_AGENTS[int(rng.integers(len(agents.MOBILE_AGENTS)))])
    feed = w.svc.feed(int(w.svc.pick_channels(rng)))
    hold, extra = ((w.hold, ""), (w.hold, ""), (w.hold, ""), (min(15.0, w.hold), "&wait=15"),
                   (min(10.0, w.hold), "&wait=10"))[int(rnd.u() * 5)]
    backoff = Backoff(1.0, 2.0, 60.0, 0.2)
    net_err = rnd.uniform(0.003, 0.02)
    fg_mean, bg_mean = rnd.uniform(90.0, 360.0), rnd.uniform(300.0, 1500.0)
    lane, api_lane = rec.lane(), rec.lane()
    span = w.t1 - w.t0
    t = w.t0 - w.hold * rnd.u()
    warm = rnd.chance(0.35)
    if not warm:
        t = w.t0 + min(rnd.expo(bg_mean), span * rnd.u())
    seen = bisect_right(feed.times, t - rnd.expo(bg_mean))
    while t < w.t1:
        fg_end = t + 8.0 + rnd.expo(fg_mean)
        if not warm and rnd.chance(0.5):  # app launch: config
            d = 0.01 + 0.04 * rnd.u()
            rec.rows.append((client, api_lane, t, d, GET, "/v1/config?platform=app", 200, 780 + int(60 * rnd.u()),
                             ua, d - 0.0004, False, 0, 0))
            t += d + 0.05 * rnd.u()
        warm = False
        _, seen = poll_loop(w, rnd, client, lane, feed, ua, t, min(fg_end, w.t1), seen, gap=(0.01, 0.3),
                            backoff=backoff, hold=hold, abort=fg_end < w.t1, net_err=net_err, fetch_p=0.3,
                            fetch_lane=api_lane, extra=extra)
        t = fg_end + max(30.0, rnd.expo(bg_mean))


# -- server-side consumers -----------------------------------------------------------------------

def consumer(w: World, rng: np.random.Generator, client: int) -> None:
    """A backend service: one to three steady poll loops on groups of busy channels, re-polling at
    once, all hour; some fetch every message, some publish steadily. A library user agent."""
    rnd = Rand(rng)
    rec = w.rec
    svc = w.svc
    ua = rec.ua(agents.LIBRARY_AGENTS[int(rng.integers(len(agents.LIBRARY_AGENTS)))])
    backoff = Backoff(0.25, 2.0, 5.0, 0.8)
    n_loops = int(rng.integers(1, 4))
    budget = math.exp(rnd.uniform(math.log(0.3), math.log(3.0)))  # messages per second it follows in all
    groups: list[list[int]] = [[] for _ in range(n_loops)]
    total = 0.0
    for i, ch in enumerate(rng.permutation(svc.firehoses)):
        if total >= budget and all(groups):
            break
        groups[i % n_loops].append(int(ch))
        total += float(svc.rates[ch])
    fetch_all = rnd.chance(0.5)
    for g in groups:
        feed = svc.feed(tuple(sorted(g)))
        t = w.t0 - rnd.uniform(0.0, 1.0)
        poll_loop(w, rnd, client, rec.lane(), feed, ua, t, w.t1, bisect_right(feed.times, t), gap=(0.002, 0.03),
                  backoff=backoff, abort=False, fetch_all=fetch_all, fetch_lane=rec.lane())
    if rnd.chance(0.5):
        publisher(w, rnd, client, ua, rec.lane(), every=1.0 / rnd.uniform(0.1, 1.0), backoff=backoff)


def publisher(w: World, rnd: Rand, client: int, ua: int, lane: int, *, every: float, backoff: Backoff,
              channel: str = "") -> None:
    """Steady ``POST /v1/publish`` (mean ``every`` seconds apart), backing off on 503."""
    append = w.rec.rows.append
    o0, o1 = w.svc.outage
    u = rnd.u
    uri = f"/v1/publish?channel={channel}" if channel else "/v1/publish"
    t = w.t0 + rnd.expo(every)
    fails = 0
    while t < w.t1:
        if o0 <= t < o1:
            d = 0.002 * u()
            append((client, lane, t, d, POST, uri, 503, BYTES_503, ua, NAN, False, 0, 0))
            fails += 1
            t += d + backoff.delay(rnd, fails)
            continue
        fails = 0
        d = 0.004 + 0.025 * u()
        append((client, lane, t, d, POST, uri, 200, 38 + int(30 * u()), ua, d - 0.0004, False, 0, 0))
        t += d + rnd.expo(every)


# -- health checkers -----------------------------------------------------------------------------

def health_checker(w: World, rng: np.random.Generator, client: int) -> float:
    """``GET /healthz`` every 5, 10 or 30 s exactly, a new connection each time. Returns the period."""
    rec = w.rec
    ua = rec.ua(agents.HEALTH_AGENTS[int(rng.integers(len(agents.HEALTH_AGENTS)))])
    period = float((5, 10, 30)[int(rng.integers(3))])
    first_ms = round(w.t0 * 1000) + int(rng.integers(0, int(period * 1000)))
    n = int((round(w.t1 * 1000) - first_ms) // (period * 1000)) + 1
    start = (first_ms + np.arange(n, dtype=np.int64) * int(period * 1000)) / 1000.0
    dur = rng.uniform(0.0005, 0.004, size=n)
    rec.add_many(client=client, lane=rec.lanes(n), start=start, dur=dur, method=GET, uri="/healthz", status=200,
                 nbytes=15, ua=ua, ups=dur - 0.0003, attack=False)
    return period


# -- fleets ----------------------------------------------------------------------------------------

#: Fleets per simulated hour at the default size (2000 normal clients), addresses per fleet, and the
#: share of fleets on an IPv6 /64 rather than an IPv4 /24.
FLEETS_PER_HOUR = 2.0
FLEET_ADDRESSES = (6, 30)
FLEET_V6 = 0.2
#: Fleet members subscribe to channels no busier than this (messages a second): their polls are held.
FLEET_MAX_RATE = 1.0 / 20.0


def fleet_count(clients: int, minutes: float) -> int:
    """Fleets in a run: ``FLEETS_PER_HOUR`` an hour at 2000 normal clients, scaled with both; at
    least one when there are normal clients."""
    if clients <= 0:
        return 0
    return max(1, round(FLEETS_PER_HOUR * clients / 2000.0 * minutes / 60.0))


@dataclass(frozen=True)
class Fleet:
    """One customer's servers (or Kubernetes nodes) behind ``addresses`` egress addresses of one cloud
    /24 (/64), all running one client library (``ua``). ``seed`` drives what they share (pace,
    back-off, whether they publish)."""

    index: int
    prefix: str
    ua: str
    addresses: int
    seed: int


@dataclass(frozen=True)
class _FleetProgram:
    gap: tuple[float, float]   # re-poll delay after an answer: prompt, not instant
    backoff: Backoff
    loops: int                 # subscriptions per member (1 or 2)
    fetch_all: bool
    publish_every: float       # mean seconds between a member's publishes; 0: it does not publish


def _fleet_program(fl: Fleet) -> _FleetProgram:
    rng = np.random.default_rng(np.random.SeedSequence(fl.seed))
    lo = float(rng.uniform(0.03, 0.15))
    gap = (lo, lo * float(rng.uniform(2.0, 5.0)))
    backoff = Backoff(float(rng.choice([0.5, 1.0])), 2.0, float(rng.choice([5.0, 10.0, 30.0])), 0.5)
    loops = 1 if rng.random() < 0.7 else 2
    fetch_all = bool(rng.random() < 0.5)
    publish_every = 1.0 / float(rng.uniform(0.005, 0.05)) if rng.random() < 0.4 else 0.0
    return _FleetProgram(gap, backoff, loops, fetch_all, publish_every)


def _quiet_channel(w: World, rng: np.random.Generator) -> int:
    """A channel by popularity, redrawn (a few times) while busier than ``FLEET_MAX_RATE``."""
    svc = w.svc
    ch = int(svc.pick_channels(rng))
    for _ in range(20):
        if svc.rates[ch] <= FLEET_MAX_RATE:
            break
        ch = int(svc.pick_channels(rng))
    return ch


def fleet_member(w: World, rng: np.random.Generator, client: int, fl: Fleet) -> None:
    """One address of a fleet: a well-behaved server-side subscriber, all hour. One or two long polls
    on quiet channels (held by the server, cursor moving on), re-polling promptly but not at once,
    backing off on errors and through the outage; some fleets fetch every message, some publish now
    and then. Every member of the fleet sends the fleet's library agent."""
    prog = _fleet_program(fl)
    rnd = Rand(rng)
    rec = w.rec
    ua = rec.ua(fl.ua)
    fetch_lane = rec.lane()
    for _ in range(prog.loops):
        feed = w.svc.feed(_quiet_channel(w, rng))
        t = w.t0 - w.hold * rnd.u()  # mid-poll when the log starts
        poll_loop(w, rnd, client, rec.lane(), feed, ua, t, w.t1, bisect_right(feed.times, t), gap=prog.gap,
                  backoff=prog.backoff, abort=False, fetch_all=prog.fetch_all, fetch_p=0.0 if prog.fetch_all else 0.3,
                  fetch_lane=fetch_lane)
    if prog.publish_every:
        every = prog.publish_every * math.exp(rnd.uniform(-0.3, 0.3))
        publisher(w, rnd, client, ua, rec.lane(), every=every, backoff=prog.backoff)
