"""Prefixes in the simulator: normal clients share IPv4 /24s and IPv6 /64s the way real networks make
them (carrier CGNAT pools, residential neighbours, households, venue Wi-Fi, cloud subnets), a share
of single-address attackers sits inside those shared prefixes among normal neighbours, and the
``distributed_flood`` operators spread one program over many addresses of one prefix.

The shares tested here are the design in ``detector/sim/addresses.py``; the bounds allow for the
randomness of one default-sized plan (2000 normal clients)."""

from __future__ import annotations

import csv
from collections import Counter, defaultdict

import numpy as np
import orjson
import pytest

from detector.ingest.identity import prefix_of as detector_prefix_of
from detector.sim import ATTACK_CLASSES, simulate
from detector.sim.addresses import ATTACKER_SHARED, CGNAT_CLIENTS_PER_24, SHARED_KINDS, prefix_of
from detector.sim.attacks import (FLOOD_ADDRESSES, FLOOD_BEHAVIOURS, FLOOD_JITTER, FLOOD_LOGIN_INTERVAL,
                                  FLOOD_MAX_PER_MINUTE, FLOOD_POLL_PERIOD, FLOOD_SPREAD)
from detector.sim.recorder import GET, POST
from detector.sim.traffic import _plan, default_operators, generate

SEEDS = (0, 1, 2)


def _v6(addr: str) -> bool:
    return ":" in addr


@pytest.fixture(scope="module", params=SEEDS)
def plan(request):
    """A default-sized plan: 2000 normal clients, 40 single-address actors, two operators."""
    clients = _plan(request.param, 0.0, 3600.0, 2000, 40, 2)
    prefixes = [prefix_of(c.addr) for c in clients]
    members = defaultdict(list)
    for c, p in zip(clients, prefixes):
        members[p].append(c)
    return dict(clients=clients, prefix=prefixes, members=members)


def _normal(c) -> bool:
    return c.actor is None


def _shared(plan, select) -> tuple[int, float]:
    """How many clients ``select`` picks, and the share of them with another normal client in their
    prefix (the design of normal networks; attackers joining them are tested apart)."""
    picked = [p for c, p in zip(plan["clients"], plan["prefix"]) if select(c)]
    return len(picked), float(np.mean([sum(map(_normal, plan["members"][p])) > 1 for p in picked]))


def test_addresses_are_unique_and_prefixes_are_the_detectors(plan):
    addrs = [c.addr for c in plan["clients"]]
    assert len(set(addrs)) == len(addrs)
    for c, p in zip(plan["clients"], plan["prefix"]):
        assert p == detector_prefix_of(c.addr)


def test_mobile_ipv4_comes_mostly_from_carrier_cgnat_pools(plan):
    clients = plan["clients"]
    mobile4 = [c for c in clients if c.cls == "mobile" and not _v6(c.addr)]
    # 65 % of phones on the carrier, 60 % of those on IPv4; 28 % on home Wi-Fi, 70 % IPv4: two thirds
    # of IPv4 phones are behind CGNAT, and nearly all of those share a /24.
    cgnat = np.mean([c.network == "cellular" for c in mobile4])
    assert 0.58 <= cgnat <= 0.75
    n, shared = _shared(plan, lambda c: c.cls == "mobile" and not _v6(c.addr))
    assert n > 250 and 0.65 <= shared <= 0.88  # design: 0.67 + 0.33 * 0.30 = 0.77
    # A modest set of pools, many clients each, nobody but carriers' clients in them.
    pools = Counter(p for c, p in zip(clients, plan["prefix"])
                    if c.network == "cellular" and not _v6(c.addr) and _normal(c))
    sizes = np.array(list(pools.values()))
    assert 25 <= len(pools) <= 60
    assert 0.8 * CGNAT_CLIENTS_PER_24 <= sizes.mean() <= 1.2 * CGNAT_CLIENTS_PER_24
    assert np.median(sizes) >= 5 and sizes.max() <= 30
    for p in pools:
        assert {c.network for c in plan["members"][p]} == {"cellular"}
        # Normal phones and browsers, and now and then a phone or laptop running an abusive script.
        assert {c.cls for c in plan["members"][p] if _normal(c)} <= {"mobile", "browser"}
        assert all(c.cls in ATTACKER_SHARED for c in plan["members"][p] if not _normal(c))
    # Far fewer /24s than IPv4 phones.
    assert len({p for c, p in zip(clients, plan["prefix"]) if c in mobile4}) < 0.55 * len(mobile4)


def test_mobile_ipv6_has_a_64_per_phone_except_on_wifi(plan):
    clients = plan["clients"]
    for c, p in zip(clients, plan["prefix"]):
        if c.network == "cellular" and _v6(c.addr):
            assert len(plan["members"][p]) == 1  # 3GPP: one /64 per phone
    n, shared = _shared(plan, lambda c: c.cls == "mobile" and _v6(c.addr))
    assert n > 150 and 0.12 <= shared <= 0.32  # venue Wi-Fi (~17 %) and households (~4 %)
    venues = Counter(p for c, p in zip(clients, plan["prefix"]) if c.network == "venue")
    assert venues and all(_v6(p) for p in venues)
    assert all(3 <= k <= 12 for k in venues.values()), venues
    v6 = np.mean([_v6(c.addr) for c in clients if c.cls == "mobile"])
    assert 0.33 <= v6 <= 0.48


def test_browsers_share_residential_24s_with_a_few_neighbours(plan):
    clients = plan["clients"]
    n, shared = _shared(plan, lambda c: c.network == "home" and not _v6(c.addr) and _normal(c))
    assert n > 900 and 0.25 <= shared <= 0.35  # HOME_V4_SHARED = 0.30
    homes = Counter(p for c, p in zip(clients, plan["prefix"])
                    if c.network == "home" and not _v6(c.addr) and _normal(c))
    assert max(homes.values()) <= 10
    assert {c.network for p in homes for c in plan["members"][p]} == {"home"}
    sizes = [k for k in homes.values() if k > 1]
    assert 2.5 <= np.mean(sizes) <= 4.5  # mostly one or two neighbours
    # Browsers as a whole: home neighbours plus phones' browsers and tethered laptops on CGNAT.
    n, shared = _shared(plan, lambda c: c.cls == "browser" and not _v6(c.addr))
    assert n > 900 and 0.28 <= shared <= 0.42
    # Phones on home Wi-Fi share those /24s with browsers.
    assert any({c.cls for c in plan["members"][p]} == {"browser", "mobile"} for p in homes)


def test_households_share_a_64_between_two_or_three_devices(plan):
    clients = plan["clients"]
    n, shared = _shared(plan, lambda c: c.network == "home" and _v6(c.addr))
    assert n > 100 and 0.08 <= shared <= 0.32  # HOME_V6_SHARED = 0.20
    homes = Counter(p for c, p in zip(clients, plan["prefix"]) if c.network == "home" and _v6(c.addr))
    assert max(homes.values()) <= 3
    v6 = np.mean([_v6(c.addr) for c in clients if c.cls == "browser"])
    assert 0.12 <= v6 <= 0.23


def test_consumers_offices_and_probes():
    shared = 0
    for seed in range(6):
        clients = _plan(seed, 0.0, 3600.0, 2000, 40, 2)
        prefixes = [prefix_of(c.addr) if c.network != "internal" else c.addr for c in clients]
        size = Counter(prefixes)
        normal_size = Counter(p for c, p in zip(clients, prefixes) if _normal(c))
        for c, p in zip(clients, prefixes):
            if c.cls == "consumer":
                assert c.network == "cloud" and normal_size[p] <= 3 and size[p] <= normal_size[p] + 1
                # Other consumers, and now and then a compromised or misbehaving VM (an attacker).
                assert all(o.cls == "consumer" for o, q in zip(clients, prefixes) if q == p and _normal(o))
                assert all(o.network == "cloud" for o, q in zip(clients, prefixes) if q == p)
                shared += normal_size[p] > 1
            elif c.cls == "nat_office":
                assert size[p] == 1  # one address, many users, alone in its prefix
            elif c.cls == "health_checker":
                assert c.addr.startswith(("10.", "172.31."))
            elif c.actor is not None and c.cls != "distributed_flood":
                assert (size[p] == 1) == (c.network == "public")
    assert 6 <= shared <= 36  # CLOUD_SHARED = 0.30 of 60 consumers, in pairs and threes


# -- single-address attackers among normal clients ----------------------------------------------

ATTACKER_SEEDS = tuple(range(8))


@pytest.fixture(scope="module")
def attacker_plans():
    """Default-sized plans (2000 normal clients, 40 single-address actors, two operators)."""
    return {seed: _plan(seed, 0.0, 3600.0, 2000, 40, 2) for seed in ATTACKER_SEEDS}


def _singles(clients):
    return [c for c in clients if c.actor is not None and c.cls != "distributed_flood"]


def test_a_share_of_attackers_sits_in_prefixes_of_normal_clients(attacker_plans):
    """About 40 % of single-address attackers get an address inside a prefix normal clients use (a
    carrier's CGNAT /24, a residential /24, a consumer's cloud /24 or /64), the rest one of their own;
    labelled with the network they are on."""
    inside, per_cls, kinds = [], defaultdict(list), Counter()
    for seed, clients in attacker_plans.items():
        addrs = [c.addr for c in clients]
        assert len(set(addrs)) == len(addrs)
        members = defaultdict(list)
        for c in clients:
            if c.network != "internal":
                members[prefix_of(c.addr)].append(c)
        singles = _singles(clients)
        assert len(singles) == 40
        here = []
        for c in singles:
            p = prefix_of(c.addr)
            normal = [o for o in members[p] if _normal(o)]
            kinds[c.network] += 1
            if c.network == "public":
                assert members[p] == [c]  # a prefix of its own
                here.append(False)
                continue
            assert c.network in SHARED_KINDS and normal
            # One attacker among innocent neighbours (while there are prefixes enough to go round).
            assert [o for o in members[p] if not _normal(o)] == [c]
            assert {o.network for o in normal} == {c.network}
            if c.network in ("cellular", "home"):
                assert not _v6(c.addr)
            if c.network in ("cellular", "home"):
                assert {o.cls for o in normal} <= {"mobile", "browser"}
            else:
                assert {o.cls for o in normal} == {"consumer"}
            here.append(True)
        # Each hour on its own: a fair share, not all or nothing.
        assert 0.3 <= np.mean(here) <= 0.52, (seed, np.mean(here))
        inside += here
        hour = defaultdict(list)
        for c, h in zip(singles, here):
            hour[c.cls].append(h)
            per_cls[c.cls].append(h)
        for cls, hits in hour.items():
            # Stratified per class: floor or ceil of n * share in every hour.
            assert abs(sum(hits) - len(hits) * ATTACKER_SHARED[cls][0]) < 1, (seed, cls)
    assert 0.38 <= np.mean(inside) <= 0.44  # design: 0.41 of the default mix
    assert set(per_cls) == set(ATTACKER_SHARED)
    # Every kind turns up; own prefixes are still the most common single network.
    assert set(kinds) == {"public", *SHARED_KINDS}
    assert kinds["public"] == max(kinds.values())


def test_every_default_hour_has_an_attacker_behind_a_cgnat_pool_with_normal_clients(attacker_plans):
    for seed, clients in attacker_plans.items():
        cgnat = {prefix_of(c.addr) for c in clients if _normal(c) and c.network == "cellular" and not _v6(c.addr)}
        assert any(c.network == "cellular" and prefix_of(c.addr) in cgnat for c in _singles(clients)), seed
    # Even a single attacker goes there (when there is a pool at all); none without attackers.
    for seed in range(4):
        clients = _plan(seed, 0.0, 3600.0, 300, 1, 0)
        (a,) = _singles(clients)
        assert a.network == "cellular"
        assert any(_normal(c) and prefix_of(c.addr) == prefix_of(a.addr) for c in clients)
    assert not _singles(_plan(0, 0.0, 3600.0, 300, 0, 0))
    # No normal clients, no pools: attackers keep prefixes of their own.
    assert {c.network for c in _singles(_plan(0, 0.0, 3600.0, 0, 7, 0))} == {"public"}


def test_attackers_do_not_move_normal_clients(attacker_plans):
    """Normal clients get the same addresses and networks with or without attackers (runs without
    attacks, which models are trained on, stay as they were)."""
    for seed in ATTACKER_SEEDS[:3]:
        quiet = _plan(seed, 0.0, 3600.0, 2000, 0, 0)
        loud = [c for c in attacker_plans[seed] if _normal(c)]
        assert [(c.addr, c.cls, c.network) for c in quiet] == [(c.addr, c.cls, c.network) for c in loud]


def test_labels_name_the_attackers_networks(tmp_path):
    small = dict(minutes=3, clients=150, attackers=14)
    simulate(tmp_path, seed=2, **small)
    plan = generate(seed=2, **small).plan
    with open(tmp_path / "labels.csv", newline="") as f:
        rows = {r["client"]: r for r in csv.DictReader(f)}
    by_addr = {c.addr: c for c in plan}
    singles = [r for r in rows.values() if r["label"] == "abusive" and r["class"] != "distributed_flood"]
    assert singles
    assert {r["network"] for r in singles} <= {"public", *SHARED_KINDS}
    for r in rows.values():
        assert r["network"] == by_addr[r["client"]].network


# -- distributed_flood -----------------------------------------------------------------------------

FLOOD = dict(minutes=10, clients=200, attackers=7, operators=4)


@pytest.fixture(scope="module", params=(0, 1))
def flood(request, tmp_path_factory):
    out = tmp_path_factory.mktemp("flood")
    simulate(out, seed=request.param, **FLOOD)
    tr = generate(seed=request.param, **FLOOD)
    with open(out / "labels.csv", newline="") as f:
        labels = {r["client"]: r for r in csv.DictReader(f)}
    meta = orjson.loads((out / "meta.json").read_bytes())
    ops = defaultdict(list)
    for c in tr.plan:
        if c.cls == "distributed_flood":
            ops[c.actor.operator].append(c)
    return dict(tr=tr, labels=labels, meta=meta, ops=ops)


def test_every_operator_sits_in_one_prefix_and_every_address_is_labelled(flood):
    tr, labels, ops = flood["tr"], flood["labels"], flood["ops"]
    assert len(ops) == 4
    assert flood["meta"]["operators"] == [
        {"prefix": op.prefix, "behaviour": op.behaviour, "addresses": len(cs),
         "attack_start": round(min(c.actor.start for c in cs), 3), "attack_end": round(max(c.actor.end for c in cs), 3),
         "intensity": round(cs[0].actor.intensity, 3)} for op, cs in sorted(ops.items(), key=lambda kv: kv[0].index)]
    for op, cs in ops.items():
        assert FLOOD_ADDRESSES[0] <= len(cs) == op.addresses <= FLOOD_ADDRESSES[1]
        assert op.behaviour in FLOOD_BEHAVIOURS
        assert {prefix_of(c.addr) for c in cs} == {op.prefix}
        assert op.prefix.endswith("/64" if _v6(cs[0].addr) else "/24")
        # The prefix is the operator's alone.
        assert all(c.cls == "distributed_flood" for c in tr.plan if prefix_of(c.addr) == op.prefix)
        starts = [float(labels[c.addr]["attack_start"]) for c in cs]
        ends = [float(labels[c.addr]["attack_end"]) for c in cs]
        assert max(starts) - min(starts) <= FLOOD_SPREAD
        assert max(ends) - min(ends) <= FLOOD_SPREAD
        for c in cs:
            r = labels[c.addr]
            assert (r["label"], r["class"], r["population"], r["network"]) == (
                "abusive", "distributed_flood", "abusive", "hosting")
            assert float(r["attack_start"]) < float(r["attack_end"]) <= tr.t1
            assert len({c.actor.intensity for c in cs}) == 1
    assert "distributed_flood" in ATTACK_CLASSES


def test_each_address_is_modest_and_the_prefix_is_not(flood):
    """Design bound, per address over its attack window: short_poll at most FLOOD_MAX_PER_MINUTE
    (26) requests a minute (a re-poll every 3 to 8 s, jittered by up to 1.25x), login_spray at most 13
    (a login every 6 to 20 s, jittered). Busy normal browsers reach 10-30 requests in their busiest
    minute; single-address attackers run at tens to hundreds. The operator's prefix as a whole
    sends at least eight times one address's floor."""
    tr, ops = flood["tr"], flood["ops"]
    cols = tr.cols
    floor = {"short_poll": 60.0 / (FLOOD_POLL_PERIOD[0] * FLOOD_JITTER),
             "login_spray": 60.0 / (FLOOD_LOGIN_INTERVAL[0] * FLOOD_JITTER)}
    o0, o1 = (round(x * 1000) for x in tr.outage)
    for op, cs in ops.items():
        total = 0.0
        for c in cs:
            mine = (cols["client"] == c.index) & cols["attack"]
            minutes = (c.actor.end - c.actor.start) / 60.0
            rate = int(mine.sum()) / minutes
            assert 0.5 * floor[op.behaviour] <= rate <= FLOOD_MAX_PER_MINUTE[op.behaviour], (op, rate)
            assert not (cols["status"][cols["client"] == c.index] == 429).any()  # under every per-key limit
            total += rate
        assert total >= 8 * 0.5 * floor[op.behaviour]
        rows = np.isin(cols["client"], [c.index for c in cs]) & cols["attack"]
        live = rows & ((cols["start_ms"] < o0) | (cols["start_ms"] >= o1)) & (cols["status"] != 502)
        uris = set(cols["uri"][rows].tolist())
        if op.behaviour == "short_poll":
            assert (cols["method"][rows] == GET).all()
            waits = {u.rsplit("&wait=", 1)[1] for u in uris}
            channels = {u.split("channel=", 1)[1].split("&", 1)[0] for u in uris}
            assert len(waits) == 1 and waits <= {"0", "1", "2"} and len(channels) == 1
            held = cols["dur_ms"][live & (cols["status"] != 499)]
            assert held.max() <= int(waits.pop()) * 1000 + 20  # no long hold: the point of it
            assert np.isin(cols["status"][live], [200, 204, 499]).all()
        else:
            assert uris == {"/login"} and (cols["method"][rows] == POST).all()
            assert np.mean(cols["status"][live] == 401) >= 0.95
        # One program: one agent, a few builds of it, or an agent per address.
        agents = len(set(cols["ua"][rows].tolist()))
        assert agents <= 4 or agents >= 0.5 * len(cs)


def test_operator_count_defaults_and_no_attacks(tmp_path):
    rng = np.random.default_rng(0)
    hourly = [default_operators(60, rng) for _ in range(200)]
    assert set(hourly) == {1, 2}
    assert {default_operators(3, rng) for _ in range(50)} == {1}
    assert all(24 <= default_operators(1440, rng) <= 48 for _ in range(50))
    # A run with attackers has them by default; --no-attacks and attackers=0 have none.
    small = dict(minutes=3, clients=150)
    assert any(c.cls == "distributed_flood" for c in generate(seed=1, attackers=7, **small).plan)
    assert not any(c.actor for c in generate(seed=1, attackers=0, **small).plan)
    s = simulate(tmp_path, seed=1, attacks=False, operators=3, **small)
    assert s.attackers == 0 and "distributed_flood" not in s.class_clients
    with pytest.raises(ValueError):
        generate(operators=-1, **small)
