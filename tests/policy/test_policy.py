"""Policy: thresholds, TTLs, hysteresis, escalation, allowlist and shadow mode, on event time."""

from __future__ import annotations

import pytest

from detector.ingest.identity import parse_networks
from detector.policy import ClientState, Policy, PolicyConfig, decide
from detector.records import Thresholds

THR = Thresholds(throttle=0.6, block=0.8)
CFG = PolicyConfig(throttle_ttl=100, block_ttl=300, max_ttl=1000, escalate_after=30, hysteresis=0.05,
                   forget_after=3600, confirm_within=0)  # single-tick rules; confirmation is tested apart


def test_below_threshold_is_nothing_to_remember():
    assert decide(None, 0.59, 10.0, THR, CFG) is None


def test_throttle_and_block_thresholds():
    assert decide(None, 0.6, 10.0, THR, CFG) == ClientState("throttle", 10.0, 110.0, 1, 0.6)
    assert decide(None, 0.85, 10.0, THR, CFG) == ClientState("block", 10.0, 310.0, 1, 0.85)


def test_hysteresis_extends_while_near_the_threshold_and_then_lapses():
    s = decide(None, 0.7, 0.0, THR, CFG)  # throttle until 100
    s = decide(s, 0.56, 20.0, THR, CFG)  # within hysteresis (0.6 - 0.05): extended to 120
    assert (s.action, s.until) == ("throttle", 120.0)
    s2 = decide(s, 0.3, 50.0, THR, CFG)  # calm: the verdict holds its TTL, no extension
    assert (s2.action, s2.until) == ("throttle", 120.0)
    assert not s2.active(120.0)


def test_still_offending_after_escalate_after_is_blocked():
    s = decide(None, 0.72, 0.0, THR, CFG)
    assert decide(s, 0.72, 29.0, THR, CFG).action == "throttle"
    # halfway from throttle (0.6) to block (0.8) is 0.7: 0.72 escalates, 0.65 (hovering) does not
    assert decide(s, 0.65, 30.0, THR, CFG).action == "throttle"
    b = decide(s, 0.72, 30.0, THR, CFG)
    assert (b.action, b.since, b.until, b.offences) == ("block", 30.0, 330.0, 1)


def test_repeat_offenders_get_doubled_ttls_capped():
    s = decide(None, 0.7, 0.0, THR, CFG)  # offence 1: 100 s
    s = decide(s, 0.7, 150.0, THR, CFG)  # lapsed at 100; offends again: 200 s
    assert (s.offences, s.until) == (2, 350.0)
    s = decide(s, 0.7, 400.0, THR, CFG)  # 400 s
    s = decide(s, 0.7, 900.0, THR, CFG)  # 800 s
    s = decide(s, 0.7, 2000.0, THR, CFG)  # 1600 s, capped at 1000
    assert (s.offences, s.until - s.since) == (5, 1000.0)


def test_offences_are_forgotten_after_good_behaviour():
    s = decide(None, 0.7, 0.0, THR, CFG)  # until 100
    s = decide(s, 0.7, 100.0 + 3601.0, THR, CFG)
    assert (s.offences, s.until - s.since) == (1, 100.0)


def test_policy_emits_changes_and_expiries_in_event_time():
    p = Policy(THR, CFG, model_version="m1")
    assert [(v.client, v.action) for v in p.update(0.0, ["a", "b"], [0.1, 0.7])] == [("b", "throttle")]
    changes = p.update(2.0, ["b"], [0.9])
    assert [(v.client, v.action, v.at, v.until) for v in changes] == [("b", "block", 2.0, 302.0)]
    assert p.current("b", 100.0).action == "block"
    expired = p.expire(400.0)
    assert [(v.client, v.action, v.at) for v in expired] == [("b", "allow", 302.0)]
    assert p.current("b", 400.0) is None


def test_first_verdict_carries_reasons_and_version():
    p = Policy(THR, CFG, model_version="m1")
    [v] = p.update(5.0, ["a", "b"], [0.1, 0.7], lambda i: ("re-polls 0.03 s after each response",))
    assert (v.client, v.action, v.reasons, v.model_version, v.until) == (
        "b", "throttle", ("re-polls 0.03 s after each response",), "m1", 105.0)
    assert v.to_json()["verdict"] == "throttle"


def test_allowlist_always_wins():
    p = Policy(THR, PolicyConfig(allowlist=parse_networks(["198.51.100.0/24"]), confirm_within=0))
    assert p.update(1.0, ["198.51.100.7", "203.0.113.1"], [0.99, 0.99]) != []
    assert p.current("198.51.100.7", 2.0) is None
    assert p.current("203.0.113.1", 2.0).action == "block"


def test_shadow_mode_marks_verdicts_simulated():
    p = Policy(THR, PolicyConfig(shadow=True, confirm_within=0))
    [v] = p.update(1.0, ["a"], [0.7])
    assert v.simulated and v.action == "throttle"
    assert v.to_json()["simulated"] is True


@pytest.mark.parametrize("score", [0.0, 0.59])
def test_quiet_clients_leave_no_state(score):
    p = Policy(THR, CFG)
    p.update(1.0, ["a"], [score])
    assert p.states == {}


def test_nobody_is_blamed_while_everyone_is_failing():
    cfg = PolicyConfig(throttle_ttl=100, incident_share=0.3, incident_grace=60, confirm_within=0)
    p = Policy(THR, cfg)
    assert p.update(0.0, ["a"], [0.7], failing_share=0.05) != []  # an ordinary moment: a is throttled
    # an outage: 80 % of clients fail; b and c look anomalous, and a would escalate, but nobody is blamed
    assert p.update(40.0, ["a", "b", "c"], [0.9, 0.9, 0.7], failing_share=0.8) == []
    assert p.current("a", 41.0).action == "throttle" and p.current("b", 41.0) is None
    # the surge back, within the grace: still nobody
    assert p.update(90.0, ["b"], [0.9], failing_share=0.0) == []
    # after the grace, the same score counts again
    [v] = p.update(101.0, ["b"], [0.9], failing_share=0.0)
    assert (v.client, v.action) == ("b", "block")


def test_during_an_incident_only_scores_beyond_normal_incident_behaviour_throttle():
    cfg = PolicyConfig(throttle_ttl=100, incident_share=0.3, incident_grace=60, confirm_within=0)
    p = Policy(Thresholds(throttle=0.6, block=0.8, incident=0.85), cfg)
    # an outage: b retries like everyone (0.82 < 0.85), c is far beyond (0.95): throttled, not blocked
    changes = p.update(40.0, ["b", "c"], [0.82, 0.95], failing_share=0.8)
    assert [(v.client, v.action) for v in changes] == [("c", "throttle")]
    assert p.update(70.0, ["c"], [0.97], failing_share=0.0) == []  # in the grace: no escalation to block
    # a prefix scored whole is judged like any client then (it counts per address and agent): throttled
    [v] = p.update(72.0, ["203.0.113.0/24"], [0.99], failing_share=0.0)
    assert (v.client, v.action) == ("203.0.113.0/24", "throttle")


def test_one_score_over_the_single_tick_threshold_throttles_at_once_and_blocking_waits_for_a_second():
    cfg = PolicyConfig(throttle_ttl=100, block_ttl=300, confirm_within=30, incident_grace=60)
    p = Policy(Thresholds(throttle=0.6, block=0.8, single=0.8), cfg)
    # "burst" was calm (0.3), then one tick at 0.85 (>= 0.8): throttled unconfirmed, with that score;
    # "near" sat just under the throttle threshold (0.59, within the hysteresis) before its 0.85: the
    # same; "high" at 0.75 (over throttle, under 0.8) on one tick waits for its confirmation
    assert p.update(0.0, ["burst", "near", "high"], [0.3, 0.59, 0.3]) == []
    changes = p.update(1.0, ["burst", "near", "high"], [0.85, 0.85, 0.75])
    assert [(v.client, v.action, v.score) for v in changes] == [("burst", "throttle", 0.85), ("near", "throttle", 0.85)]
    # its next tick, 25 s later, confirms 0.85 (lower of 0.9 and 0.85): blocked
    changes = p.update(26.0, ["burst"], [0.9])
    assert [(v.client, v.action, v.score) for v in changes] == [("burst", "block", 0.85)]
    # during an incident one tick is never enough (training measured single ticks outside incidents only)
    assert p.update(30.0, ["calm"], [0.3], failing_share=0.8) == []
    assert p.update(31.0, ["calm"], [0.95], failing_share=0.8) == []
    # a model whose training clients reached 0.9 on one tick: 0.85 no longer acts alone
    q = Policy(Thresholds(throttle=0.6, block=0.8, single=0.9), cfg)
    assert q.update(1.0, ["burst"], [0.85]) == [] and q.update(2.0, ["spike"], [0.92]) != []
    # an artifact without a single-tick threshold confirms every verdict
    assert Policy(THR, cfg).update(1.0, ["burst"], [0.99]) == []


def test_a_verdict_needs_two_scores_over_the_threshold_within_confirm_within():
    cfg = PolicyConfig(throttle_ttl=100, block_ttl=300, confirm_within=30)
    p = Policy(THR, cfg)
    assert p.update(0.0, ["odd", "loop"], [0.7, 0.9]) == []  # one tick: nothing yet
    assert p.update(40.0, ["odd"], [0.7]) == []  # its last high score is 40 s old: not confirmed
    changes = p.update(2.0, ["loop"], [0.95])  # confirmed: judged on the lower score, 0.9 -> block
    assert [(v.client, v.action, v.score) for v in changes] == [("loop", "block", 0.9)]
    changes = p.update(60.0, ["odd"], [0.65])  # 20 s after 0.7: min 0.65 -> throttle
    assert [(v.client, v.action, v.score) for v in changes] == [("odd", "throttle", 0.65)]
    assert p.update(62.0, ["calm"], [0.2]) == [] and "calm" not in p._recent  # only scores near the threshold kept
    assert p.forget(200.0) == 0 and p._recent == {}  # lapsed remembered scores are dropped


def test_a_shared_address_is_throttled_at_most():
    cfg = PolicyConfig(throttle_ttl=100, block_ttl=300, escalate_after=30, confirm_within=0, shared_agents=8)
    p = Policy(THR, cfg)
    changes = p.update(0.0, ["office", "flood"], [0.95, 0.95], agents=[30, 1])
    assert [(v.client, v.action) for v in changes] == [("office", "throttle"), ("flood", "block")]
    assert p.update(40.0, ["office"], [0.95], agents=[30]) == []  # no escalation either
    assert [(v.client, v.action) for v in p.update(41.0, ["office"], [0.95], agents=[7])] == [("office", "block")]


def test_a_prefix_holding_an_allowlisted_address_is_not_judged_whole():
    p = Policy(THR, PolicyConfig(allowlist=parse_networks(["198.51.100.7"]), confirm_within=0))
    changes = p.update(0.0, ["198.51.100.0/24", "203.0.113.0/24"], [0.95, 0.95])
    assert [v.client for v in changes] == ["203.0.113.0/24"]
