"""/metrics in Prometheus text, from the app's own registry, with concrete values."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from detector.records import IngestStats

from ..conftest import poll_traffic
from .conftest import key
from .test_http import T0


def samples(text: str) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_count_requests_decisions_lines_and_scoring(make_server):
    service, http, clock = make_server(now=T0 + 300)
    admin = key(service, "admin")
    http.post("/v1/admin/decisions", headers=admin, json={"value": "203.0.113.9", "type": "ban"})
    http.post("/v1/admin/decisions", headers=admin, json={"value": "198.51.100.0/24", "type": "throttle"})
    for _ in range(3):
        http.get("/authz", headers={"X-Real-IP": "192.0.2.1"})
    http.get("/authz/v1/poll", headers={"X-Real-IP": "203.0.113.9"})
    http.get("/authz", headers={"X-Real-IP": "198.51.100.4"})
    http.get("/nowhere")
    service.ingest(poll_traffic(clients=20, seconds=60), IngestStats(read=1000, parsed=990, malformed={"json": 7, "fields": 3}))
    m = samples(http.get("/metrics").text)
    req = "detector_http_requests_total"
    assert m[(req, (("code", "200"), ("decision", "allow"), ("endpoint", "/authz")))] == 3
    assert m[(req, (("code", "403"), ("decision", "block"), ("endpoint", "/authz/{path:path}")))] == 1
    assert m[(req, (("code", "429"), ("decision", "throttle"), ("endpoint", "/authz")))] == 1
    assert m[(req, (("code", "201"), ("decision", "-"), ("endpoint", "/v1/admin/decisions")))] == 2
    assert m[(req, (("code", "404"), ("decision", "-"), ("endpoint", "unmatched")))] == 1
    assert m[("detector_http_request_seconds_count", (("decision", "allow"), ("endpoint", "/authz")))] == 3
    active = "detector_decisions_active"
    assert m[(active, (("origin", "manual"), ("simulated", "false"), ("type", "ban")))] == 1
    assert m[(active, (("origin", "manual"), ("simulated", "false"), ("type", "throttle")))] == 1
    model_bans = len(service.store.decisions(T0 + 300, origin="model", type="ban"))
    assert m[(active, (("origin", "model"), ("simulated", "false"), ("type", "ban")))] == model_bans
    assert m[("detector_lines_read_total", ())] == 1000 and m[("detector_lines_ingested_total", ())] == 990
    assert m[("detector_lines_rejected_total", (("reason", "json"),))] == 7
    assert m[("detector_lines_rejected_total", (("reason", "fields"),))] == 3
    assert m[("detector_model_info", (("version", "test-1"),))] == 1
    ticks = m[("detector_scoring_seconds_count", ())]
    assert ticks == service.scoring.ticks > 0 and 0 < m[("detector_scoring_seconds_sum", ())] < 60
    assert m[("detector_scored_rows_total", ())] == service.scoring.rows > 0


def test_each_app_has_its_own_registry(make_server):
    s1, http1, _ = make_server()
    s2, http2, _ = make_server()
    http1.get("/healthz")
    http1.get("/healthz")
    m1, m2 = samples(http1.get("/metrics").text), samples(http2.get("/metrics").text)
    ok = ("detector_http_requests_total", (("code", "200"), ("decision", "-"), ("endpoint", "/healthz")))
    assert m1[ok] == 2 and ok not in m2


def test_metrics_follow_envoy_start_records(make_server):
    import pandas as pd

    service, http, _clock = make_server(now=T0 + 300)
    traffic = poll_traffic(clients=3, seconds=30)
    # a start record for each request, and two more requests begun that have not ended
    starts = traffic.assign(end=traffic["start"], duration=float("nan"), status=0)
    still = starts.iloc[:2].assign(start=T0 + 40.0, end=T0 + 40.0)
    later = traffic.iloc[:1].assign(start=T0 + 200.0, end=T0 + 201.0)  # closes every tick before it
    service.ingest(pd.concat([starts, traffic, still, later]).sort_values("end", kind="stable"), IngestStats())
    m = samples(http.get("/metrics").text)
    assert m[("detector_open_requests", ())] == 2
    assert m[("detector_start_records_total", (("outcome", "closed"),))] == len(traffic)
    assert m[("detector_start_records_total", (("outcome", "expired"),))] == 0
    assert m[("detector_start_records_total", (("outcome", "refused"),))] == 0
    assert m[("detector_start_records_matched_ratio", ())] == 1.0  # every end found its start
