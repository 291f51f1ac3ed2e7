"""``POST /v1/ingest`` on a real server: NDJSON plain and gzip, counts of accepted and malformed lines, the
size limit (declared, streamed, decompressed), a full queue answered 503 + Retry-After with counts that
still add up, keys, and the metrics."""

from __future__ import annotations

import gzip
import threading
import time

import httpx

from ..api.conftest import key, make_server
from ..conftest import nginx_line

T0 = 1_764_403_200.0
OPEN = {"ingest": {"http_require_key": False}}


def body(n: int, t: float = T0, client: str = "192.0.2.1") -> bytes:
    return b"".join(nginx_line(client, t + i * 0.01, 0.5) + b"\n" for i in range(n))


def metric(client: httpx.Client, name: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith((name + " ", name + "{")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_lines_are_processed_before_the_answer(make_server):
    service, http, _ = make_server(**OPEN)
    r = http.post("/v1/ingest", content=body(20) + b"{broken\n\n")
    assert r.status_code == 200
    assert r.json() == {"accepted": 20, "malformed": 2, "reasons": {"invalid_json": 1, "empty": 1}, "skipped": 0,
                        "processed": True}
    assert service.stats.parsed == 20 and service.stats.read == 22
    gz = http.post("/v1/ingest", params={"format": "nginx-json"}, content=gzip.compress(body(5, T0 + 1)),
                   headers={"Content-Encoding": "gzip"})
    assert gz.status_code == 200 and gz.json()["accepted"] == 5
    assert metric(http, 'detector_ingest_processed_events_total{source="http"}') == 25
    assert metric(http, 'detector_ingest_requests_total{result="accepted"}') == 2


def test_envoy_periodic_records_are_skipped_apart_from_malformed_lines(make_server):
    _service, http, _ = make_server(**OPEN)
    record = ('{"start_time":"2025-11-29T08:00:00.500Z","downstream_remote_address":"192.0.2.7:4000","path":"/v1/poll",'
              '"method":"GET","access_log_type":"%s","response_code":%d,"duration":%s}\n')
    lines = (record % ("DownstreamStart", 0, "null") + record % ("DownstreamPeriodic", 0, "null") * 2
             + record % ("DownstreamEnd", 204, "25000") + "{broken\n")
    r = http.post("/v1/ingest", params={"format": "envoy-json"}, content=lines.encode())
    assert r.json() == {"accepted": 2, "malformed": 1, "reasons": {"invalid_json": 1}, "skipped": 2, "processed": True}
    assert metric(http, 'detector_lines_skipped_total{type="DownstreamPeriodic"}') == 2
    assert metric(http, 'detector_ingest_skipped_lines_total{source="http"}') == 2
    assert metric(http, 'detector_ingest_received_lines_total{source="http"}') == 5
    assert metric(http, 'detector_ingest_malformed_lines_total{source="http"}') == 1


def test_bodies_past_the_limit_are_refused_while_streaming(make_server):
    _, http, _ = make_server(ingest={"http_require_key": False, "http_max_bytes": 4096})
    assert http.post("/v1/ingest", content=body(40)).status_code == 413  # Content-Length says so

    def chunks():  # no Content-Length: counted as it streams
        for _ in range(100):
            yield body(5)

    r = http.post("/v1/ingest", content=chunks())
    assert r.status_code == 413 and "4096" in r.json()["message"]
    bomb = gzip.compress(b"\n" * 1_000_000)  # 1 kB that inflates to 1 MB
    assert len(bomb) < 4096
    r = http.post("/v1/ingest", content=bomb, headers={"Content-Encoding": "gzip"})
    assert r.status_code == 413 and "decompress" in r.json()["message"]
    assert metric(http, 'detector_ingest_requests_total{result="too_large"}') == 3
    assert http.post("/v1/ingest", content=b"not gzip", headers={"Content-Encoding": "gzip"}).status_code == 400
    assert http.post("/v1/ingest", content=b"x", headers={"Content-Encoding": "br"}).status_code == 415
    assert http.post("/v1/ingest", params={"format": "yaml"}, content=b"x").status_code == 422


def test_a_full_queue_answers_503_and_the_counts_add_up(make_server):
    service, http, _ = make_server(ingest={"http_require_key": False, "queue_events": 10})
    answers = {}
    with service._lock:  # the pipeline is busy: the first batch waits in the queue, the second finds it full
        first = threading.Thread(target=lambda: answers.setdefault("first", http.post("/v1/ingest", content=body(12))))
        first.start()
        deadline = time.monotonic() + 10
        while service.stats.read == 0 and time.monotonic() < deadline:
            ingestion = http.get("/metrics").text
            if 'detector_ingest_queued_events{source="http"} 12.0' in ingestion:
                break
            time.sleep(0.02)
        second = http.post("/v1/ingest", content=body(3, T0 + 5))
        assert second.status_code == 503 and second.headers["Retry-After"] == "1"
        assert "full" in second.json()["message"]
    first.join(10)
    assert answers["first"].status_code == 200
    def get(name: str) -> float:
        return metric(http, f'detector_ingest_{name}{{source="http"}}')

    assert get("received_lines_total") == 15 and get("parsed_lines_total") == 15
    assert get("processed_events_total") == 12 and get("rejected_full_events_total") == 3
    assert get("queued_events") == 0
    assert metric(http, 'detector_ingest_requests_total{result="queue_full"}') == 1


def test_an_admin_key_is_needed_by_default(make_server):
    service, http, _ = make_server()
    assert http.post("/v1/ingest", content=body(1)).status_code == 403
    assert http.post("/v1/ingest", content=body(1), headers=key(service, "bouncer")).status_code == 403
    r = http.post("/v1/ingest", content=body(1), headers=key(service, "admin"))
    assert r.status_code == 200 and r.json()["accepted"] == 1


def test_ingest_can_be_switched_off(make_server):
    _, http, _ = make_server(ingest={"http": False})
    assert http.post("/v1/ingest", content=body(1)).status_code in (404, 405)


def test_late_lines_and_bounded_state_are_exported(make_server):
    _, http, _ = make_server(**OPEN)
    http.post("/v1/ingest", content=b"".join(nginx_line("192.0.2.1", T0 + 100 + i, 0.5) + b"\n" for i in range(10)))
    http.post("/v1/ingest", content=body(2, T0))  # 100 s behind: its ticks are closed
    text = http.get("/metrics").text
    assert metric(http, "detector_events_late_total") == 2
    for name in ("detector_clients_tracked", "detector_clients_refused_total", "detector_clients_evicted_total",
                 "detector_observations", "detector_ingest_queue_capacity_events", "detector_ticks_total"):
        assert name in text
