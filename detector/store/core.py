"""The store: decisions, the allowlist, API keys, bouncer cursors and each client's latest observation.

One class, ``Store``, serves every backend (``MemoryStore``: nothing kept; ``SqliteStore``: a file).
Reads are answered from memory, in a few dictionary look-ups (``PrefixIndex``), never from the
backend: ``/authz`` stays O(1). Writes happen under one lock, go to the backend and are committed
before the method returns; if the backend fails, memory is reloaded from it, so memory never keeps
what was not committed for longer than the failing call.

Time is always passed in (event time from the pipeline, wall time from the API and CLI): the store
never reads a clock.

Decisions come from two places:

* the pipeline's verdict changes (``apply``): a throttle / block starts a ``model`` decision for the
  client with the verdict's TTL (the policy's escalated TTL for repeat offenders); an ``allow`` lifts
  it. While the policy keeps extending a verdict, the service passes the extension in and the store
  renews the decision once it is half spent, as a new decision, so bouncers that expire decisions on
  their own ``duration`` learn of it.
* operators (``add_decision``, ``lift``, ``add_allow``, ...).

The bouncer stream (``stream``) keeps, per API key, the set of decision ids that key was sent; each
pull answers the difference with what is enforced now, so expired and lifted decisions are reported
as deleted exactly once per key, and a consumer that applies ``deleted`` then ``new`` holds exactly
the enforced set.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Iterator, TypeVar

import numpy as np

from detector.records import Verdict
from detector.store.backend import Backend, MemoryBackend
from detector.store.decisions import (DECISION_TYPES, TYPE_OF_ACTION, AllowEntry, Answer, Decision, resolve,
                                      winner)
from detector.store.index import PrefixIndex, network_target, target_of
from detector.store.keys import ROLES, ApiKey, hash_token, new_token

MODEL_SCENARIO = "detector/anomaly"
_R = TypeVar("_R")
_NO_ANSWER = Answer()


class AllowlistedError(ValueError):
    """A ban or throttle was asked for a value the allowlist covers."""


@dataclass(frozen=True)
class Observation:
    """A client's most recent score and raw feature values, at event time ``at``.

    ``names`` is the tick's shared tuple of feature names, so recording a tick builds one small
    tuple of values per client, not one pair per feature.
    """

    at: float
    score: float
    values: tuple[float, ...]
    names: tuple[str, ...]

    @property
    def features(self) -> Iterator[tuple[str, float]]:
        """(name, raw value) pairs."""
        return zip(self.names, self.values)


class Store:
    """Decisions and the rest in memory, written through ``backend`` (see the module docstring).

    ``shadow``: origins (``model``, ``manual``) whose new decisions are simulated. ``allowlist``: IPs and
    CIDRs from the configuration (never stored; always win). ``keep_deleted``: seconds an expired or
    lifted decision is kept once no bouncer still has to hear of it. ``default_ttl``: TTL of a verdict
    that carries no ``until``.
    """

    def __init__(self, backend: Backend | None = None, *, shadow: Iterable[str] = (), allowlist: Iterable[str] = (),
                 keep_deleted: float = 7 * 86_400.0, default_ttl: float = 300.0) -> None:
        self._backend = backend if backend is not None else MemoryBackend()
        self.shadow = frozenset(shadow)
        self.keep_deleted = keep_deleted
        self.default_ttl = default_ttl
        self._config_allow = tuple(
            AllowEntry(-(i + 1), t.value, t.scope, "policy.allowlist", 0.0, "config")
            for i, t in enumerate(network_target(v) for v in allowlist))
        self._lock = threading.RLock()
        self._observations: dict[str, Observation] = {}
        self._load()

    # -- loading -----------------------------------------------------------------------------------
    def _load(self) -> None:
        snap = self._backend.load()
        decisions = {d.id: d for d in snap.decisions}
        index: PrefixIndex[Decision] = PrefixIndex()
        live: dict[int, Decision] = {}
        model: dict[str, int] = {}
        for d in decisions.values():
            if d.lifted_at is None:
                index.add(d)
                live[d.id] = d
                if d.origin == "model" and (d.value not in model or decisions[model[d.value]].created_at <= d.created_at):
                    model[d.value] = d.id
        allow: PrefixIndex[AllowEntry] = PrefixIndex()
        for entry in self._config_allow + tuple(snap.allowlist):
            allow.add(entry)
        with self._lock:
            self._decisions, self._index, self._live, self._model = decisions, index, live, model
            self._allow, self._allow_entries = allow, {e.id: e for e in snap.allowlist}
            self._keys = {k.hash: k for k in snap.keys}
            self._delivered = {k: set(ids) for k, ids in snap.cursors.items()}

    def sync(self) -> bool:
        """Reload if another process wrote to the backend (e.g. the CLI with ``--store``); True if it did."""
        with self._lock:
            if not self._backend.changed():
                return False
            self._load()
            return True

    def _tx(self, fn: Callable[[], _R]) -> _R:
        """Run ``fn`` (memory + backend writes) under the lock and commit; on failure, reload. Writers check
        their input before changing anything, so a refused write leaves memory as it was."""
        with self._lock:
            try:
                result = fn()
                self._backend.commit()
            except BaseException:
                self._backend.rollback()
                if self._backend.persistent:  # memory may hold what was not committed: take the backend's word
                    self._load()
                raise
            return result

    def _insert(self, d: Decision) -> Decision:
        d = replace(d, id=self._backend.insert_decision(d))
        self._decisions[d.id] = d
        self._live[d.id] = d
        self._index.add(d)
        if d.origin == "model":
            self._model[d.value] = d.id
        return d

    def _lift(self, d: Decision, at: float) -> Decision:
        self._backend.lift_decision(d.id, at)
        lifted = replace(d, lifted_at=at)
        self._decisions[d.id] = lifted
        self._live.pop(d.id, None)
        self._index.remove(d)
        if self._model.get(d.value) == d.id:
            del self._model[d.value]
        return lifted

    # -- the pipeline's side -------------------------------------------------------------------------
    def observe(self, at: float, clients: Iterable[str], scores: np.ndarray, raw: np.ndarray,
                names: tuple[str, ...]) -> None:
        """Remember the latest score and features of each scored client."""
        obs = self._observations
        for client, score, row in zip(clients, scores.tolist(), raw.tolist()):
            obs[client] = Observation(at, score, tuple(row), names)

    def apply(self, verdicts: Iterable[Verdict]) -> None:
        """Turn verdict changes into model decisions: throttle / block start one, allow lifts it."""
        verdicts = list(verdicts)
        if verdicts:
            self._tx(lambda: [self._apply_one(v) for v in verdicts])

    def _apply_one(self, v: Verdict) -> None:
        t = target_of(v.client)
        current = self._decisions.get(self._model.get(t.value, 0))
        if v.action == "allow":
            if current is not None:
                self._lift(current, v.at)
            return
        if self._allow.covering(t) or self._allows_inside(t):
            if current is not None:
                self._lift(current, v.at)
            return
        kind = TYPE_OF_ACTION[v.action]
        until = v.until if v.until is not None else v.at + self.default_ttl
        if current is not None and current.active(v.at) and current.type == kind:
            half_spent = current.until - v.at < (current.until - current.created_at) / 2
            if until <= current.until or not half_spent:
                return  # the same decision still stands
        if current is not None:
            self._lift(current, v.at)
        self._insert(Decision(0, "model", kind, t.scope, t.value, v.at, until, MODEL_SCENARIO,
                              simulated=v.simulated or "model" in self.shadow, reasons=tuple(v.reasons),
                              score=float(v.score), model_version=v.model_version))

    # -- reads (memory only) ---------------------------------------------------------------------------
    def answer(self, client: str, now: float) -> Answer:
        """What applies to ``client`` at ``now``: allowlist, then manual, then model decisions."""
        t = target_of(client)
        allowed = self._allow.covering(t)
        if allowed:
            return Answer(allowlisted=allowed[0])
        covering = self._index.covering(t)
        return resolve(covering, now) if covering else _NO_ANSWER

    def allowlisted(self, value: str) -> AllowEntry | None:
        found = self._allow.covering(target_of(value))
        return found[0] if found else None

    def observation(self, client: str) -> Observation | None:
        return self._observations.get(client)

    def covering(self, client: str, now: float) -> list[Decision]:
        """Active decisions (simulated too) whose value covers ``client``, newest first."""
        return sorted((d for d in self._index.covering(client) if d.active(now)), key=lambda d: -d.id)

    def get(self, decision_id: int) -> Decision | None:
        return self._decisions.get(decision_id)

    def decisions(self, now: float, *, include_inactive: bool = False, value: str | None = None,
                  origin: str | None = None, type: str | None = None) -> list[Decision]:
        """Decisions by id: active ones, or with ``include_inactive`` every one still kept."""
        with self._lock:
            pool = list((self._decisions if include_inactive else self._live).values())
        canon = target_of(value).value if value else None
        return [d for d in pool if (include_inactive or d.active(now)) and (canon is None or d.value == canon)
                and (origin is None or d.origin == origin) and (type is None or d.type == type)]

    def enforced(self, now: float, scopes: Iterable[str] | None = None,
                 origins: Iterable[str] | None = None) -> dict[int, Decision]:
        """What bouncers should enforce now: per value, the winning active decision that is not simulated,
        not an ``allow``, not allowlisted and (for the model's) not overridden by an operator's decision."""
        with self._lock:
            live = [d for d in self._live.values() if not d.simulated and d.active(now)]
        scopes = {s.lower() for s in scopes} if scopes else None
        origins = set(origins) if origins else None
        by_value: dict[str, list[Decision]] = {}
        for d in live:
            by_value.setdefault(d.value, []).append(d)
        out: dict[int, Decision] = {}
        for value, candidates in by_value.items():
            w = winner(candidates)
            if w is None or w.type == "allow" or (scopes and w.scope.lower() not in scopes) \
                    or (origins and w.origin not in origins):
                continue
            t = target_of(value)
            if self._allow.covering(t):
                continue
            if w.origin == "model" and any(c.origin == "manual" and not c.simulated and c.active(now)
                                           for c in self._index.covering(t)):
                continue
            out[w.id] = w
        return out

    def counts(self, now: float) -> Counter:
        """Active decisions by (type, origin, simulated)."""
        with self._lock:
            live = list(self._live.values())
        return Counter((d.type, d.origin, d.simulated) for d in live if d.active(now))

    def _allows_inside(self, t) -> bool:
        """True if ``t`` is a range holding an allowlisted address or CIDR: a prefix scored whole is not
        blocked over it, as a bouncer pulling the range would not know the exception."""
        return t.scope == "Range" and any(t.covers(target_of(e.value)) for e in self.allowlist())

    def allowlist(self) -> list[AllowEntry]:
        return list(self._config_allow) + sorted(self._allow_entries.values(), key=lambda e: e.id)

    def keys(self) -> list[ApiKey]:
        return sorted(self._keys.values(), key=lambda k: k.id)

    def authenticate(self, token: str | None) -> ApiKey | None:
        """The key a token belongs to (checking the backend for keys made by another process)."""
        if not token:
            return None
        digest = hash_token(token)
        key = self._keys.get(digest)
        if key is None and self.sync():
            key = self._keys.get(digest)
        return key

    def ping(self) -> bool:
        with self._lock:
            return self._backend.ping()

    # -- operators' writes ------------------------------------------------------------------------------
    def add_decision(self, value: str, type: str, duration: float, now: float, *, reason: str = "",
                     author: str = "") -> Decision:
        """A manual decision on an IP or CIDR for ``duration`` seconds from ``now``."""
        t = network_target(value)
        if type not in DECISION_TYPES:
            raise ValueError(f"decision type must be one of {', '.join(DECISION_TYPES)}, not {type!r}")
        if not duration > 0:
            raise ValueError("a decision's duration must be positive")
        entry = self._allow.covering(t)
        if type != "allow" and entry:
            raise AllowlistedError(f"{t.value} is allowlisted ({entry[0].value}); delete that entry first")
        reason = reason.strip()
        d = Decision(0, "manual", type, t.scope, t.value, now, now + duration,
                     reason or f"manual '{type}' from '{author or 'detector'}'",
                     simulated="manual" in self.shadow, reasons=(reason,) if reason else ())
        return self._tx(lambda: self._insert(d))

    def lift(self, decision_id: int, now: float) -> Decision | None:
        """End an active decision now; ``None`` if there is none with that id."""
        def run() -> Decision | None:
            d = self._live.get(decision_id)
            return self._lift(d, now) if d is not None and d.active(now) else None
        return self._tx(run)

    def lift_value(self, value: str, now: float, origin: str | None = None) -> list[Decision]:
        """End every active decision on exactly ``value`` (of ``origin``, if given)."""
        canon = target_of(value).value

        def run() -> list[Decision]:
            hits = [d for d in self._index.exact(canon) if d.active(now) and (origin is None or d.origin == origin)]
            return [self._lift(d, now) for d in hits]
        return self._tx(run)

    def add_allow(self, value: str, now: float, reason: str = "") -> tuple[AllowEntry, list[Decision]]:
        """Allowlist an IP or CIDR; active decisions inside it are lifted. Returns the entry and those."""
        t = network_target(value)

        def run() -> tuple[AllowEntry, list[Decision]]:
            if any(e.value == t.value for e in self.allowlist()):
                raise ValueError(f"{t.value} is already allowlisted")
            entry = AllowEntry(0, t.value, t.scope, reason.strip(), now)
            entry = replace(entry, id=self._backend.insert_allow(entry))
            self._allow_entries[entry.id] = entry
            self._allow.add(entry)
            inside = [d for d in list(self._live.values())
                      if d.type != "allow" and d.active(now) and t.covers(target_of(d.value))]
            return entry, [self._lift(d, now) for d in inside]
        return self._tx(run)

    def remove_allow(self, value: str) -> bool:
        """Take an IP or CIDR off the stored allowlist (configured entries stay); False if absent."""
        canon = target_of(value).value
        if any(e.value == canon for e in self._config_allow):
            raise ValueError(f"{canon} is allowlisted in the configuration (policy.allowlist), not in the store")

        def run() -> bool:
            entry = next((e for e in self._allow_entries.values() if e.value == canon), None)
            if entry is None:
                return False
            self._backend.delete_allow(entry.id)
            del self._allow_entries[entry.id]
            self._allow.remove(entry)
            return True
        return self._tx(run)

    def add_key(self, name: str, role: str, now: float) -> tuple[ApiKey, str]:
        """A new API key; returns it and its token (the only time the token is seen)."""
        name = name.strip()
        if not name:
            raise ValueError("an API key needs a name")
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")

        def run() -> tuple[ApiKey, str]:
            if any(k.name == name for k in self._keys.values()):
                raise ValueError(f"an API key named {name!r} exists already")
            token = new_token()
            key = ApiKey(0, name, role, hash_token(token), now)
            key = replace(key, id=self._backend.insert_key(key))
            self._keys[key.hash] = key
            return key, token
        return self._tx(run)

    def revoke_key(self, name: str) -> bool:
        """Delete the key named ``name`` (and its stream cursor); False if there is none."""
        def run() -> bool:
            key = next((k for k in self._keys.values() if k.name == name), None)
            if key is None:
                return False
            self._backend.delete_key(key.id)
            del self._keys[key.hash]
            self._delivered.pop(key.id, None)
            return True
        return self._tx(run)

    # -- the bouncer stream ---------------------------------------------------------------------------
    def stream(self, key_id: int, now: float, *, startup: bool = False, scopes: Iterable[str] | None = None,
               origins: Iterable[str] | None = None) -> tuple[list[Decision], list[Decision]]:
        """(new, deleted) for the bouncer with key ``key_id`` since its last pull; ``startup``: everything
        enforced, nothing deleted. ``enforced`` holds one decision per value, so a bouncer that keys its
        cache by value and applies ``deleted`` before ``new`` stays right when a value's decision changes."""
        def run() -> tuple[list[Decision], list[Decision]]:
            current = self.enforced(now, scopes, origins)
            sent = self._delivered.get(key_id, set())
            if startup:
                fresh, gone = set(current), set()
            else:
                gone = sent - current.keys()
                fresh = current.keys() - sent
            add, remove = current.keys() - sent, sent - current.keys()
            if add or remove:
                self._backend.cursor_update(key_id, sorted(add), sorted(remove))
            self._delivered[key_id] = set(current)
            return ([current[i] for i in sorted(fresh)],
                    [self._decisions[i] for i in sorted(gone) if i in self._decisions])
        return self._tx(run)

    # -- housekeeping ---------------------------------------------------------------------------------
    def prune(self, now: float) -> int:
        """Drop expired decisions from the live index, and forget those gone for ``keep_deleted`` seconds
        that no bouncer still has to hear of. Returns how many were forgotten."""
        def run() -> int:
            for d in [d for d in self._live.values() if not d.active(now)]:
                del self._live[d.id]
                self._index.remove(d)
                if self._model.get(d.value) == d.id:
                    del self._model[d.value]
            needed = set().union(*self._delivered.values()) if self._delivered else set()
            old = [i for i, d in self._decisions.items()
                   if i not in self._live and d.ends < now - self.keep_deleted and i not in needed]
            if old:
                self._backend.delete_decisions(old)
                for i in old:
                    del self._decisions[i]
            return len(old)
        return self._tx(run)

    def evict(self, idle_before: float) -> int:
        """Forget observations older than ``idle_before``."""
        with self._lock:  # the pipeline writes observations without this lock: iterate over a copy
            stale = [c for c, o in list(self._observations.items()) if o.at < idle_before]
            for c in stale:
                del self._observations[c]
        return len(stale)

    def close(self) -> None:
        with self._lock:
            self._backend.close()

    def __len__(self) -> int:
        return len(self._observations)

