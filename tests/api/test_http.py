"""``/authz``, ``/score`` and health over a real uvicorn socket, fed through the real pipeline."""

from __future__ import annotations

import pytest

from detector.records import Verdict

from ..conftest import poll_traffic, reconnect_loop

T0 = 1_764_403_200.0
ATTACKER = "203.0.113.66"


def _feed(service, until: float = T0 + 600):
    """Ordinary traffic plus a reconnect loop from T0+300 on, through the real pipeline."""
    import pandas as pd

    ev = pd.concat([poll_traffic(seconds=until - T0), reconnect_loop(ATTACKER, T0 + 300, until)])
    ev = ev.sort_values("end", ignore_index=True)
    for i in range(0, len(ev), 2000):
        service.ingest(ev.iloc[i:i + 2000])


def test_authz_blocks_the_abuser_and_allows_the_rest(make_server):
    service, http, clock = make_server(now=T0 + 600)
    _feed(service)
    r = http.get("/authz", headers={"X-Real-IP": ATTACKER})
    assert r.status_code in (403, 429)
    assert r.headers["X-Authz-Decision"] in ("block", "throttle")
    assert float(r.headers["X-Authz-Score"]) >= service.thresholds.throttle
    assert r.headers["X-Model-Version"] == "test-1"
    assert int(r.headers["X-Accel-Expires"]) > 0
    assert r.content == b""
    ok = http.post("/authz/v1/poll", headers={"X-Real-IP": "10.1.3.7"})
    assert ok.status_code == 200 and ok.headers["X-Authz-Decision"] == "allow" and ok.content == b""
    assert ok.headers["X-Accel-Expires"] == "5"


def test_authz_statuses_and_nginx_compat(make_server):
    service, http, clock = make_server(now=T0)
    service.store.apply([
        Verdict("198.51.100.1", "throttle", 0.7, T0 - 10, until=T0 + 50, model_version="test-1"),
        Verdict("198.51.100.2", "block", 0.9, T0 - 10, until=T0 + 500, model_version="test-1"),
    ])
    t = http.get("/authz", headers={"X-Client-Id": "198.51.100.1"})
    assert (t.status_code, t.headers["Retry-After"], t.headers["X-Authz-Decision"]) == (429, "50", "throttle")
    c = http.get("/authz", headers={"X-Client-Id": "198.51.100.1", "X-Authz-Compat": "nginx"})
    assert (c.status_code, c.headers["X-Authz-Retry-After"], c.headers["X-Authz-Decision"]) == (403, "50", "throttle")
    b = http.delete("/authz/anything", headers={"X-Client-Id": "198.51.100.2"})
    assert (b.status_code, b.headers["X-Authz-Decision"], b.headers["X-Accel-Expires"]) == (403, "block", "500")
    # verdicts lapse on the clock
    clock.now = T0 + 51
    assert http.get("/authz", headers={"X-Client-Id": "198.51.100.1"}).status_code == 200
    # unknown client: allow
    u = http.get("/authz", headers={"X-Client-Id": "192.0.2.200"})
    assert (u.status_code, u.headers["X-Authz-Score"]) == (200, "0")


def test_shadow_mode_allows_but_reports(make_server):
    service, http, clock = make_server(now=T0 + 600, policy={"shadow": True})
    _feed(service)
    r = http.get("/authz", headers={"X-Real-IP": ATTACKER})
    assert r.status_code == 200 and r.headers["X-Authz-Shadow"] in ("throttle", "block")
    s = http.get("/score", params={"client": ATTACKER}).json()
    assert s["simulated"] is True and s["verdict"] in ("throttle", "block")


def test_forwarded_for_is_believed_only_from_trusted_proxies(make_server):
    service, http, clock = make_server(now=T0, api={"trusted_proxies": ["127.0.0.0/8"]})
    service.store.apply([Verdict("203.0.113.9", "block", 0.9, T0, until=T0 + 60)])
    r = http.get("/authz", headers={"X-Forwarded-For": "203.0.113.9, 127.0.0.1"})
    assert r.status_code == 403
    service2, http2, _ = make_server(now=T0, api={"trusted_proxies": ["10.0.0.0/8"]})
    service2.store.apply([Verdict("203.0.113.9", "block", 0.9, T0, until=T0 + 60)])
    # the peer (127.0.0.1) is not trusted there: headers are ignored
    assert http2.get("/authz", headers={"X-Forwarded-For": "203.0.113.9", "X-Real-IP": "203.0.113.9"}).status_code == 200


def test_score_explains_the_verdict(make_server):
    service, http, clock = make_server(now=T0 + 600)
    _feed(service)
    s = http.get("/score", params={"client": ATTACKER}).json()
    assert s["client"] == ATTACKER and s["known"] is True
    assert s["verdict"] in ("throttle", "block")
    assert s["score"] >= s["thresholds"]["throttle"]
    assert 1 <= len(s["reasons"]) <= 3 and all("normal" in r for r in s["reasons"])
    assert s["features"]["rpm_10s"] > 100
    assert s["window"]["60s"] == 60 and s["model_version"] == "test-1"
    assert s["until"] > s["updated_at"] >= T0 + 590
    normal = http.get("/score", params={"client": "10.1.3.7"}).json()
    assert (normal["known"], normal["verdict"], normal["reasons"]) == (True, "allow", [])
    unknown = http.get("/score", params={"client": "192.0.2.250"}).json()
    assert (unknown["known"], unknown["score"], unknown["features"]) == (False, None, {})
    assert http.get("/score").status_code == 422


def test_health_and_docs(make_server):
    service, http, clock = make_server()
    assert http.get("/healthz").json() == {"status": "ok"}
    assert http.get("/readyz").json() == {"status": "ready"}
    assert http.get("/docs").status_code == 200
    spec = http.get("/openapi.json").json()
    assert {"/authz", "/authz/{path}", "/score", "/healthz", "/readyz"} <= set(spec["paths"])
