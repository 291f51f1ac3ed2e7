"""Abusive actors. Each one behaves like a normal client (a browser tab, or a script polling like a
consumer) until its attack starts, then runs its attack until it ends.

``intensity`` in [0, 1] sets how loud an actor is: 0 is barely above what a normal client does,
1 is a flood. Rows sent as part of the attack are marked ``attack=True``.

Every class but one is one actor on one address. ``distributed_flood`` is an :class:`Operator`
running one program from 8 to 40 addresses of one IPv4 /24 (or IPv6 /64); each address is an actor
of its own, only mildly busier than a normal client, so that only the prefix as a whole is abusive.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass

import numpy as np

from . import agents
from .populations import Backoff, Tab, World, browser_session, make_tab, poll_loop
from .recorder import GET, HEAD, POST, Rand
from .service import BYTES_401, BYTES_404, Feed, Service

ATTACK_CLASSES = ("reconnect_loop", "parallel_flood", "retry_storm", "cursor_replay", "scraper",
                  "credential_stuffing", "scanner", "distributed_flood")
#: Classes run by an operator over many addresses of one prefix (counted in operators, not actors).
PREFIX_CLASSES = ("distributed_flood",)
#: What a ``distributed_flood`` operator's addresses do (one behaviour per operator).
FLOOD_BEHAVIOURS = ("short_poll", "login_spray")
#: Addresses one operator runs, and the share of operators on an IPv6 /64 rather than an IPv4 /24.
FLOOD_ADDRESSES = (8, 40)
FLOOD_V6 = 0.2
#: How far apart (seconds) the addresses of one operator start and stop.
FLOOD_SPREAD = 4.0


def loglerp(quiet: float, loud: float, intensity: float) -> float:
    """From ``quiet`` at intensity 0 to ``loud`` at 1, geometrically."""
    return math.exp(math.log(quiet) + (math.log(loud) - math.log(quiet)) * intensity)


@dataclass(frozen=True)
class Operator:
    """One ``distributed_flood`` operator: one program run from ``addresses`` addresses of ``prefix``.
    ``seed`` drives the choices all its addresses share (agents, channel, timing)."""

    index: int
    prefix: str
    behaviour: str     # one of FLOOD_BEHAVIOURS
    addresses: int
    seed: int


@dataclass(frozen=True)
class Actor:
    client: int
    cls: str
    start: float       # attack start
    end: float         # attack end
    intensity: float
    operator: Operator | None = None


def _starts(rng: np.random.Generator, a0: float, a1: float, draw) -> np.ndarray:
    """Request start times from ``a0`` with gaps ``draw(n)`` until ``a1``."""
    out, t = [], a0
    while t < a1:
        gaps = draw(4096)
        s = t + np.concatenate([[0.0], np.cumsum(gaps[:-1])])
        out.append(s[s < a1])
        t = s[-1] + gaps[-1]
    return np.concatenate(out) if out else np.empty(0)


def run(w: World, rng: np.random.Generator, actor: Actor) -> None:
    rnd = Rand(rng)
    if actor.operator is not None:
        distributed_flood(w, rng, rnd, actor)
        return
    normal = _normal_phase(w, rng, rnd, actor)
    _ATTACKS[actor.cls](w, rng, rnd, actor, normal)


def _normal_phase(w: World, rng: np.random.Generator, rnd: Rand, actor: Actor, ua: str | None = None) -> Tab:
    """Browse (or, for a script, poll) normally before the attack. Returns the tab it used. With ``ua``
    (an operator's address), that agent: a library one polls like a script, a browser one browses."""
    span = w.t1 - w.t0
    lead = min(60.0, 0.1 * span)
    if ua is not None:
        script = ua in agents.LIBRARY_AGENTS
    else:
        script = actor.cls in ("reconnect_loop", "parallel_flood", "retry_storm", "cursor_replay") and rnd.chance(0.3)
        ua = agents.LIBRARY_AGENTS[int(rng.integers(len(agents.LIBRARY_AGENTS)))] if script else None
    tab = make_tab(w, rng, rnd, ua=ua)
    warm = rnd.chance(0.5)
    s0 = w.t0 if warm else w.t0 + (actor.start - lead - w.t0) * rnd.u()
    if script:
        t = s0 - w.hold * rnd.u()
        poll_loop(w, rnd, actor.client, w.rec.lane(), tab.feed, tab.ua, t, actor.start,
                  bisect_right(tab.feed.times, t), gap=(0.01, 0.2), backoff=Backoff(1.0, 2.0, 30.0, 0.5))
    else:
        browser_session(w, rnd, actor.client, tab, s0, actor.start, warm=warm)
    return tab


def _attack_feed(w: World, rng: np.random.Generator, intensity: float) -> Feed:
    """A channel about as busy as the actor is loud (loud actors pick busy ones)."""
    want = loglerp(1 / 150, 1 / 10, intensity)
    ch = int(np.argmin(np.abs(np.log(w.svc.rates[: w.svc.n_channels]) - math.log(want))
                       + rng.uniform(0, 0.3, w.svc.n_channels)))
    return w.svc.feed(ch)


def reconnect_loop(w: World, rng: np.random.Generator, rnd: Rand, a: Actor, tab: Tab) -> None:
    """Aborts each poll after tens to hundreds of ms (a few s when quiet) and re-polls at once."""
    feed = tab.feed
    abort_mean = loglerp(2.5, 0.06, a.intensity)
    gap_mean = loglerp(0.3, 0.01, a.intensity)
    s = _starts(rng, a.start, a.end, lambda n: abort_mean * rng.uniform(0.5, 1.5, n) + gap_mean * rng.uniform(0, 2, n))
    n = len(s)
    held = abort_mean * rng.uniform(0.5, 1.5, n)
    nxt = np.searchsorted(feed.times_np, s, side="right")
    nm = np.append(feed.times_np, np.inf)[nxt]
    got = nm <= s + held  # a message arrived before it gave up
    dur = np.where(got, nm - s + rng.uniform(0.001, 0.006, n), held)
    status = np.where(got, 200, 499)
    nbytes = np.where(got, 400 + rng.integers(0, 400, n), 0)
    ups = np.where(got | (rng.random(n) > 0.3), dur - 0.0004, np.nan)
    cur = np.asarray(feed.cur)[nxt]
    w.rec.add_many(client=a.client, lane=w.rec.lane(), start=s, dur=dur, method=GET,
                   uri=[f"{feed.prefix}{c}" for c in cur.tolist()], status=status, nbytes=nbytes, ua=tab.ua,
                   ups=ups, attack=True, referer=1)


def parallel_flood(w: World, rng: np.random.Generator, rnd: Rand, a: Actor, tab: Tab) -> None:
    """20 to 80 polls held at once from one key, each re-polled as soon as it ends."""
    feed = _attack_feed(w, rng, a.intensity)
    k = round(20 + 60 * a.intensity * rnd.uniform(0.7, 1.0))
    abort = a.end < w.t1
    backoff = Backoff(1.0, 1.5, 10.0, 0.5)
    for _ in range(k):
        t = a.start + 2.0 * rnd.u()
        poll_loop(w, rnd, a.client, w.rec.lane(), feed, tab.ua, t, a.end, bisect_right(feed.times, t),
                  gap=(0.0, 0.05), backoff=backoff, abort=abort, attack=True, referer=1)


def retry_storm(w: World, rng: np.random.Generator, rnd: Rand, a: Actor, tab: Tab) -> None:
    """A client stuck retrying a failing request every 10 to 100 ms, whatever the answer (503 from
    the app, 429 once over the limits, both with Retry-After), in episodes; normal polling between."""
    rec = w.rec
    interval = loglerp(0.1, 0.01, a.intensity)
    target = ("publish", "poll", "fetch")[int(rnd.u() * 3)]
    if target == "publish":
        method, uri = POST, "/v1/publish"
    elif target == "poll":
        method, uri = GET, f"{tab.feed.prefix}{tab.feed.cur[0]}"
    else:
        method, uri = GET, f"/v1/messages/{int(w.svc.msg_ids[int(rng.integers(len(w.svc.msg_ids)))])}"
    t = a.start
    lane = rec.lane()
    while t < a.end:
        ep_end = min(a.end, t + rnd.uniform(5.0, 30.0))
        s = _starts(rng, t, ep_end, lambda n: interval * rng.uniform(0.5, 1.5, n))
        n = len(s)
        dur = rng.uniform(0.002, 0.02, n)
        status = rng.choice(np.array([503, 500, 200], dtype=np.int16), size=n, p=[0.85, 0.1, 0.05])
        nbytes = np.select([status == 503, status == 500], [95, 21], 48)
        rec.add_many(client=a.client, lane=lane, start=s, dur=dur, method=method, uri=uri, status=status,
                     nbytes=nbytes, ua=tab.ua, ups=dur - 0.0003, attack=True)
        t = ep_end + rnd.uniform(90.0, 420.0)
        if ep_end < a.end:  # the app restarts and polls normally until the bug bites again
            t_calm = ep_end + 1.0 + 3.0 * rnd.u()
            poll_loop(w, rnd, a.client, rec.lane(), tab.feed, tab.ua, t_calm, min(t, a.end),
                      bisect_right(tab.feed.times, t_calm), gap=(tab.gap * 0.6, tab.gap * 1.4),
                      backoff=tab.backoff, abort=min(t, a.end) < w.t1)


def cursor_replay(w: World, rng: np.random.Generator, rnd: Rand, a: Actor, tab: Tab) -> None:
    """Always ``cursor=0``: every poll answers at once with a large backlog, re-polled at once."""
    feed = tab.feed
    size = rnd.uniform(5_000, 50_000)
    gap_mean = loglerp(3.0, 0.08, a.intensity)
    bandwidth = rnd.uniform(1e6, 5e6)
    rt_mean = 0.01 + size / bandwidth
    s = _starts(rng, a.start, a.end, lambda n: rt_mean * rng.uniform(0.9, 1.3, n) + gap_mean * rng.uniform(0, 2, n))
    n = len(s)
    nbytes = (size * rng.uniform(0.97, 1.03, n)).astype(np.int64)
    dur = 0.008 + nbytes / bandwidth * rng.uniform(0.8, 1.1, n)
    w.rec.add_many(client=a.client, lane=w.rec.lane(), start=s, dur=dur, method=GET, uri=f"{feed.prefix}0",
                   status=200, nbytes=nbytes, ua=tab.ua, ups=dur - 0.0005, attack=True, referer=1)


def scraper(w: World, rng: np.random.Generator, rnd: Rand, a: Actor, tab: Tab) -> None:
    """Walks ``/v1/messages/<id>`` upwards, a fraction of a request to several a second."""
    rec = w.rec
    svc = w.svc
    rate = loglerp(0.4, 8.0, a.intensity)
    s = _starts(rng, a.start, a.end, lambda n: rng.exponential(1.0 / rate, n))
    n = len(s)
    first = int(svc.msg_ids[np.searchsorted(svc.msg_times, a.start - rnd.uniform(600.0, 1800.0))])
    steps = rng.integers(1, 4, n) if rnd.chance(0.3) else np.ones(n, dtype=np.int64)
    ids = first + np.concatenate([[0], np.cumsum(steps[:-1])])
    ok = svc.message_exists(ids, s)
    dur = rng.uniform(0.004, 0.03, n)
    ua = tab.ua if rnd.chance(0.4) else rec.ua(agents.LIBRARY_AGENTS[int(rng.integers(len(agents.LIBRARY_AGENTS)))])
    rec.add_many(client=a.client, lane=rec.lane(), start=s, dur=dur, method=GET,
                 uri=[f"/v1/messages/{i}" for i in ids.tolist()], status=np.where(ok, 200, 404),
                 nbytes=np.where(ok, Service.message_size(ids), BYTES_404), ua=ua, ups=dur - 0.0003, attack=True)


def credential_stuffing(w: World, rng: np.random.Generator, rnd: Rand, a: Actor, tab: Tab) -> None:
    """``POST /login`` a fraction of a second apart, nearly all 401; some rotate user agents."""
    rec = w.rec
    rate = loglerp(0.3, 5.0, a.intensity)
    s = _starts(rng, a.start, a.end, lambda n: rng.exponential(1.0 / rate, n))
    n = len(s)
    rotate = (0.0, 0.2, 1.0)[int(rnd.u() * 3)]
    pool = np.array([rec.ua(x) for x in agents.pick_browser(rng, int(rng.integers(20, 200)))], dtype=np.int32)
    ua = np.where(rng.random(n) < rotate, pool[rng.integers(0, len(pool), n)], tab.ua)
    ok = rng.random(n) < 0.005
    dur = rng.uniform(0.08, 0.25, n)
    rec.add_many(client=a.client, lane=rec.lane(), start=s, dur=dur, method=POST, uri="/login",
                 status=np.where(ok, 200, 401), nbytes=np.where(ok, 300 + rng.integers(0, 120, n), BYTES_401),
                 ua=ua, ups=dur - 0.0004, attack=True, referer=2)


# Probe paths and how the service answers them: (path, status, bytes, nginx answers itself).
_PROBES: tuple[tuple[str, int, int, bool], ...] = tuple(
    [(p, 403, 153, True) for p in ("/.env", "/.env.local", "/.env.production", "/.git/config", "/.git/HEAD",
                                   "/.aws/credentials", "/.DS_Store", "/.htaccess", "/.svn/entries",
                                   "/.vscode/sftp.json", "/.ssh/id_rsa")]
    + [(p, 400, 150, True) for p in ("/static/../../../../etc/passwd", "/cgi-bin/.%2e/.%2e/.%2e/.%2e/bin/sh",
                                     "/..%2f..%2f..%2f..%2fetc%2fpasswd")]
    + [(p, 404, BYTES_404, False) for p in (
        "/wp-login.php", "/wp-admin/", "/wp-content/plugins/", "/xmlrpc.php", "/wordpress/wp-login.php",
        "/admin", "/admin/", "/admin/login", "/administrator/", "/phpmyadmin/", "/pma/", "/phpMyAdmin/index.php",
        "/mysql/admin/", "/cgi-bin/test.cgi", "/cgi-bin/luci/;stok=/locale", "/actuator/health", "/actuator/env",
        "/actuator/heapdump", "/server-status", "/config.json", "/config.php.bak", "/backup.zip", "/backup.sql",
        "/db.sql", "/dump.sql", "/debug/pprof/", "/console", "/manager/html", "/solr/admin/info/system",
        "/jenkins/login", "/api/v1/users", "/api/swagger.json", "/swagger-ui.html", "/v2/api-docs", "/graphql",
        "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php",
        "/index.php?s=/Index/\\think\\app/invokefunction&function=call_user_func_array&vars[0]=md5&vars[1][]=1",
        "/boaform/admin/formLogin", "/HNAP1/", "/owa/auth/logon.aspx", "/remote/login",
        "/global-protect/login.esp", "/Autodiscover/Autodiscover.xml", "/.well-known/security.txt",
        "/robots.txt", "/sitemap.xml", "/search?q=%27%20OR%201=1--", '/search?q="><script>alert(1)</script>',
        "/?id=1%27%20AND%20SLEEP(5)--", "/etc/passwd", "/shell.php", "/info.php", "/test.php",
        "/api/.env", "/laravel/.env", "/telescope/requests", "/_profiler/phpinfo", "/druid/index.html",
        "/nacos/v1/auth/users?pageNo=1&pageSize=9", "/geoserver/web/", "/ReportServer", "/ecp/Current/exporttool",
    )]
    + [("/", 200, 6_100, False), ("/login", 200, 3_050, False), ("/favicon.ico", 200, 4_286, True),
       ("/v1/poll", 400, 58, False), ("/v1/messages/1", 404, BYTES_404, False)]
)


def scanner(w: World, rng: np.random.Generator, rnd: Rand, a: Actor, tab: Tab) -> None:
    """Sweeps of well-known paths (dotfiles, admin panels, CMS logins, backups, traversal): mostly
    404, some 403 and 400, in bursts; scanner user agents or plain ones; often one connection per
    request."""
    rec = w.rec
    rate = loglerp(0.5, 15.0, a.intensity)
    budget = int(loglerp(150, 3000, a.intensity))
    s = _starts(rng, a.start, a.end, lambda n: rng.exponential(1.0 / rate, n) * np.where(rng.random(n) < 0.01, 60, 1))
    s = s[:budget]
    n = len(s)
    probe = np.concatenate([rng.permutation(len(_PROBES)) for _ in range(n // len(_PROBES) + 1)])[:n]
    paths = [_PROBES[i] for i in probe.tolist()]
    status = np.array([p[1] for p in paths], dtype=np.int16)
    nbytes = np.array([p[2] for p in paths], dtype=np.int64)
    by_nginx = np.array([p[3] for p in paths])
    dur = np.where(by_nginx, rng.uniform(0.0, 0.001, n), rng.uniform(0.002, 0.02, n))
    ups = np.where(by_nginx, np.nan, dur - 0.0003)
    pick = rnd.u()
    if pick < 0.6:
        ua = agents.SCANNER_AGENTS[int(rng.integers(len(agents.SCANNER_AGENTS)))]
    else:
        ua = agents.PLAIN_AGENTS[int(rng.integers(len(agents.PLAIN_AGENTS)))]
    head = rnd.chance(0.3)
    method = np.where(head & (rng.random(n) < 0.5), HEAD, GET)
    method[[i for i, p in enumerate(paths) if p[0] in ("/xmlrpc.php", "/wp-login.php")]] = POST
    nbytes = np.where(method == HEAD, 0, nbytes)
    keepalive = rnd.chance(0.4)
    proto = 0 if keepalive else (1 if rnd.chance(0.5) else 0)
    lane = rec.lane() if keepalive else rec.lanes(n)
    rec.add_many(client=a.client, lane=lane, start=s, dur=dur, method=method, uri=[p[0] for p in paths],
                 status=status, nbytes=nbytes, ua=rec.ua(ua), ups=ups, attack=True, proto=proto)


# -- distributed_flood -----------------------------------------------------------------------------

#: Per address, while attacking: ``short_poll`` re-polls every FLOOD_POLL_PERIOD seconds (quiet to
#: loud), ``login_spray`` tries a login every FLOOD_LOGIN_INTERVAL seconds; each address of an
#: operator jitters its own pace by up to FLOOD_JITTER either way.
FLOOD_POLL_PERIOD = (8.0, 3.0)       # 7.5 to 20 polls a minute
FLOOD_LOGIN_INTERVAL = (20.0, 6.0)   # 3 to 10 logins a minute
FLOOD_JITTER = 1.25
#: The bound per address a test holds the class to: requests a minute, averaged over the attack.
FLOOD_MAX_PER_MINUTE = {"short_poll": 26.0, "login_spray": 13.0}


@dataclass(frozen=True)
class _FloodProgram:
    """What every address of one operator runs (drawn from the operator's seed)."""

    agents: tuple[str, ...]   # an address picks one of these and keeps it
    per_address_agent: bool   # or draws a browser agent of its own
    channel: int
    wait: int                 # short_poll: the hold it asks for (``&wait=``), seconds
    pace: float               # short_poll: re-poll period; login_spray: seconds between logins


def _flood_program(w: World, op: Operator, intensity: float) -> _FloodProgram:
    rng = np.random.default_rng(np.random.SeedSequence(op.seed))
    lib = agents.LIBRARY_AGENTS
    style = rng.random()
    if style < 0.6:    # one program, one agent everywhere
        pool = (lib[int(rng.integers(len(lib)))] if rng.random() < 0.5 else agents.pick_browser(rng),)
    elif style < 0.85:  # a few builds of it
        pool = tuple(agents.pick_browser(rng, int(rng.integers(2, 5))))
    else:               # a browser agent per address, drawn like real browsers are
        pool = ()
    want = loglerp(1 / 150, 1 / 10, intensity)  # a channel about as busy as it is loud (as _attack_feed)
    ch = int(np.argmin(np.abs(np.log(w.svc.rates[: w.svc.n_channels]) - math.log(want))
                       + rng.uniform(0, 0.3, w.svc.n_channels)))
    if op.behaviour == "short_poll":
        pace = loglerp(*FLOOD_POLL_PERIOD, intensity)
        wait = int(rng.choice([w_ for w_ in (0, 1, 2) if w_ < pace - 0.5]))
    else:
        pace, wait = loglerp(*FLOOD_LOGIN_INTERVAL, intensity), 0
    return _FloodProgram(pool, not pool, ch, wait, pace)


def distributed_flood(w: World, rng: np.random.Generator, rnd: Rand, a: Actor) -> None:
    """One address of an operator: normal polling or browsing first, then, from within a few seconds
    of its siblings, either ``short_poll`` (polls asking for a hold of 0 to 2 s, re-polled every 3 to
    8 s: 7.5 to 20 polls a minute, mostly 204s) or ``login_spray`` (``POST /login`` every 6 to 20 s,
    nearly all 401); each address jitters the operator's pace by up to 1.25x. Alone, each address is
    a somewhat eager client; forty of them in one /24 on one agent are a flood."""
    op = a.operator
    prog = _flood_program(w, op, a.intensity)
    if prog.per_address_agent:
        ua_s = agents.pick_browser(rng)
    else:
        ua_s = prog.agents[int(rng.integers(len(prog.agents)))]
    _normal_phase(w, rng, rnd, a, ua=ua_s)
    rec = w.rec
    ua = rec.ua(ua_s)
    browser = ua_s not in agents.LIBRARY_AGENTS
    pace = prog.pace * math.exp(rnd.uniform(-math.log(FLOOD_JITTER), math.log(FLOOD_JITTER)))
    if op.behaviour == "short_poll":
        feed = w.svc.feed(prog.channel)
        gap = max(0.3, pace - prog.wait)
        t = a.start
        poll_loop(w, rnd, a.client, rec.lane(), feed, ua, t, a.end, bisect_right(feed.times, t),
                  gap=(0.5 * gap, 1.5 * gap), backoff=Backoff(0.5, 1.5, 5.0, 0.5), hold=float(prog.wait),
                  abort=a.end < w.t1, extra=f"&wait={prog.wait}", attack=True, referer=1 if browser else 0)
    else:
        s = _starts(rng, a.start, a.end, lambda n: pace * rng.uniform(0.5, 1.5, n))
        n = len(s)
        ok = rng.random(n) < 0.005
        dur = rng.uniform(0.08, 0.25, n)
        rec.add_many(client=a.client, lane=rec.lane(), start=s, dur=dur, method=POST, uri="/login",
                     status=np.where(ok, 200, 401), nbytes=np.where(ok, 300 + rng.integers(0, 120, n), BYTES_401),
                     ua=ua, ups=dur - 0.0004, attack=True, referer=2 if browser else 0)


_ATTACKS = {
    "reconnect_loop": reconnect_loop,
    "parallel_flood": parallel_flood,
    "retry_storm": retry_storm,
    "cursor_replay": cursor_replay,
    "scraper": scraper,
    "credential_stuffing": credential_stuffing,
    "scanner": scanner,
}
