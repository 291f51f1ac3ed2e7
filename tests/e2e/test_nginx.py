"""A real nginx with ``deploy/nginx/nginx.conf.template`` in front of a long-poll API, ``detector serve --tail``
on nginx's access log: an abusive reconnect loop is turned away within a bounded time, a polite poller
never is, and when detector hangs or is gone nginx lets everyone through (fail-open)."""

from __future__ import annotations

import json
import signal
import time

import numpy as np
import pytest

pytestmark = pytest.mark.slow

DETECT_WITHIN = 60.0  # seconds from the first abusive request to the first answer carrying detector's verdict


def test_nginx_turns_the_reconnect_loop_away_and_fails_open(lab, nginx_ready, served_model, tmp_path, cleanup):
    api = lab.LongPollAPI(hold=5.0, every=3.0).start()
    cleanup.append(api)
    detector_port = lab.free_port()
    nginx = lab.Nginx(tmp_path / "nginx", api.address, f"127.0.0.1:{detector_port}")
    nginx.check()
    cleanup.append(nginx.start())
    detector = lab.Detector(tmp_path / "detector", served_model, tail=[nginx.access_log], port=detector_port,
                            env={"DETECTOR_API__ALLOW_CACHE_SECONDS": "2"})
    cleanup.append(detector.start())
    front = f"127.0.0.1:{nginx.port}"
    end = time.time() + 80  # no client outlives the test, whatever happens

    polite = lab.Poller(front, "127.0.0.2", end)
    polite.start()
    cleanup.append(polite)
    time.sleep(3)  # the polite client is known before the abuse starts

    abusive = lab.ReconnectLoop(front, "127.0.0.3", end)
    started = time.time()
    abusive.start()
    cleanup.append(abusive)
    while abusive.first_denied is None and time.time() < started + DETECT_WITHIN and abusive.is_alive():
        time.sleep(0.1)
    detected = abusive.first_denied
    assert detected is not None, f"not turned away within {DETECT_WITHIN} s: {detector.verdicts()}"
    print(f"\nabusive reconnect loop turned away {detected - started:.1f} s after it started")
    time.sleep(1.5)
    abusive.stop()

    denied = [a for a in abusive.answers if a.at >= detected and a.status]
    assert denied and all(a.status in (403, 429) and a.decision in ("throttle", "block") for a in denied)
    assert all(a.retry_after.isdigit() for a in denied if a.status == 429)
    verdict = next(v for v in detector.verdicts() if v["client"] == "127.0.0.3")
    assert verdict["verdict"] in ("throttle", "block") and verdict["reasons"]
    lines = [json.loads(x) for x in nginx.access_log.read_text().splitlines()]
    aborted = [x for x in lines if x["remote_addr"] == "127.0.0.3" and x["status"] == "499"]
    assert len(aborted) >= 50, "the loop should leave hundreds of 499s a minute in nginx's log"

    # fail-open: detector hangs (SIGSTOP: connections are accepted, never answered) ...
    detector.signal(signal.SIGSTOP)
    t0 = time.time()
    assert _get(lab, front, "127.0.0.4", "/v1/ping") == 200
    assert time.time() - t0 < 3, "nginx should give up on a hung detector after its read timeout (0.5 s)"
    # ... and is gone
    detector.kill()
    assert _get(lab, front, "127.0.0.5", "/v1/ping") == 200
    # the polite client's cached allow (2 s) runs out: it polls on with detector down
    while len(polite.statuses(since=t0 + 2.5)) < 2 and time.time() < t0 + 20 and polite.is_alive():
        time.sleep(0.2)
    polite.stop()

    statuses = polite.statuses()
    assert len(statuses) >= 5
    assert all(s in (200, 204) for s in statuses), f"the polite client got {statuses}"
    after_stop = polite.statuses(since=t0 + 2.5)
    assert len(after_stop) >= 2 and all(s in (200, 204) for s in after_stop)

    # start lines: written for denied requests, and with detector gone (the subrequest ends in @detector_open)
    _, ends, unpaired = _ends_without_start(nginx.access_log)
    assert len(unpaired) <= 0.1 * len(ends), unpaired  # detector reads open requests at 90 % paired
    assert "127.0.0.5" in set(ends["client"]) and "127.0.0.5" not in set(unpaired["client"])


def _ends_without_start(log):
    """The start lines and the requests' own (end) lines of nginx's log, and those of the end lines no start
    line pairs with (on the key the feature stream matches them on: client, user agent, path and query,
    start to the millisecond)."""
    from detector.features.stream import _request_keys
    from detector.features.view import EventArrays, Interner
    from detector.ingest.formats import OPENED, parse_lines

    ev = parse_lines(log.read_bytes().splitlines()).events
    opened = ev["status"].to_numpy() == OPENED
    keys = _request_keys(EventArrays.from_frame(ev, *(Interner() for _ in range(4))))
    ends = ev[~opened]
    return ev[opened], ends, ends[~np.isin(keys[~opened], keys[opened])]


def _get(lab, front: str, source: str, path: str) -> int:
    import http.client

    host, port = front.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10, source_address=(source, 0))
    try:
        conn.request("GET", path, headers={"User-Agent": lab.BROWSER})
        r = conn.getresponse()
        r.read()
        return r.status
    finally:
        conn.close()


HOLD = 20.0  # seconds the API holds a poll with nothing to answer (no message comes in this test)


def test_nginx_start_lines_show_a_parallel_flood_before_any_of_its_polls_ends(lab, nginx_ready, served_model,
                                                                              tmp_path, cleanup):
    """The template's auth subrequest writes a start line for every request: thirty polls opened at once are
    a verdict long before the first of them is answered (and so before nginx writes its usual line)."""
    api = lab.LongPollAPI(hold=HOLD, every=3600.0).start()
    cleanup.append(api)
    detector_port = lab.free_port()
    nginx = lab.Nginx(tmp_path / "nginx", api.address, f"127.0.0.1:{detector_port}")
    cleanup.append(nginx.start())
    detector = lab.Detector(tmp_path / "detector", served_model, tail=[nginx.access_log], port=detector_port,
                            env={"DETECTOR_API__ALLOW_CACHE_SECONDS": "2"})
    cleanup.append(detector.start())
    front = f"127.0.0.1:{nginx.port}"
    end = time.time() + 60

    polite = lab.Poller(front, "127.0.0.2", end)
    pinger = lab.Pinger(front, "127.0.0.4", end)  # requests that end meanwhile (see FeatureStream._open_usable)
    for client in (polite, pinger):
        client.start()
        cleanup.append(client)
    time.sleep(3)

    flood = lab.ParallelFlood(front, "127.0.0.3", end)
    started = time.time()
    flood.start()
    cleanup.append(flood)
    verdict = None
    while verdict is None and time.time() < started + HOLD - 2:
        verdict = next((v for v in detector.verdicts() if v["client"] == "127.0.0.3"
                        and v["verdict"] in ("throttle", "block")), None)
        time.sleep(0.2)
    caught = time.time() - started
    assert verdict is not None, f"no verdict {HOLD - 2:.0f} s into the flood: {detector.verdicts()}"
    assert not [a for a in flood.answers if a.at < started + 1.5 and a.status], "a first poll was answered early"
    print(f"\nparallel flood of {flood.width} polls: verdict {caught:.1f} s after it started, "
          f"before any of its polls ended (held {HOLD:.0f} s)")
    assert any("open" in r for r in verdict["reasons"]), verdict["reasons"]
    # nginx turns its next request away (once the cached allow of at most 2 s has run out)
    statuses = []
    while time.time() < started + caught + 4 and 403 not in statuses and 429 not in statuses:
        statuses.append(_get(lab, front, "127.0.0.3", "/v1/ping"))
        time.sleep(0.3)
    assert statuses[-1] in (403, 429), statuses
    for client in (flood, polite, pinger):
        client.stop()
    for client in (polite, pinger):
        assert client.statuses() and all(s in (200, 204) for s in client.statuses()), (client.source, sorted(set(client.statuses())), [v for v in detector.verdicts() if v["client"] == client.source])

    # the log: a start line for every request's own line, with the same start to the millisecond
    starts, ends, unpaired = _ends_without_start(nginx.access_log)
    assert len(starts) >= flood.width + len(ends) and unpaired.empty, unpaired
    metrics = detector.metrics()
    assert metrics['detector_start_records_total{outcome="closed"}'] >= 1
    assert metrics["detector_start_records_matched_ratio"] >= 0.9
