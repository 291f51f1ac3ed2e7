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


def test_nginx_start_lines_are_written_only_for_requests_that_sent_one(tmp_path):
    # two requests: a poll from 10.000 to 35.000 and a connection that never sent a request line, closed
    # with a 408 at 40.000 after 30 s; the poll's start line comes first, the 408 has none
    from detector.sim.writer import write_nginx_starts

    ends = tmp_path / "access.log"
    ends.write_bytes(b'{"msec":"35.000","status":"204"}\n{"msec":"40.000","status":"408"}\n')
    out = tmp_path / "access_starts.log"
    write_nginx_starts(out, ends, end_ms=np.array([35_000, 40_000]), dur_ms=np.array([25_000, 30_000]),
                       client=np.array([0, 1]), addrs=["10.0.0.1", "10.0.0.2"], method=np.array([0, 0]),
                       uri=np.array(["/v1/poll?cursor=1", ""], dtype=object), ua=np.array([0, 0]), agents=["ua"],
                       request_ids=b"0" * 64, started=np.array([True, False]))
    lines = out.read_bytes().splitlines()
    assert len(lines) == 3 and b'"phase":"start","msec":"10.000"' in lines[0] and b"10.0.0.1" in lines[0]
    assert lines[1:] == ends.read_bytes().splitlines()
