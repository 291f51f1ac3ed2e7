"""Policy: scores in, verdicts out. Pure decisions on event time; no scikit-learn here.

``decide`` is the whole rule for one client and one tick, a pure function of the client's previous
state, its score, the thresholds and the config:

* score ≥ block threshold → **block**; score ≥ throttle threshold → **throttle**;
* a verdict holds until its TTL lapses (hysteresis: it is extended while the score stays within
  ``hysteresis`` of the throttle threshold, so verdicts do not flap);
* a throttled client still scoring halfway or more from the throttle to the block threshold
  ``escalate_after`` seconds later is blocked: throttling did not stop it (a client hovering just
  over the throttle threshold stays throttled);
* repeat offenders get doubled TTLs (capped at ``max_ttl``); the count is forgotten after
  ``forget_after`` seconds of good behaviour;
* allowlisted clients are always allowed; in shadow mode verdicts are marked ``simulated`` (the
  gateway-facing answer then allows);
* confirmation: a client is judged on the lower of its last two scores, when they came within
  ``confirm_within`` seconds of each other (``confirmed_scores``), so one odd tick (a phone that dropped
  two polls while changing networks) is not enough; a client that keeps it up is caught one tick later.
  The model's thresholds are calibrated on the same confirmed scores. Outside incidents, a single
  score at or over ``Thresholds.single`` (the block threshold, or the highest single tick of any
  training client if that is higher) throttles at once, unconfirmed: a burst of polls answered together
  shows up once per hold time, and its next tick would come 25 s later. Blocking still takes a
  confirmed score;
* shared addresses: a client showing ``shared_agents`` or more distinct user agents in the last minute
  (those not only refused: a string that only ever got 401/403/404 is a rotating stuffer's, not a
  colleague's) is taken for many people behind one address (an office NAT, a carrier gateway): it can be throttled,
  never blocked, since a block would lock them all out;
* population awareness: while a large share of all clients is failing at once (``incident_share``
  of the active clients got 5xx/429: an outage, a bad deploy) and for ``incident_grace`` seconds after
  (everyone reconnects at once), clients are compared with how normal clients behave in incidents: a
  new verdict needs the incident threshold (calibrated on the training day's incidents; without one,
  nobody gets a new verdict) and is a throttle, never a block; verdicts in force keep their course.

``Policy`` holds the per-client states and an expiry queue so that lapsed verdicts turn back into
``allow`` changes at their ``until`` time.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import numpy as np

from detector.ingest.identity import Network, in_networks, overlaps_networks
from detector.records import Action, Thresholds, Verdict


@dataclass(frozen=True)
class PolicyConfig:
    throttle_ttl: float = 300.0
    block_ttl: float = 900.0
    max_ttl: float = 86_400.0
    escalate_after: float = 30.0
    hysteresis: float = 0.02
    forget_after: float = 86_400.0
    shadow: bool = False
    allowlist: tuple[Network, ...] = ()
    incident_share: float = 0.3
    incident_grace: float = 60.0
    confirm_within: float = 30.0  # 0: act on a single tick's score
    shared_agents: int = 8  # this many user agents on one address: shared, throttled at most (0: off)
    # false-positive targets other than the model's own (its thresholds read again off its calibration
    # scores, ``AnomalyModel.thresholds_at``); None: the model's
    throttle_fpr: float | None = None
    block_fpr: float | None = None


@dataclass(frozen=True)
class ClientState:
    """A client's standing: its current action (with the span it holds) and how often it offended."""

    action: Action
    since: float
    until: float
    offences: int
    score: float
    reasons: tuple[str, ...] = ()

    def active(self, at: float) -> bool:
        return self.action != "allow" and at < self.until


def incident_mask(failing_share: np.ndarray, at: np.ndarray, cfg: PolicyConfig) -> np.ndarray:
    """Which ticks fall in an incident or its grace (see ``decide``), for rows in time order per log.

    Used to leave incident ticks out of threshold calibration, as the policy leaves them out of blame.

    >>> incident_mask(np.array([0.0, 0.5, 0.0, 0.0]), np.array([0.0, 10.0, 60.0, 80.0]),
    ...               PolicyConfig(incident_share=0.3, incident_grace=60)).tolist()
    [False, True, True, False]
    """
    failing_share, at = np.asarray(failing_share, dtype=np.float64), np.asarray(at, dtype=np.float64)
    starts = np.unique(at[failing_share >= cfg.incident_share])
    if len(starts) == 0:
        return np.zeros(len(at), dtype=bool)
    last = np.searchsorted(starts, at, side="right") - 1
    since = at - np.where(last >= 0, starts[np.maximum(last, 0)], -np.inf)
    return since <= cfg.incident_grace


def confirmed_scores(scores: np.ndarray, clients: np.ndarray, at: np.ndarray, within: float) -> np.ndarray:
    """The score the policy acts on for each row: the lower of the row's score and the same client's
    previous score, if that came at most ``within`` seconds earlier (else -inf: nothing to confirm).
    ``within`` 0 returns the scores unchanged. Rows may come in any order.

    >>> confirmed_scores(np.array([0.9, 0.8, 0.3, 0.95]), np.array(["a", "a", "b", "a"]),
    ...                  np.array([0.0, 2.0, 2.0, 60.0]), 30.0).tolist()
    [-inf, 0.8, -inf, -inf]
    """
    scores = np.asarray(scores, dtype=np.float64)
    if within <= 0 or len(scores) == 0:
        return scores.copy()
    order = np.lexsort((np.asarray(at, dtype=np.float64), np.asarray(clients)))
    s, t, c = scores[order], np.asarray(at, dtype=np.float64)[order], np.asarray(clients)[order]
    out = np.full(len(s), -np.inf)
    same = (c[1:] == c[:-1]) & (t[1:] - t[:-1] <= within)
    out[1:][same] = np.minimum(s[1:], s[:-1])[same]
    result = np.empty(len(s))
    result[order] = out
    return result


def ttl_for(action: Action, offences: int, cfg: PolicyConfig) -> float:
    """TTL of the ``offences``-th verdict (1-based): the base TTL doubled per earlier offence, capped.

    >>> cfg = PolicyConfig(throttle_ttl=300, max_ttl=1000)
    >>> [ttl_for("throttle", n, cfg) for n in (1, 2, 3, 4)]
    [300.0, 600.0, 1000.0, 1000.0]
    """
    base = cfg.block_ttl if action == "block" else cfg.throttle_ttl
    return float(min(base * 2 ** max(offences - 1, 0), cfg.max_ttl))


def decide(prev: ClientState | None, score: float, at: float, thr: Thresholds, cfg: PolicyConfig,
           reasons: tuple[str, ...] = (), incident: bool = False, shared: bool = False) -> ClientState | None:
    """The client's state after scoring ``score`` at event time ``at`` (``None``: nothing to remember).

    During an ``incident`` (see the module docstring) verdicts in force may be extended, never
    started or made harsher; a ``shared`` address is throttled at most.
    """
    if prev is not None and prev.active(at):
        escalate = (prev.action == "throttle" and at - prev.since >= cfg.escalate_after
                    and score >= (thr.throttle + thr.block) / 2)
        if not incident and not shared and (score >= thr.block or escalate):
            if prev.action == "block":
                return replace(prev, until=max(prev.until, at + ttl_for("block", prev.offences, cfg)))
            return replace(prev, action="block", since=at, until=at + ttl_for("block", prev.offences, cfg),
                           score=score, reasons=reasons or prev.reasons)
        if score >= thr.throttle - cfg.hysteresis:
            return replace(prev, until=max(prev.until, at + ttl_for(prev.action, prev.offences, cfg)))
        return prev
    offences = 0 if prev is None or at - prev.until > cfg.forget_after else prev.offences
    action: Action
    if incident:
        if thr.incident is None or score < thr.incident:
            return prev
        action = "throttle"
    elif score >= thr.block and not shared:
        action = "block"
    elif score >= thr.throttle:
        action = "throttle"
    elif prev is None or offences == 0:
        return None
    else:
        return prev if prev.action == "allow" else replace(prev, action="allow")
    offences += 1
    return ClientState(action, at, at + ttl_for(action, offences, cfg), offences, score, reasons)


@dataclass
class Policy:
    """Per-client states and their expiry; turns a tick of scores into verdict changes."""

    thresholds: Thresholds
    config: PolicyConfig = field(default_factory=PolicyConfig)
    model_version: str = ""

    def __post_init__(self) -> None:
        self.states: dict[str, ClientState] = {}
        self._recent: dict[str, tuple[float, float]] = {}  # (at, score) of a client's last tick near the thresholds
        self._expiry: list[tuple[float, str]] = []
        self.incident_until = -float("inf")

    def expire(self, at: float) -> list[Verdict]:
        """Verdicts whose TTL lapsed by ``at``, as ``allow`` changes at their ``until``."""
        out = []
        while self._expiry and self._expiry[0][0] <= at:
            until, client = heapq.heappop(self._expiry)
            state = self.states.get(client)
            if state is None or state.action == "allow" or state.until != until:
                continue  # extended or replaced since this entry was queued
            self.states[client] = replace(state, action="allow")
            out.append(self._verdict(client, self.states[client], until))
        return out

    def update(self, at: float, clients: Sequence[str], scores: Sequence[float],
               reasons: Callable[[int], tuple[str, ...]] = lambda i: (), failing_share: float = 0.0,
               agents: Sequence[float] | None = None) -> list[Verdict]:
        """Apply one tick: expire what lapsed, then decide each scored client; return the changes.

        ``failing_share`` is the share of all active clients that got 5xx/429 at this tick; ``agents``
        each client's distinct user agents in the last minute (for ``shared_agents``).
        """
        changes = self.expire(at)
        if failing_share >= self.config.incident_share:
            self.incident_until = at + self.config.incident_grace
        incident = at <= self.incident_until
        lowest = self.thresholds.throttle - self.config.hysteresis
        within, recent = self.config.confirm_within, self._recent
        for i, (client, score) in enumerate(zip(clients, scores)):
            prev = self.states.get(client)
            last = recent.pop(client, None) if within > 0 else None
            if score >= lowest and within > 0:
                recent[client] = (at, float(score))
            if prev is None and score < lowest:
                continue  # the common case: an unknown, ordinary client
            if self.config.allowlist and (overlaps_networks(client, self.config.allowlist) if "/" in client
                                          else in_networks(client, self.config.allowlist)):
                continue  # a prefix holding an allowlisted address is never judged whole either
            unconfirmed = False
            if within > 0:  # the lower of this and the last score (confirmed_scores)
                single = score
                score = min(score, last[1]) if last is not None and at - last[0] <= within else -np.inf
                once = self.thresholds.single
                if not incident and once is not None and single >= once and score < self.thresholds.throttle:
                    score, unconfirmed = single, True  # beyond doubt on one tick: throttle now
                if prev is None and score < lowest:
                    continue
            why = reasons(i) if score >= lowest else ()
            shared = unconfirmed or (agents is not None and 0 < self.config.shared_agents <= agents[i])
            new = decide(prev, float(score), at, self.thresholds, self.config, why, incident, shared)
            if new is None:
                self.states.pop(client, None)
                continue
            self.states[client] = new
            if new.until != (prev.until if prev else None) and new.action != "allow":
                heapq.heappush(self._expiry, (new.until, client))
            if prev is None or new.action != prev.action or (new.since != prev.since and new.action != "allow"):
                changes.append(self._verdict(client, new, at))
        return changes

    def _verdict(self, client: str, state: ClientState, at: float) -> Verdict:
        allow = state.action == "allow"
        return Verdict(client=client, action=state.action, score=state.score, at=at,
                       until=None if allow else state.until, reasons=() if allow else state.reasons,
                       model_version=self.model_version, simulated=self.config.shadow and not allow,
                       offences=state.offences)

    def current(self, client: str, at: float) -> ClientState | None:
        state = self.states.get(client)
        return state if state is not None and state.active(at) else None

    def forget(self, older_than: float) -> int:
        """Drop states that lapsed before ``older_than`` and carry no offence worth remembering."""
        stale = [c for c, s in self.states.items() if not s.active(older_than)
                 and older_than - s.until > self.config.forget_after]
        for c in stale:
            del self.states[c]
        gone = [c for c, (t, _s) in self._recent.items() if older_than - t > self.config.confirm_within]
        for c in gone:
            del self._recent[c]
        return len(stale)

