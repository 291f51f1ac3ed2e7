"""The store behind one interface, memory and SQLite alike: decisions from verdicts and operators, the
precedence rules, the allowlist, CIDR look-ups, API keys, pruning and persistence."""

from __future__ import annotations

import sqlite3

import pytest

from detector.policy import Policy, PolicyConfig
from detector.records import Thresholds, Verdict
from detector.store import AllowlistedError, MemoryStore, SqliteStore, go_duration, parse_duration
from detector.store.index import PrefixIndex, target_of

T0 = 1_764_403_200.0


@pytest.fixture(params=["memory", "sqlite"])
def make_store(request, tmp_path):
    stores = []

    def make(**options):
        store = MemoryStore(**options) if request.param == "memory" else SqliteStore(tmp_path / "s.db", **options)
        stores.append(store)
        return store

    yield make
    for s in stores:
        s.close()


def block(client, at, until, **kw):
    return Verdict(client, "block", 0.9, at, until=until, model_version="m1", reasons=("fast",), **kw)


def test_verdicts_start_and_end_model_decisions(make_store):
    store = make_store()
    store.apply([block("203.0.113.9", T0, T0 + 900), Verdict("2001:db8::7", "throttle", 0.7, T0, until=T0 + 300)])
    ban = store.answer("203.0.113.9", T0 + 1).enforced
    assert (ban.origin, ban.type, ban.scope, ban.value, ban.until, ban.reasons) == \
        ("model", "ban", "Ip", "203.0.113.9", T0 + 900, ("fast",))
    assert store.answer("2001:DB8:0::7", T0 + 1).action == "throttle"  # canonical IPv6 form
    assert store.answer("203.0.113.9", T0 + 900).enforced is None  # expires on its own
    store.apply([Verdict("2001:db8::7", "allow", 0.1, T0 + 10)])  # the model's decision ended
    assert store.answer("2001:db8::7", T0 + 11).enforced is None
    lifted = store.decisions(T0 + 11, include_inactive=True, value="2001:db8::7")[0]
    assert lifted.lifted_at == T0 + 10 and go_duration(lifted.ends - (T0 + 11)) == "-1s"


def test_model_decisions_carry_the_policys_escalating_ttls(make_store):
    store = make_store()
    policy = Policy(Thresholds(0.6, 0.8), PolicyConfig(throttle_ttl=100, block_ttl=200, max_ttl=350,
                                                       escalate_after=1e9, hysteresis=0.0, confirm_within=0))
    durations = []
    at = T0
    for _ in range(4):  # offend, lapse, offend again ...
        store.apply(policy.update(at, ["198.51.100.7"], [0.7]))
        d = store.answer("198.51.100.7", at).enforced
        durations.append(d.until - d.created_at)
        at = d.until + 1
        store.apply(policy.update(at, ["198.51.100.7"], [0.1]))
        assert store.answer("198.51.100.7", at).enforced is None
    assert durations == [100, 200, 350, 350]


def test_a_standing_verdict_renews_its_decision_once_half_spent(make_store):
    store = make_store()
    store.apply([block("203.0.113.9", T0, T0 + 100)])
    first = store.answer("203.0.113.9", T0).enforced
    store.apply([block("203.0.113.9", T0 + 10, T0 + 110)])  # extended, but most of it is left
    assert store.answer("203.0.113.9", T0 + 10).enforced == first
    store.apply([block("203.0.113.9", T0 + 60, T0 + 160)])  # half spent: a new decision, the old one lifted
    renewed = store.answer("203.0.113.9", T0 + 60).enforced
    assert renewed.id != first.id and renewed.until == T0 + 160
    assert store.get(first.id).lifted_at == T0 + 60
    store.apply([Verdict("203.0.113.9", "throttle", 0.7, T0 + 61, until=T0 + 400)])  # another type replaces it
    assert store.answer("203.0.113.9", T0 + 61).action == "throttle"
    assert len(store.decisions(T0 + 61)) == 1


def test_manual_decisions_override_the_model(make_store):
    store = make_store()
    store.apply([block("203.0.113.9", T0, T0 + 900)])
    store.add_decision("203.0.113.0/24", "throttle", 60, T0, reason="noisy office")
    assert store.answer("203.0.113.9", T0 + 1).enforced.origin == "manual"
    assert store.answer("203.0.113.9", T0 + 1).action == "throttle"
    allow = store.add_decision("203.0.113.9", "allow", 30, T0 + 2, reason="customer")  # more specific, newer
    assert store.answer("203.0.113.9", T0 + 3).enforced is None
    assert store.answer("203.0.113.10", T0 + 3).action == "throttle"  # the range still applies to the rest
    assert store.lift(allow.id, T0 + 4).lifted_at == T0 + 4
    assert store.answer("203.0.113.9", T0 + 5).action == "throttle"
    assert store.answer("203.0.113.9", T0 + 61).action == "block"  # manual throttle over: the model's ban again
    with pytest.raises(ValueError, match="not an IP"):
        store.add_decision("somebody", "ban", 60, T0)
    with pytest.raises(ValueError, match="type"):
        store.add_decision("192.0.2.1", "captcha", 60, T0)


def test_allowlist_always_wins(make_store):
    store = make_store(allowlist=["192.0.2.0/24"])
    store.apply([block("192.0.2.7", T0, T0 + 900)])  # configured allowlist: no decision at all
    assert store.decisions(T0) == [] and store.answer("192.0.2.7", T0).allowlisted.origin == "config"
    with pytest.raises(AllowlistedError):
        store.add_decision("192.0.2.8", "ban", 60, T0)
    store.add_decision("198.51.100.7", "ban", 600, T0)
    store.add_decision("198.51.100.0/24", "throttle", 600, T0)
    store.apply([block("198.51.100.9", T0, T0 + 900)])
    entry, lifted = store.add_allow("198.51.100.0/25", T0 + 1, reason="partner")
    assert sorted(d.value for d in lifted) == ["198.51.100.7", "198.51.100.9"]  # the /24 is wider: it stays
    assert store.answer("198.51.100.7", T0 + 2).allowlisted == entry
    assert store.answer("198.51.100.200", T0 + 2).action == "throttle"
    with pytest.raises(ValueError, match="already"):
        store.add_allow("198.51.100.0/25", T0 + 3)
    with pytest.raises(ValueError, match="configuration"):
        store.remove_allow("192.0.2.0/24")
    assert store.remove_allow("198.51.100.0/25") and not store.remove_allow("198.51.100.0/25")
    assert [e.value for e in store.allowlist()] == ["192.0.2.0/24"]


def test_shadowed_origins_are_simulated(make_store):
    store = make_store(shadow=["model"])
    store.apply([block("203.0.113.9", T0, T0 + 900)])
    answer = store.answer("203.0.113.9", T0)
    assert answer.enforced is None and answer.shadow.simulated and answer.action == "allow"
    store.add_decision("203.0.113.10", "ban", 60, T0)
    assert store.answer("203.0.113.10", T0).action == "block"
    assert store.enforced(T0).keys() == {d.id for d in store.decisions(T0, origin="manual")}


def test_prefix_index_finds_covering_ranges_only():
    class Item:
        def __init__(self, id, value):
            self.id, self.value = id, value

    index = PrefixIndex()
    items = [Item(1, "10.0.0.0/8"), Item(2, "10.1.0.0/16"), Item(3, "10.1.2.3"), Item(4, "2001:db8::/32"),
             Item(5, "api-key:abc"), Item(6, "10.1.2.3")]
    for i in items:
        index.add(i)
    assert sorted(i.id for i in index.covering("10.1.2.3")) == [1, 2, 3, 6]
    assert sorted(i.id for i in index.covering("10.2.0.1")) == [1]
    assert sorted(i.id for i in index.covering("10.1.0.0/20")) == [1, 2]
    assert [i.id for i in index.covering("2001:db8:1::9")] == [4]
    assert [i.id for i in index.covering("api-key:abc")] == [5]
    assert index.covering("192.0.2.1") == [] and index.covering("::ffff:10.1.2.3") == []
    index.remove(items[0])
    index.remove(items[2])
    assert sorted(i.id for i in index.covering("10.1.2.3")) == [2, 6] and len(index) == 4
    assert target_of("10.1.2.3/32").scope == "Ip" and target_of("10.1.2.3/31").value == "10.1.2.2/31"


def test_keys_are_stored_hashed(make_store, tmp_path):
    store = make_store()
    key, token = store.add_key("edge-1", "bouncer", T0)
    assert store.authenticate(token) == key and key.can("bouncer") and not key.can("admin")
    assert store.authenticate(token + "x") is None and store.authenticate("") is None
    with pytest.raises(ValueError, match="exists"):
        store.add_key("edge-1", "admin", T0)
    with pytest.raises(ValueError, match="role"):
        store.add_key("x", "root", T0)
    if isinstance(store, SqliteStore):
        raw = (tmp_path / "s.db").read_bytes() + (tmp_path / "s.db-wal").read_bytes()
        assert token.encode() not in raw and key.hash.encode() in raw
    assert store.revoke_key("edge-1") and store.authenticate(token) is None and not store.revoke_key("edge-1")


def test_prune_forgets_ended_decisions_no_bouncer_still_needs(make_store):
    store = make_store(keep_deleted=100)
    a = store.add_decision("198.51.100.1", "ban", 10, T0)
    b = store.add_decision("198.51.100.2", "ban", 10, T0)
    store.stream(1, T0, startup=True)  # key 1 holds both
    store.lift(a.id, T0 + 1)
    assert store.prune(T0 + 500) == 0  # key 1 has not heard that they ended
    new, deleted = store.stream(1, T0 + 500)
    assert new == [] and [d.id for d in deleted] == [a.id, b.id]
    assert store.prune(T0 + 500) == 2 and store.decisions(T0 + 500, include_inactive=True) == []


def test_sqlite_keeps_everything_across_a_reopen(tmp_path):
    path = tmp_path / "s.db"
    store = SqliteStore(path)
    store.apply([block("203.0.113.9", T0, T0 + 900)])
    manual = store.add_decision("198.51.100.0/24", "throttle", 3600, T0, reason="scraper farm")
    store.add_allow("192.0.2.1", T0)
    _, token = store.add_key("edge", "bouncer", T0)
    key = store.authenticate(token)
    new, _ = store.stream(key.id, T0 + 1, startup=True)
    del store  # no close: as after kill -9, only what was committed is there
    again = SqliteStore(path)
    assert {(d.value, d.until) for d in again.decisions(T0 + 2)} == {("203.0.113.9", T0 + 900),
                                                                    ("198.51.100.0/24", T0 + 3600)}
    assert again.get(manual.id) == manual
    assert again.answer("192.0.2.1", T0).allowlisted and again.authenticate(token) == key
    again.lift(manual.id, T0 + 3)
    assert again.stream(key.id, T0 + 4) == ([], [again.get(manual.id)])  # the cursor survived too
    # a model decision from before the restart is lifted by the model's next allow for that client
    again.apply([Verdict("203.0.113.9", "allow", 0.1, T0 + 5)])
    assert again.answer("203.0.113.9", T0 + 6).enforced is None
    again.close()


def test_sqlite_picks_up_another_process_writes(tmp_path):
    path = tmp_path / "s.db"
    service_side, cli_side = SqliteStore(path), SqliteStore(path)
    _, token = cli_side.add_key("ops", "admin", T0)
    assert service_side.authenticate(token) is not None  # a miss checks the file once
    cli_side.add_decision("203.0.113.9", "ban", 60, T0)
    assert service_side.answer("203.0.113.9", T0).enforced is None
    assert service_side.sync() and service_side.answer("203.0.113.9", T0).action == "block"
    assert not service_side.sync()
    service_side.close()
    cli_side.close()


def test_a_failed_write_leaves_memory_as_committed(tmp_path):
    store = SqliteStore(tmp_path / "s.db")
    store.add_decision("203.0.113.9", "ban", 60, T0)
    blocker = sqlite3.connect(tmp_path / "s.db", timeout=0)
    blocker.execute("BEGIN EXCLUSIVE")
    store._backend._db.execute("PRAGMA busy_timeout = 50")
    with pytest.raises(sqlite3.OperationalError):
        store.add_decision("203.0.113.10", "ban", 60, T0)
    blocker.rollback()
    assert [d.value for d in store.decisions(T0)] == ["203.0.113.9"]
    assert store.answer("203.0.113.10", T0).enforced is None
    store.close()


def test_durations():
    assert [go_duration(s) for s in (0.2, 60, 3599.5, 86_400, -0.5, -3601)] == \
        ["1s", "1m0s", "1h0m0s", "24h0m0s", "-1s", "-1h0m1s"]
    assert parse_duration("1h30m15s") == 5415 and parse_duration("500ms") == 0.5
    for bad in ("", "4x", "h", "-5", "0", "1h-2m", "nan"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_a_model_verdict_on_a_prefix_applies_to_its_addresses_unless_one_is_allowlisted(make_store):
    store = make_store(allowlist=["192.0.2.9"])
    store.apply([block("203.0.113.0/24", T0, T0 + 900), block("192.0.2.0/24", T0, T0 + 900)])
    assert [(d.scope, d.value) for d in store.decisions(T0)] == [("Range", "203.0.113.0/24")]
    assert store.answer("203.0.113.77", T0 + 1).action == "block"
    assert store.answer("192.0.2.10", T0 + 1).action == "allow"  # its /24 holds an allowlisted address
