"""The ``fleet`` population: a customer's servers behind many egress addresses of one cloud /24 (/64),
all on one client library, each a polite long-poll subscriber (the normal counterpart of a
``distributed_flood`` operator)."""

from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict

import numpy as np
import orjson
import pytest

from detector.sim import simulate
from detector.sim.addresses import prefix_of
from detector.sim.agents import LIBRARY_AGENTS
from detector.sim.populations import FLEET_ADDRESSES, fleet_count
from detector.sim.service import HOLD
from detector.sim.traffic import _plan


def _fleets(clients):
    out = defaultdict(list)
    for c in clients:
        if c.cls == "fleet":
            out[c.fleet].append(c)
    return out


@pytest.mark.parametrize("seed", (0, 1, 2, 3))
def test_fleets_sit_alone_in_one_cloud_prefix_each(seed):
    clients = _plan(seed, 0.0, 3600.0, 2000, 40, 2)
    fleets = _fleets(clients)
    assert len(fleets) == 2
    addrs = [c.addr for c in clients]
    assert len(set(addrs)) == len(addrs)
    by_prefix = defaultdict(list)
    for c in clients:
        by_prefix[prefix_of(c.addr)].append(c)
    for fl, members in fleets.items():
        assert FLEET_ADDRESSES[0] <= len(members) == fl.addresses <= FLEET_ADDRESSES[1]
        prefixes = {prefix_of(c.addr) for c in members}
        assert prefixes == {fl.prefix}
        assert by_prefix[fl.prefix] == members  # nobody else, normal or abusive, in the fleet's prefix
        assert all(c.network == "cloud" and c.actor is None for c in members)
        assert fl.ua in LIBRARY_AGENTS


def test_fleets_do_not_move_the_other_clients():
    with_fleets = _plan(5, 0.0, 3600.0, 2000, 40, 2)
    others = [c for c in with_fleets if c.cls != "fleet"]
    assert [c.index for c in others] == list(range(len(others)))  # planned first, indices as before
    assert len({c.addr for c in others}) == len(others)


def test_fleet_count_scales():
    assert fleet_count(2000, 60) == 2
    assert fleet_count(0, 60) == 0
    assert fleet_count(150, 3) == 1
    assert fleet_count(4000, 120) == 8


@pytest.fixture(scope="module")
def fleet_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("fleet")
    s = simulate(out, seed=11, minutes=20, clients=2000, attacks=False)
    with open(out / "labels.csv", newline="") as f:
        labels = {r["client"]: r for r in csv.DictReader(f)}
    by_client = defaultdict(list)
    with open(out / "access.log", "rb") as f:
        for b in f:
            r = json.loads(b.decode("utf-8", "surrogateescape"))
            if labels[r["remote_addr"]]["class"] == "fleet":
                by_client[r["remote_addr"]].append(r)
    meta = orjson.loads((out / "meta.json").read_bytes())
    return dict(summary=s, labels=labels, by_client=by_client, meta=meta)


def test_fleets_are_labelled_normal_and_listed(fleet_run):
    s, labels, meta = fleet_run["summary"], fleet_run["labels"], fleet_run["meta"]
    members = [r for r in labels.values() if r["class"] == "fleet"]
    assert members and all(r["label"] == "normal" and r["network"] == "cloud" for r in members)
    assert s.class_clients["fleet"] == len(members) == sum(f["addresses"] for f in meta["fleets"])
    assert len(meta["fleets"]) == fleet_count(2000, 20)


def test_one_agent_per_fleet_and_polite_polls(fleet_run):
    by_prefix = defaultdict(list)
    for addr, rows in fleet_run["by_client"].items():
        by_prefix[prefix_of(addr)].append(rows)
    assert {f["prefix"] for f in fleet_run["meta"]["fleets"]} == set(by_prefix)
    o = fleet_run["summary"].outage
    o0, o1 = round(o[0] * 1000), round(o[1] * 1000)
    for prefix, members in by_prefix.items():
        assert len({x["http_user_agent"] for rows in members for x in rows}) == 1
        for rows in members:
            polls = [x for x in rows if x["request_uri"].startswith("/v1/poll")]
            held = [float(x["request_time"]) for x in polls if x["status"] in ("200", "204")]
            assert len(held) >= 20 and np.median(held) >= 10.0, (prefix, np.median(held))
            assert max(held) <= HOLD + 0.01
            statuses = Counter(x["status"] for x in rows)
            assert not any(s.startswith("4") and s != "499" for s in statuses), statuses
            # A handful of requests a minute: no bursts, and the cursor moves on.
            assert len(rows) / 20.0 <= 30
            answered = [x["request_uri"] for x in polls if x["status"] == "200"]
            assert len(set(answered)) == len(answered)
            # 503s only during the outage, backed off (at most two loops, >= 2.5 s apart each).
            ms = [float(x["msec"]) * 1000 for x in rows if x["status"] == "503"]
            assert all(o0 - 5 <= m <= o1 + 5 for m in ms)
            assert len(ms) <= 2 * (o1 - o0) / 1000 / 2.5


def test_fleets_do_not_depend_on_the_attackers():
    quiet = [(c.addr, c.fleet.ua, c.member) for c in _plan(4, 0.0, 3600.0, 2000, 0, 0) if c.cls == "fleet"]
    loud = [(c.addr, c.fleet.ua, c.member) for c in _plan(4, 0.0, 3600.0, 2000, 40, 2) if c.cls == "fleet"]
    assert quiet == loud and quiet
