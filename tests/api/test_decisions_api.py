"""Decisions over a real socket: the CrowdSec-compatible bouncer endpoints, the admin API, keys,
CIDRs, expiry, the allowlist, shadow mode (global and per origin) and keyed /authz."""

from __future__ import annotations

import re

import pytest

from detector.records import Verdict

from .conftest import key
from .test_http import ATTACKER, T0, _feed

FORBIDDEN = {"message": "access forbidden"}
LAPI_KEYS = {"id", "origin", "type", "scope", "value", "duration", "until", "scenario", "simulated"}


def test_missing_wrong_and_weak_keys_are_forbidden(make_server):
    service, http, clock = make_server(now=T0)
    bouncer, admin = key(service, "bouncer"), key(service, "admin")
    for path in ("/v1/decisions", "/v1/decisions/stream", "/v1/admin/decisions", "/v1/admin/allowlist"):
        for headers in ({}, {"X-Api-Key": "dtk_wrong"}, {"X-Api-Key": ""}):
            r = http.get(path, headers=headers)
            assert (r.status_code, r.json()) == (403, FORBIDDEN), (path, headers)
    assert http.get("/v1/admin/decisions", headers=bouncer).status_code == 403  # bouncers only read
    assert http.post("/v1/admin/decisions", json={"value": "192.0.2.1"}, headers=bouncer).status_code == 403
    assert http.post("/v1/admin/model/reload", headers=bouncer).status_code == 403
    assert http.get("/v1/decisions", headers=admin).status_code == 200  # admins may read too
    revoked = key(service, "bouncer", "gone")
    service.store.revoke_key("gone")
    assert http.get("/v1/decisions", headers=revoked).status_code == 403


def test_manual_ban_on_an_ip_in_lapi_shape(make_server):
    service, http, clock = make_server(now=T0)
    admin, bouncer = key(service, "admin"), key(service, "bouncer")
    r = http.post("/v1/admin/decisions", headers=admin,
                  json={"value": "203.0.113.50", "type": "ban", "duration": "4h", "reason": "credential stuffing"})
    assert r.status_code == 201
    made = r.json()
    assert (made["origin"], made["scope"], made["scenario"], made["duration"]) == \
        ("manual", "Ip", "credential stuffing", "4h0m0s")
    clock.now = T0 + 2
    lapi = http.get("/v1/decisions", params={"ip": "203.0.113.50"}, headers=bouncer).json()
    assert len(lapi) == 1 and set(lapi[0]) == LAPI_KEYS
    assert lapi[0] | {"id": 0} == {"id": 0, "origin": "manual", "type": "ban", "scope": "Ip", "value": "203.0.113.50",
                                   "duration": "3h59m58s", "until": "2025-11-29T12:00:00Z",
                                   "scenario": "credential stuffing", "simulated": False}
    assert http.get("/v1/decisions", params={"ip": "203.0.113.51"}, headers=bouncer).content == b"null"
    a = http.get("/authz", headers={"X-Real-IP": "203.0.113.50"})
    assert (a.status_code, a.headers["X-Authz-Decision"], a.headers["X-Accel-Expires"]) == (403, "block", "14398")
    assert http.get("/authz", headers={"X-Real-IP": "203.0.113.51"}).status_code == 200  # unknown: allow
    s = http.get("/score", params={"client": "203.0.113.50"}).json()
    assert (s["verdict"], s["known"], s["reasons"], s["decisions"][0]["id"]) == \
        ("block", False, ["credential stuffing"], made["id"])
    # bad input: 400 / 422, never 500
    bad = http.post("/v1/admin/decisions", headers=admin, json={"value": "not-an-ip"})
    assert bad.status_code == 400 and "not an IP" in bad.json()["message"]
    assert http.post("/v1/admin/decisions", headers=admin, json={"value": "192.0.2.1", "duration": "4x"}).status_code == 400
    assert http.post("/v1/admin/decisions", headers=admin, json={"value": "192.0.2.1", "duration": "9999h"}).status_code == 400
    assert http.post("/v1/admin/decisions", headers=admin, json={"value": "192.0.2.1", "type": "captcha"}).status_code == 422


def test_cidr_throttle_matches_addresses_inside(make_server):
    service, http, clock = make_server(now=T0)
    admin, bouncer = key(service, "admin"), key(service, "bouncer")
    r = http.post("/v1/admin/decisions", headers=admin,
                  json={"value": "2001:db8:0:1::/64", "type": "throttle", "duration": 120})
    assert r.status_code == 201 and r.json()["scope"] == "Range"
    http.post("/v1/admin/decisions", headers=admin, json={"value": "198.51.100.9/24", "type": "throttle", "duration": 60})
    t = http.get("/authz/v1/poll", headers={"X-Real-IP": "198.51.100.77"})
    assert (t.status_code, t.headers["Retry-After"], t.headers["X-Authz-Decision"]) == (429, "60", "throttle")
    n = http.get("/authz", headers={"X-Real-IP": "198.51.100.77", "X-Authz-Compat": "nginx"})
    assert (n.status_code, n.headers["X-Authz-Retry-After"]) == (403, "60")
    assert http.get("/authz", headers={"X-Real-IP": "2001:db8:0:1::abcd"}).status_code == 429
    assert http.get("/authz", headers={"X-Real-IP": "2001:db8:0:2::1"}).status_code == 200
    assert http.get("/authz", headers={"X-Real-IP": "198.51.101.1"}).status_code == 200
    found = http.get("/v1/decisions", params={"ip": "198.51.100.77"}, headers=bouncer).json()
    assert [(d["scope"], d["value"]) for d in found] == [("Range", "198.51.100.0/24")]
    assert len(http.get("/v1/decisions", params={"scope": "range"}, headers=bouncer).json()) == 2


def test_stream_cursor_per_key_expiry_and_deletion(make_server):
    service, http, clock = make_server(now=T0)
    admin = key(service, "admin")
    b1, b2 = key(service, "bouncer", "edge-1"), key(service, "bouncer", "edge-2")
    ids = [http.post("/v1/admin/decisions", headers=admin, json={"value": v, "duration": ttl}).json()["id"]
           for v, ttl in (("192.0.2.10", 30), ("192.0.2.11", 600), ("192.0.2.0/28", 600))]
    first = http.get("/v1/decisions/stream", params={"startup": "true"}, headers=b1).json()
    assert sorted(d["id"] for d in first["new"]) == ids and first["deleted"] is None
    assert http.get("/v1/decisions/stream", headers=b1).json() == {"new": None, "deleted": None}
    clock.now = T0 + 40  # the first one expired
    assert http.delete(f"/v1/admin/decisions/{ids[1]}", headers=admin).json() == {"nbDeleted": "1"}
    assert http.delete(f"/v1/admin/decisions/{ids[1]}", headers=admin).status_code == 404
    newer = http.post("/v1/admin/decisions", headers=admin, json={"value": "192.0.2.12", "type": "throttle"}).json()
    step = http.get("/v1/decisions/stream", params={"startup": "false"}, headers=b1).json()
    assert [d["id"] for d in step["new"]] == [newer["id"]]
    assert sorted(d["id"] for d in step["deleted"]) == ids[:2]
    assert all(re.fullmatch(r"-(\d+m)?\d+s", d["duration"]) for d in step["deleted"])
    assert http.get("/v1/decisions/stream", headers=b1).json() == {"new": None, "deleted": None}  # once
    # another key has its own cursor: its first pull is a startup
    other = http.get("/v1/decisions/stream", headers=b2).json()
    assert sorted(d["id"] for d in other["new"]) == [ids[2], newer["id"]] and other["deleted"] is None
    gone = http.delete("/v1/admin/decisions", params={"value": "192.0.2.0/28"}, headers=admin).json()
    assert gone == {"nbDeleted": "1"}
    assert [d["value"] for d in http.get("/v1/decisions/stream", headers=b2).json()["deleted"]] == ["192.0.2.0/28"]
    assert http.get("/v1/decisions/stream", params={"scopes": "range"}, headers=b1).json()["new"] is None


def test_model_decisions_reach_the_stream_with_the_policys_ttl(make_server):
    service, http, clock = make_server(now=T0 + 600)
    bouncer, admin = key(service, "bouncer"), key(service, "admin")
    _feed(service)
    new = http.get("/v1/decisions/stream", params={"startup": "true", "origins": "model"}, headers=bouncer).json()["new"]
    mine = [d for d in new if d["value"] == ATTACKER]
    assert len(mine) == 1 and mine[0]["origin"] == "model" and mine[0]["scenario"] == "detector/anomaly"
    listed = http.get("/v1/admin/decisions", params={"value": ATTACKER, "all": "true"}, headers=admin).json()
    # one decision is active; a loop this loud may have been throttled on its first tick (one score past
    # every training client's single ticks) and banned on the next: a decision it replaced was lifted then
    (active,) = [d for d in listed if d["active"]]
    ttl = service.settings.policy
    assert active["until_epoch"] - active["created_at"] in (ttl.throttle_ttl, ttl.block_ttl)
    assert all(d["lifted_at"] == active["created_at"] for d in listed if not d["active"])
    assert active["reasons"] and active["score"] >= service.thresholds.throttle and active["model_version"] == "test-1"


def test_allowlist_beats_bans_and_manual_beats_model(make_server):
    service, http, clock = make_server(now=T0)
    admin, bouncer = key(service, "admin"), key(service, "bouncer")
    service.store.apply([Verdict("203.0.113.7", "block", 0.9, T0, until=T0 + 900),
                         Verdict("203.0.113.8", "block", 0.9, T0, until=T0 + 900)])
    assert http.get("/authz", headers={"X-Real-IP": "203.0.113.7"}).status_code == 403
    http.get("/v1/decisions/stream", params={"startup": "true"}, headers=bouncer)
    # an operator's allow beats the model's ban, for /authz and for bouncers
    r = http.post("/v1/admin/decisions", headers=admin, json={"value": "203.0.113.8", "type": "allow", "duration": "1h"})
    assert r.status_code == 201
    assert http.get("/authz", headers={"X-Real-IP": "203.0.113.8"}).status_code == 200
    assert [d["value"] for d in http.get("/v1/decisions/stream", headers=bouncer).json()["deleted"]] == ["203.0.113.8"]
    # the allowlist beats everything and lifts what it covers
    added = http.post("/v1/admin/allowlist", headers=admin, json={"value": "203.0.113.0/29", "reason": "partner"})
    assert added.status_code == 201 and len(added.json()["lifted"]) == 1
    a = http.get("/authz", headers={"X-Real-IP": "203.0.113.7"})
    assert (a.status_code, a.headers["X-Authz-Decision"]) == (200, "allow")
    assert http.get("/score", params={"client": "203.0.113.7"}).json()["allowlisted"] is True
    refused = http.post("/v1/admin/decisions", headers=admin, json={"value": "203.0.113.6", "type": "ban"})
    assert refused.status_code == 409 and "allowlisted" in refused.json()["message"]
    assert [d["value"] for d in http.get("/v1/decisions/stream", headers=bouncer).json()["deleted"]] == ["203.0.113.7"]
    listed = http.get("/v1/admin/allowlist", headers=admin).json()
    assert [(e["value"], e["reason"]) for e in listed] == [("203.0.113.0/29", "partner")]
    assert http.delete("/v1/admin/allowlist", params={"value": "203.0.113.0/29"}, headers=admin).json() == \
        {"nbDeleted": "1"}
    assert http.delete("/v1/admin/allowlist", params={"value": "203.0.113.0/29"}, headers=admin).status_code == 404
    assert http.post("/v1/admin/allowlist", headers=admin, json={"value": "nope"}).status_code == 400


def test_configured_allowlist_beats_a_manual_ban(make_server):
    service, http, clock = make_server(now=T0, policy={"allowlist": ["192.0.2.0/24"]})
    admin = key(service, "admin")
    assert http.post("/v1/admin/decisions", headers=admin, json={"value": "192.0.2.9"}).status_code == 409
    service.store.apply([Verdict("192.0.2.9", "block", 0.9, T0, until=T0 + 60)])
    assert http.get("/authz", headers={"X-Real-IP": "192.0.2.9"}).status_code == 200
    assert http.delete("/v1/admin/allowlist", params={"value": "192.0.2.0/24"}, headers=admin).status_code == 400


def test_global_shadow_reports_but_allows(make_server):
    service, http, clock = make_server(now=T0, policy={"shadow": True})
    admin, bouncer = key(service, "admin"), key(service, "bouncer")
    made = http.post("/v1/admin/decisions", headers=admin, json={"value": "203.0.113.60"}).json()
    assert made["simulated"] is True
    a = http.get("/authz", headers={"X-Real-IP": "203.0.113.60"})
    assert (a.status_code, a.headers["X-Authz-Decision"], a.headers["X-Authz-Shadow"]) == (200, "allow", "block")
    s = http.get("/score", params={"client": "203.0.113.60"}).json()
    assert (s["verdict"], s["simulated"], s["decisions"][0]["simulated"]) == ("block", True, True)
    assert http.get("/v1/decisions/stream", params={"startup": "true"}, headers=bouncer).json()["new"] is None
    assert http.get("/v1/decisions", params={"ip": "203.0.113.60"}, headers=bouncer).json() is None
    assert [d["simulated"] for d in http.get("/v1/admin/decisions", headers=admin).json()] == [True]


def test_shadow_per_origin_model_simulated_manual_enforced(make_server):
    service, http, clock = make_server(now=T0 + 600, decisions={"shadow": ["model"]})
    admin = key(service, "admin")
    _feed(service)
    a = http.get("/authz", headers={"X-Real-IP": ATTACKER})
    assert a.status_code == 200 and a.headers["X-Authz-Shadow"] in ("throttle", "block")
    assert http.get("/score", params={"client": ATTACKER}).json()["simulated"] is True
    http.post("/v1/admin/decisions", headers=admin, json={"value": ATTACKER, "type": "throttle", "duration": "10m"})
    t = http.get("/authz", headers={"X-Real-IP": ATTACKER})
    assert (t.status_code, t.headers["Retry-After"]) == (429, "600")
    kinds = {(d["origin"], d["simulated"]) for d in http.get("/v1/admin/decisions", headers=admin).json()}
    assert ("manual", False) in kinds and ("model", True) in kinds and ("model", False) not in kinds


def test_authz_and_score_can_require_a_key(make_server):
    service, http, clock = make_server(now=T0, api={"require_key": True})
    bouncer = key(service, "bouncer")
    r = http.get("/authz", headers={"X-Real-IP": "192.0.2.1"})
    assert (r.status_code, r.json()) == (403, FORBIDDEN)
    assert http.get("/authz", headers={"X-Real-IP": "192.0.2.1", **bouncer}).status_code == 200
    assert http.get("/score", params={"client": "x"}).status_code == 403
    assert http.get("/score", params={"client": "x"}, headers=bouncer).status_code == 200
    assert http.get("/v1/model").status_code == 403
    assert http.get("/healthz").status_code == 200


@pytest.mark.parametrize("store_path", [":memory:"])
def test_memory_store_serves_the_same_api(make_server, store_path):
    service, http, clock = make_server(now=T0, store={"path": store_path})
    admin = key(service, "admin")
    assert http.post("/v1/admin/decisions", headers=admin, json={"value": "192.0.2.1"}).status_code == 201
    assert http.get("/authz", headers={"X-Real-IP": "192.0.2.1"}).status_code == 403
    assert http.get("/readyz").json() == {"status": "ready"}


def test_readyz_reports_an_unreachable_store(make_server):
    service, http, clock = make_server(now=T0)
    assert http.get("/readyz").json() == {"status": "ready"}
    service.store._backend._db.close()
    r = http.get("/readyz")
    assert (r.status_code, r.json()) == (503, {"status": "store unreachable"})
    assert http.get("/healthz").status_code == 200
