"""A real nginx with ``deploy/nginx/nginx.conf.template`` in front of a long-poll API, ``detector serve --tail``
on nginx's access log: an abusive reconnect loop is turned away within a bounded time, a polite poller
never is, and when detector hangs or is gone nginx lets everyone through (fail-open)."""

from __future__ import annotations

import json
import signal
import time

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
