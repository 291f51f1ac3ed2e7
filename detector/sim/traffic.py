"""``simulate``: an hour (or any span) of labelled long-poll traffic, written as nginx logs.

Steps: plan the clients (addresses, classes, attack windows) -> let every population send its
requests into one table (``populations.py``, ``attacks.py``) -> let the server have its say
(outage, rate limits, connections: ``service.py``) -> cut to the log's span, order by request end
and write (``writer.py``). Every random draw comes from generators seeded by ``seed``, one per
client, so the same seed gives the same bytes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import agents, populations
from .addresses import AddressPool, attacker_addresses, normal_addresses
from .attacks import (ATTACK_CLASSES, FLOOD_ADDRESSES, FLOOD_BEHAVIOURS, FLOOD_SPREAD, FLOOD_V6, PREFIX_CLASSES, Actor,
                      Operator)
from .attacks import run as run_actor
from .populations import FLEET_ADDRESSES, FLEET_V6, Fleet, World, fleet_count
from .recorder import POST, Recorder
from .service import HOLD, Service, apply_limits, connections, enforce_outage, limits
from .writer import write_envoy_log, write_labels, write_logs, write_meta, write_nginx_starts

NORMAL_CLASSES = ("browser", "mobile", "consumer", "nat_office", "health_checker", "fleet")

_NORMAL_RUN = {
    "browser": populations.browser,
    "mobile": populations.mobile,
    "consumer": populations.consumer,
    "nat_office": populations.nat_office,
    "health_checker": populations.health_checker,
}
#: Library agents a fleet may run (every one but a bare ``curl``).
_FLEET_AGENTS = tuple(a for a in agents.LIBRARY_AGENTS if not a.startswith("curl/"))


@dataclass(frozen=True)
class SimSummary:
    """What a run wrote. ``clients`` and ``attackers`` count client keys in the log;
    ``class_clients`` / ``class_lines`` count keys and log lines per class."""

    lines: int
    clients: int
    attackers: int
    class_clients: dict[str, int]
    class_lines: dict[str, int]
    outage: tuple[float, float]
    paths: dict[str, Path]
    seconds: float = field(default=0.0, compare=False)


@dataclass(frozen=True)
class _Client:
    index: int
    addr: str
    cls: str
    actor: Actor | None = None
    network: str = "public"   # where the address comes from (see ``addresses.py``; attackers too)
    fleet: Fleet | None = None  # the ``fleet`` a normal client belongs to
    member: int = 0             # ... and which of its addresses it is


def _normal_mix(clients: int) -> list[tuple[str, int]]:
    """How many keys of each normal class make up ``clients``."""
    if clients <= 0:
        return []
    fixed = {
        "nat_office": max(1, round(clients * 0.005)),
        "consumer": max(1, round(clients * 0.005)),
        "health_checker": max(1, round(clients * 0.005)),
    }
    out, left = [], clients
    for cls in ("nat_office", "consumer", "health_checker"):
        k = min(fixed[cls], max(0, left - 1))
        out.append((cls, k))
        left -= k
    mobile = round(left * 0.3)
    out.append(("mobile", mobile))
    out.append(("browser", left - mobile))
    return out


_SINGLE_CLASSES = tuple(c for c in ATTACK_CLASSES if c not in PREFIX_CLASSES)


def _attack_mix(attackers: int) -> list[tuple[str, int]]:
    """How many actors of each single-address class make up ``attackers``."""
    base, extra = divmod(max(0, attackers), len(_SINGLE_CLASSES))
    return [(cls, base + (i < extra)) for i, cls in enumerate(_SINGLE_CLASSES)]


def default_operators(minutes: float, rng: np.random.Generator) -> int:
    """``distributed_flood`` operators in a run with attacks: one or two an hour, at least one."""
    return max(1, round(minutes / 60.0 * float(rng.uniform(1.0, 2.0))))


def _window(rng: np.random.Generator, t0: float, t1: float) -> tuple[float, float]:
    span = t1 - t0
    a0 = t0 + span * float(rng.uniform(0.15, 0.7))
    a1 = t1 if rng.random() < 0.5 else min(t1, a0 + span * float(rng.uniform(0.06, 0.4)))
    return a0, a1


def _plan(seed: int, t0: float, t1: float, clients: int, attackers: int, operators: int = 0) -> list[_Client]:
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))
    pool = AddressPool(rng)
    plan: list[_Client] = []
    mix = _normal_mix(clients)
    nets = normal_addresses(pool, rng, dict(mix))
    for cls, n in mix:
        for addr, network in nets[cls]:
            plan.append(_Client(len(plan), addr, cls, network=network))
    # Fleets (normal): each one customer's servers on 6-30 addresses of a cloud /24 (/64) nobody else
    # uses, one library agent. Drawn from a stream of their own (the prefixes still kept from
    # everyone's), and listed last, so no other client moves and attackers do not move them.
    frng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(6,)))
    fpool = pool.sibling(frng)
    fleet_clients: list[tuple[str, Fleet, int]] = []
    for i in range(fleet_count(clients, (t1 - t0) / 60.0)):
        prefix = fpool.prefix(bool(frng.random() < FLEET_V6), hosting=True)
        k = int(frng.integers(FLEET_ADDRESSES[0], FLEET_ADDRESSES[1] + 1))
        fl = Fleet(i, str(prefix), _FLEET_AGENTS[int(frng.integers(len(_FLEET_AGENTS)))], k, int(frng.integers(2**63)))
        fleet_clients.extend((fpool.address_in(prefix), fl, j) for j in range(k))
    # Single-address attackers: windows and intensities first, then where they connect from (a share
    # of them inside prefixes the normal clients above use; see ``attacker_addresses``). With no
    # attackers nothing is drawn, so a run without attacks has the same clients as before.
    actors: list[tuple[str, float, float, float]] = []
    for cls, n in _attack_mix(attackers):
        for i in range(n):
            a0, a1 = _window(rng, t0, t1)
            intensity = (i + float(rng.random())) / n  # each class spans quiet to loud
            actors.append((cls, a0, a1, intensity))
    where = attacker_addresses(pool, rng, [a[0] for a in actors], [(c.addr, c.network, c.cls) for c in plan])
    for (cls, a0, a1, intensity), (addr, network) in zip(actors, where):
        idx = len(plan)
        plan.append(_Client(idx, addr, cls, Actor(idx, cls, round(a0, 3), round(a1, 3), intensity), network=network))
    # distributed_flood: each operator's addresses in one fresh hosting /24 (/64), starting (and, when
    # they stop before the log ends, stopping) within FLOOD_SPREAD seconds of each other.
    cls = "distributed_flood"
    for i in range(operators):
        a0, a1 = _window(rng, t0, t1)
        spread = min(FLOOD_SPREAD, 0.25 * (a1 - a0))  # (short runs: still start < end)
        intensity = (i + float(rng.random())) / operators
        prefix = pool.prefix(bool(rng.random() < FLOOD_V6), hosting=True)
        k = int(rng.integers(FLOOD_ADDRESSES[0], FLOOD_ADDRESSES[1] + 1))
        op = Operator(i, str(prefix), FLOOD_BEHAVIOURS[int(rng.integers(len(FLOOD_BEHAVIOURS)))], k,
                      int(rng.integers(2**63)))
        for _ in range(k):
            s = a0 + spread * float(rng.random())
            e = t1 if a1 >= t1 else min(t1, a1 + spread * float(rng.random()))
            idx = len(plan)
            plan.append(_Client(idx, pool.address_in(prefix), cls,
                                Actor(idx, cls, round(s, 3), round(e, 3), intensity, op), network="hosting"))
    for addr, fl, j in fleet_clients:
        plan.append(_Client(len(plan), addr, "fleet", network="cloud", fleet=fl, member=j))
    return plan


@dataclass(frozen=True)
class Traffic:
    """Generated requests as the log will show them: ``cols`` holds one array per field, rows in log
    order (by request end), times in integer milliseconds (``start_ms``, ``dur_ms``, ``end_ms``;
    ``ups_ms`` is -1 where nginx answered itself), plus the recorder's columns (``client`` indexes
    ``plan``, ``ua`` indexes ``agents``, ``attack`` marks rows sent as part of an attack)."""

    t0: float
    t1: float
    outage: tuple[float, float]
    plan: tuple[_Client, ...]
    agents: tuple[str, ...]
    cols: dict[str, np.ndarray]
    refused: int


def generate(*, minutes: float = 60, seed: int = 0, clients: int = 2000, attackers: int = 40,
             attacks: bool = True, operators: int | None = None, start: float = 1764403200.0,
             hold: float = HOLD, progress: Callable[[str], None] | None = None) -> Traffic:
    """Everything :func:`simulate` writes, in memory."""
    if not minutes > 0:
        raise ValueError(f"minutes must be > 0, got {minutes}")
    if clients < 0 or attackers < 0 or (operators is not None and operators < 0):
        raise ValueError("clients, attackers and operators must be >= 0")
    if not 1.0 <= hold <= 600.0:
        raise ValueError(f"hold must be within 1 and 600 seconds, got {hold}")
    if not attacks:
        operators = 0
    elif operators is None:  # one or two an hour, when there are attackers at all
        ops_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(5,)))
        operators = default_operators(minutes, ops_rng) if attackers > 0 else 0
    say = progress or (lambda msg: None)
    t0 = float(start)
    t1 = t0 + float(minutes) * 60.0
    svc = Service(np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,))), t0, t1,
                  n_channels=max(60, min(400, clients // 6)))
    rec = Recorder()
    world = World(svc, rec, t0, t1, float(hold))
    plan = _plan(seed, t0, t1, clients, attackers if attacks else 0, operators)

    for cls in (*NORMAL_CLASSES, *ATTACK_CLASSES):
        members = [c for c in plan if c.cls == cls]
        if not members:
            continue
        before = len(rec)
        for c in members:
            # (A fleet member's stream is keyed by its fleet, not its index: attackers do not move it.)
            key = (7, c.fleet.index, c.member) if c.fleet is not None else (2, c.index)
            rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))
            if c.fleet is not None:
                populations.fleet_member(world, rng, c.index, c.fleet)
            elif c.actor is None:
                _NORMAL_RUN[cls](world, rng, c.index)
            else:
                run_actor(world, rng, c.actor)
        ops = ""
        if cls in PREFIX_CLASSES:
            n_ops = len({c.actor.operator for c in members})
            ops = f"{n_ops} operator{'' if n_ops == 1 else 's'}, "
        say(f"{cls}: {ops}{len(members)} clients, {len(rec) - before:,} requests")

    # The server's part, then the log's span and order.
    post = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(3,)))
    tab = rec.table()
    enforce_outage(tab, svc.outage, post)
    prefix = np.array([u[:11] for u in tab["uri"]], dtype="U11")
    is_poll = np.char.startswith(prefix, "/v1/poll")
    is_publish = (tab["method"] == POST) & (prefix == "/v1/publish")
    refused = apply_limits(tab, svc.outage, is_poll, is_publish, post)
    say(f"server: outage {svc.outage[1] - svc.outage[0]:.0f} s, {refused:,} requests over a rate limit (429)")

    start_ms = np.round(tab["start"] * 1000).astype(np.int64)
    dur_ms = np.maximum(np.round(tab["dur"] * 1000), 0).astype(np.int64)
    end_ms = start_ms + dur_ms
    ups = tab["ups"]
    ups_ms = np.where(np.isnan(ups), -1, np.clip(np.round(np.nan_to_num(ups) * 1000), 0, dur_ms)).astype(np.int64)
    keep = np.flatnonzero((end_ms >= round(t0 * 1000)) & (end_ms <= round(t1 * 1000)))
    order = keep[np.lexsort((keep, start_ms[keep], end_ms[keep]))]
    cols = {k: v[order] for k, v in tab.items()}
    cols.update(start_ms=start_ms[order], dur_ms=dur_ms[order], end_ms=end_ms[order], ups_ms=ups_ms[order])
    cols["conn"], cols["conn_reqs"] = connections(cols["lane"], cols["start_ms"], cols["end_ms"], cols["status"],
                                                  cols["proto"], post)
    return Traffic(t0, t1, svc.outage, tuple(plan), tuple(rec.agents), cols, refused)


def _operators_meta(plan: tuple[_Client, ...], in_log: set[int]) -> list[dict]:
    """``distributed_flood`` operators as ``meta.json`` lists them: prefix, behaviour, addresses in the
    log, attack window (the earliest start and latest end of its addresses)."""
    ops: dict[Operator, list[Actor]] = {}
    for c in plan:
        if c.actor is not None and c.actor.operator is not None and c.index in in_log:
            ops.setdefault(c.actor.operator, []).append(c.actor)
    return [{"prefix": op.prefix, "behaviour": op.behaviour, "addresses": len(acts),
             "attack_start": round(min(a.start for a in acts), 3), "attack_end": round(max(a.end for a in acts), 3),
             "intensity": round(acts[0].intensity, 3)} for op, acts in sorted(ops.items(), key=lambda kv: kv[0].index)]


def _fleets_meta(plan: tuple[_Client, ...], in_log: set[int]) -> list[dict]:
    """Fleets as ``meta.json`` lists them: prefix, agent, addresses in the log."""
    fleets: dict[Fleet, int] = {}
    for c in plan:
        if c.fleet is not None and c.index in in_log:
            fleets[c.fleet] = fleets.get(c.fleet, 0) + 1
    return [{"prefix": fl.prefix, "agent": fl.ua, "addresses": n}
            for fl, n in sorted(fleets.items(), key=lambda kv: kv[0].index)]


def simulate(out_dir: str | Path, *, minutes: float = 60, seed: int = 0, clients: int = 2000,
             attackers: int = 40, attacks: bool = True, operators: int | None = None,
             start: float = 1764403200.0, hold: float = HOLD, envoy: bool = False, nginx_starts: bool = False,
             progress: Callable[[str], None] | None = None) -> SimSummary:
    """Simulate ``minutes`` of traffic to the long-poll service and write ``access.log``,
    ``access_combined.log``, ``labels.csv`` and ``meta.json`` into ``out_dir``.

    ``clients`` normal client keys (browsers, mobiles, consumers, NAT offices, health checkers), plus
    the addresses of ``fleet`` customers (two fleets of 6 to 30 addresses an hour at 2000 clients) and,
    when ``attacks``, ``attackers`` abusive actors spread over the single-address attack classes,
    plus ``operators`` ``distributed_flood`` operators of 8 to 40 addresses each (default: one or two
    an hour when ``attackers`` > 0; every address is an abusive key in ``labels.csv``). The same
    arguments give byte-identical files. ``hold`` is how long the server holds a poll that has nothing
    to answer (25 s by default; the mobile builds that ask for 10 or 15 s keep asking for that). ``envoy``
    also writes ``access_envoy.log``: the same requests as Envoy logs them with a record at each start;
    ``nginx_starts``, ``access_starts.log``: ``access.log`` with a line at each start too, as nginx writes
    it with ``deploy/nginx/nginx.conf.template``."""
    began = time.perf_counter()
    tr = generate(minutes=minutes, seed=seed, clients=clients, attackers=attackers, attacks=attacks,
                  operators=operators, start=start, hold=hold, progress=progress)
    say = progress or (lambda msg: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cols, plan = tr.cols, tr.plan
    n = len(cols["end_ms"])
    # Request ids come from their own stream: they depend on the seed and the line count only.
    request_ids = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(4,))).bytes(16 * n).hex().encode()

    paths = {name: out / name for name in ("access.log", "access_combined.log", "labels.csv", "meta.json")}
    addrs = [c.addr for c in plan]
    write_logs(paths["access.log"], paths["access_combined.log"], end_ms=cols["end_ms"], dur_ms=cols["dur_ms"],
               ups_ms=cols["ups_ms"], client=cols["client"], addrs=addrs, method=cols["method"],
               uri=cols["uri"], status=cols["status"], nbytes=cols["bytes"], ua=cols["ua"], agents=list(tr.agents),
               referer=cols["referer"], proto=cols["proto"], request_ids=request_ids, conn=cols["conn"],
               conn_reqs=cols["conn_reqs"])
    say(f"wrote {n:,} lines")
    if nginx_starts:
        paths["access_starts.log"] = out / "access_starts.log"
        write_nginx_starts(paths["access_starts.log"], paths["access.log"], end_ms=cols["end_ms"],
                           dur_ms=cols["dur_ms"], client=cols["client"], addrs=addrs,
                           method=cols["method"], uri=cols["uri"], ua=cols["ua"], agents=list(tr.agents),
                           request_ids=request_ids)
        say(f"wrote {2 * n:,} nginx lines with start lines")
    if envoy:
        paths["access_envoy.log"] = out / "access_envoy.log"
        write_envoy_log(paths["access_envoy.log"], start_ms=cols["start_ms"], dur_ms=cols["dur_ms"],
                        client=cols["client"], addrs=addrs, method=cols["method"], uri=cols["uri"],
                        status=cols["status"], nbytes=cols["bytes"], ua=cols["ua"], agents=list(tr.agents),
                        request_ids=request_ids, conn=cols["conn"])
        say(f"wrote {2 * n:,} Envoy records")

    # Labels: every key in the log, in order of first appearance.
    client = cols["client"]
    lines_per = np.bincount(client, minlength=len(plan))
    o0_ms, o1_ms = round(tr.outage[0] * 1000), round(tr.outage[1] * 1000)
    in_outage = np.bincount(client[(cols["start_ms"] < o1_ms) & (cols["end_ms"] >= o0_ms)], minlength=len(plan)) > 0
    _, first = np.unique(client, return_index=True)
    rows, class_clients, class_lines = [], {}, {}
    for i in client[np.sort(first)].tolist():
        c = plan[i]
        a = c.actor
        rows.append({
            "client": c.addr, "label": "abusive" if a else "normal", "class": c.cls,
            "population": "abusive" if a else "normal",
            "attack_start": f"{a.start:.3f}" if a else "", "attack_end": f"{a.end:.3f}" if a else "",
            "active_in_outage": int(in_outage[i]), "requests": int(lines_per[i]),
            "intensity": f"{a.intensity:.3f}" if a else "", "network": c.network,
        })
        class_clients[c.cls] = class_clients.get(c.cls, 0) + 1
        class_lines[c.cls] = class_lines.get(c.cls, 0) + int(lines_per[i])
    write_labels(paths["labels.csv"], rows)
    n_abusive = sum(1 for r in rows if r["label"] == "abusive")
    order_cls = [c for c in (*NORMAL_CLASSES, *ATTACK_CLASSES) if c in class_clients]
    class_clients = {c: class_clients[c] for c in order_cls}
    class_lines = {c: class_lines[c] for c in order_cls}
    statuses, counts = np.unique(cols["status"], return_counts=True)
    meta = {
        "seed": seed, "minutes": minutes, "start": tr.t0, "end": tr.t1,
        "outage": {"start": tr.outage[0], "end": tr.outage[1]},
        "hold_seconds": hold,
        "counts": class_clients, "lines_by_class": class_lines, "lines": n,
        "clients": len(rows), "attackers": n_abusive, "attacks": bool(attacks),
        "status_counts": {str(int(s)): int(k) for s, k in zip(statuses, counts)},
        "limits": {**limits(), "refused": tr.refused},
        "operators": _operators_meta(plan, set(client.tolist())),
        "fleets": _fleets_meta(plan, set(client.tolist())),
        "files": {k: v.name for k, v in paths.items()},
    }
    write_meta(paths["meta.json"], meta)
    return SimSummary(lines=n, clients=len(rows), attackers=n_abusive, class_clients=class_clients,
                      class_lines=class_lines, outage=tr.outage, paths=paths,
                      seconds=round(time.perf_counter() - began, 3))
