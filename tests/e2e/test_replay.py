"""The same log replayed through ``POST /v1/ingest`` (in gzip and plain NDJSON chunks) and through ``--tail``
gives the same verdict changes: same model, same configuration, two ``detector serve`` processes."""

from __future__ import annotations

import gzip
import threading
import time

import httpx
import pytest

from detector.sim import simulate

pytestmark = pytest.mark.slow

CHUNK = 1500  # lines per POST
SETTLE = 5.0  # idle_close (1) + lateness (2) + tick (1) + 1: the last ticks close on the wall clock


def test_http_ingest_and_tail_give_the_same_verdicts(lab, served_model, tmp_path, cleanup):
    # recent timestamps, as a live log has (upkeep forgets observations an hour old by the wall clock)
    sim = simulate(tmp_path / "sim", minutes=3, seed=11, clients=250, attackers=20, start=time.time() - 240)
    log = tmp_path / "sim" / "access.log"
    lines = log.read_bytes().splitlines(keepends=True)
    assert len(lines) == sim.lines
    env = {"DETECTOR_INGEST__HTTP_REQUIRE_KEY": "false"}
    tailing = lab.Detector(tmp_path / "tail", served_model, tail=[log], env=env)
    posting = lab.Detector(tmp_path / "http", served_model, env=env)
    starters = [threading.Thread(target=d.start) for d in (tailing, posting)]
    for t in starters:  # both start at once: half the wait
        t.start()
    for t in starters:
        t.join(90)
    cleanup.extend([tailing, posting])
    assert tailing.proc.poll() is None and posting.proc.poll() is None

    with httpx.Client(base_url=posting.url, timeout=60) as http:
        for i in range(0, len(lines), CHUNK):
            body = b"".join(lines[i:i + CHUNK])
            headers = {"Content-Type": "application/x-ndjson"}
            if (i // CHUNK) % 2:
                body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
            r = http.post("/v1/ingest", params={"format": "nginx-json"}, content=body, headers=headers)
            assert r.status_code == 200, r.text
            assert r.json()["accepted"] == len(lines[i:i + CHUNK]) and r.json()["malformed"] == 0

    def processed(detector, source):
        return detector.metrics().get(f'detector_ingest_processed_events_total{{source="{source}"}}', 0)

    deadline = time.monotonic() + 60
    while processed(tailing, f"tail:{log}") < len(lines):
        assert time.monotonic() < deadline, "the tail did not get through the log"
        time.sleep(0.2)
    assert processed(posting, "http") == len(lines)
    time.sleep(SETTLE)
    ticks = [d.metrics()["detector_ticks_total"] for d in (tailing, posting)]
    assert ticks[0] == ticks[1] > 0

    def changes(detector):
        return sorted((v["client"], v["verdict"], v["at"], v["until"], v["score"]) for v in detector.verdicts())

    by_tail, by_http = changes(tailing), changes(posting)
    assert by_tail == by_http
    flagged = {c for c, verdict, *_ in by_tail if verdict != "allow"}
    assert flagged, "the simulated attacks should draw some verdicts"
    assert [d.metrics()["detector_scored_rows_total"] for d in (tailing, posting)] == [tailing.metrics()[
        "detector_scored_rows_total"]] * 2

    def latest(detector, client):  # the client's last score and features, and when (event time)
        body = detector.get(f"/score?client={client}")[2]
        got = httpx.Response(200, content=body).json()
        return got["score"], got["updated_at"], got["features"], got["verdict"]

    clients = [row.split(",")[0] for row in (tmp_path / "sim" / "labels.csv").read_text().splitlines()[1:]]
    assert len(clients) > 100
    assert [latest(tailing, c) for c in clients] == [latest(posting, c) for c in clients]
    late = [d.metrics()["detector_events_late_total"] for d in (tailing, posting)]
    assert late == [0, 0]
    print(f"\n{len(lines)} lines: {len(by_tail)} identical verdict changes ({len(flagged)} clients flagged), "
          f"{int(ticks[0])} ticks and the latest scores of {len(clients)} clients alike by tail and by POST /v1/ingest")
