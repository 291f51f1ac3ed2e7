"""The bouncer stream, property-based: a consumer that applies ``deleted`` then ``new`` after every pull
holds exactly the decisions to enforce, whatever happened in between (operators' adds and deletions,
the model's verdicts, expiries as the clock moves), for each of several bouncer keys; and a consumer
that keys its cache by value (as real bouncers do) holds exactly the enforced values."""

from __future__ import annotations

import ipaddress

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector.records import Verdict
from detector.store import MemoryStore

T0 = 1_764_403_200.0
VALUES = ["198.51.100.1", "198.51.100.2", "198.51.100.0/24", "2001:db8::1"]
IPS = [v for v in VALUES if "/" not in v]

adds = st.tuples(st.just("add"), st.sampled_from(VALUES), st.sampled_from(["ban", "throttle", "allow"]),
                 st.integers(1, 600))
verdicts = st.tuples(st.just("verdict"), st.sampled_from(IPS), st.sampled_from(["block", "throttle", "allow"]),
                     st.integers(1, 600))
deletes = st.tuples(st.just("delete"), st.integers(0, 30))
deletes_by_value = st.tuples(st.just("delete_value"), st.sampled_from(VALUES))
advances = st.tuples(st.just("advance"), st.integers(1, 400))
pulls = st.tuples(st.just("pull"), st.integers(0, 2), st.booleans())
operations = st.lists(st.one_of(adds, verdicts, deletes, deletes_by_value, advances, pulls), max_size=60)


def _covers(outer: str, inner: str) -> bool:
    a, b = ipaddress.ip_network(outer), ipaddress.ip_network(inner)
    return a.version == b.version and b.subnet_of(a)


def expected(store: MemoryStore, now: float) -> dict[int, str]:
    """The enforced decisions by the documented rule, from the active ones: per value the winner (an
    operator's newest, else the model's most severe then longest), not an allow, and a model decision
    only where no operator's decision covers it."""
    active = [d for d in store.decisions(now) if not d.simulated]
    out = {}
    for value in {d.value for d in active}:
        same = [d for d in active if d.value == value]
        manual = [d for d in same if d.origin == "manual"]
        if manual:
            w = max(manual, key=lambda d: (d.created_at, d.id))
        else:
            w = max(same, key=lambda d: ({"throttle": 1, "ban": 2}[d.type], d.until, d.id))
        if w.type == "allow":
            continue
        if w.origin == "model" and any(d.origin == "manual" and _covers(d.value, value) for d in active):
            continue
        out[w.id] = w.value
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations)
def test_stream_consumers_end_with_the_enforced_set(ops):
    store = MemoryStore()
    now = T0
    by_id: list[dict[int, str]] = [{}, {}, {}]  # what each consumer holds: decision id -> value
    by_value: list[dict[str, int]] = [{}, {}, {}]  # a value-keyed bouncer cache
    pulled = [False, False, False]
    for op in ops + [("pull", k, False) for k in range(3)]:
        kind = op[0]
        if kind == "add":
            _, value, type_, ttl = op
            store.add_decision(value, type_, ttl, now)
        elif kind == "verdict":
            _, client, action, ttl = op
            store.apply([Verdict(client, action, 0.9, now, until=None if action == "allow" else now + ttl)])
        elif kind == "delete":
            store.lift(op[1], now)
        elif kind == "delete_value":
            store.lift_value(op[1], now)
        elif kind == "advance":
            now += op[1]
            if op[1] % 3 == 0:
                store.prune(now)
        else:
            _, k, startup = op
            new, deleted = store.stream(k + 1, now, startup=startup or not pulled[k])
            pulled[k] = True
            if startup:
                by_id[k].clear()
                by_value[k].clear()
            for d in deleted:
                by_id[k].pop(d.id, None)
                by_value[k].pop(d.value, None)
            for d in new:
                by_id[k][d.id] = d.value
                by_value[k][d.value] = d.id
            want = expected(store, now)
            assert by_id[k] == want
            assert set(by_value[k]) == set(want.values())


def test_deleted_once_per_key_and_negative_durations():
    from detector.api.schemas import decision_out

    store = MemoryStore()
    d = store.add_decision("198.51.100.1", "ban", 60, T0)
    for key in (1, 2):
        assert store.stream(key, T0, startup=True) == ([d], [])
    store.lift(d.id, T0 + 5)
    new, deleted = store.stream(1, T0 + 10)
    assert new == [] and [x.id for x in deleted] == [d.id]
    assert decision_out(deleted[0], T0 + 10)["duration"] == "-5s"
    assert store.stream(1, T0 + 20) == ([], [])  # once only
    assert [x.id for x in store.stream(2, T0 + 20)[1]] == [d.id]  # ... per key
