"""The server model on hand-made inputs: rate limits, concurrency limit, outage, connections."""

from __future__ import annotations

import numpy as np

from detector.sim.recorder import ROW, Recorder
from detector.sim.service import BURST, MAX_POLLS, RATE, _bucket, apply_limits, connections, enforce_outage


def _table(start, dur, client=0, status=200):
    rec = Recorder()
    n = len(start)
    rec.add_many(client=client, lane=1, start=start, dur=dur, method=0, uri="/v1/poll?channel=a&cursor=1",
                 status=status, nbytes=10, ua=0, ups=np.asarray(dur) - 0.0005, attack=False)
    tab = rec.table()
    assert set(tab) == set(ROW) and len(tab["start"]) == n
    return tab


def test_leaky_bucket_lets_a_steady_client_through_and_caps_a_flood():
    steady = np.arange(0, 60, 1 / (RATE / 2))           # half the rate for a minute
    assert not _bucket(steady, RATE, BURST).any()
    flood = np.arange(0, 60, 1 / (RATE * 3))            # three times the rate
    refused = _bucket(flood, RATE, BURST)
    assert not refused[: int(BURST)].any()              # the burst goes through
    accepted = flood[~refused]
    assert abs(len(accepted[accepted >= 30]) / 30 - RATE) < 1.0  # then the rate, no more


def test_apply_limits_refuses_over_the_rate_with_a_quick_429():
    start = np.arange(0, 20, 0.01)
    tab = _table(start, np.full(len(start), 0.003))
    n = apply_limits(tab, (1e9, 1e9 + 1), np.zeros(len(start), bool), np.zeros(len(start), bool),
                     np.random.default_rng(0))
    refused = tab["status"] == 429
    assert n == refused.sum() > 0
    assert (tab["dur"][refused] < 0.003).all() and (tab["bytes"][refused] == 56).all()


def test_apply_limits_counts_concurrent_polls_per_key():
    n = MAX_POLLS + 50
    start = np.linspace(0, 20, n)  # 15 a second: under the rate limit
    tab = _table(start, np.full(n, 25.0))
    refused = apply_limits(tab, (1e9, 1e9 + 1), np.ones(n, bool), np.zeros(n, bool), np.random.default_rng(0))
    assert refused == 50
    assert (tab["status"][:MAX_POLLS] == 200).all() and (tab["status"][MAX_POLLS:] == 429).all()


def test_outage_answers_503_and_cuts_held_polls_with_502():
    tab = _table(np.array([0.0, 95.0, 101.0, 150.0, 205.0]), np.array([25.0, 25.0, 25.0, 3.0, 1.0]))
    enforce_outage(tab, (100.0, 200.0), np.random.default_rng(0))
    assert tab["status"].tolist() == [200, 502, 503, 503, 200]
    assert 5.0 < tab["dur"][1] < 5.01 and np.isnan(tab["ups"][2]) and tab["dur"][2] <= 0.002


def test_connections_follow_keepalive_aborts_and_lanes():
    lane = np.array([1, 1, 1, 1, 2, 2])
    start = np.array([0, 10_000, 100_000, 101_000, 0, 1_000])
    end = start + np.array([5_000, 5_000, 500, 500, 100, 100])
    status = np.array([200, 200, 499, 200, 200, 200])
    conn, reqs = connections(lane, start, end, status, np.zeros(6, np.int8), np.random.default_rng(0))
    # lane 1: two requests, an idle gap past the timeout (new connection), an abort (new connection)
    assert reqs.tolist() == [1, 2, 1, 1, 1, 2]
    assert conn[0] == conn[1] != conn[2] != conn[3] and conn[4] == conn[5] != conn[0]
    assert conn[0] < conn[4] < conn[2] < conn[3]  # serials in the order connections opened
