"""Client addresses, and the networks clients connect from.

Every client key is a distinct address, but addresses of clients on the same network share a prefix
(IPv4 /24, IPv6 /64), as they do in real traffic:

=========== ==================================================================================
network     where the address comes from
=========== ==================================================================================
cellular    IPv4: a carrier's CGNAT pool. A handful of carriers, each with a contiguous run of
            /24s sized to its market share; phones of one carrier land on any /24 of its pool,
            about :data:`CGNAT_CLIENTS_PER_24` clients of the service per /24. IPv6: a /64 of its
            own (3GPP gives every phone's bearer a unique /64), so no sharing.
home        IPv4: one household address in an ISP's residential /24; :data:`HOME_V4_SHARED` of
            them have 1-9 neighbours using the service in the same /24 (mostly one or two).
            IPv6: the household's /64; :data:`HOME_V6_SHARED` share it with 1-2 other devices
            of the household.
venue       IPv6 only: campus, hotel or guest Wi-Fi, where every device autoconfigures inside
            one /64 (3-12 clients of the service per /64). On IPv4 such a network is a NAT: one
            address, many users (the ``nat_office`` class).
cloud       consumers: a VM or NAT gateway address; :data:`CLOUD_SHARED` of them sit with 1-2
            other consumers in one /24 (/64): a company's services in one region and subnet.
office      ``nat_office``: one address, many users (unchanged).
internal    health checkers: private addresses inside the data centre.
public      a lone public address with a /24 (/64) no one else in the log uses (single-key
            attackers on a server or line of their own).
hosting     a ``distributed_flood`` operator's rented /24 (or /64), 8-40 addresses of it.
=========== ==================================================================================

Which network each population uses, and the IPv6 share on it, is in :data:`MOBILE_NETWORKS` and
:data:`BROWSER_NETWORKS`. :func:`normal_addresses` assigns them; :class:`AddressPool` keeps every
address and every prefix distinct unless shared on purpose.

Single-address attackers (:func:`attacker_addresses`) run partly from the same networks as normal
clients: a share of each class (:data:`ATTACKER_SHARED`) gets an address inside a prefix normal
clients already use -- a carrier's CGNAT /24 (``cellular``: a phone or tethered laptop running the
abusive app or script, or a mobile proxy), a residential /24 with neighbours on the service
(``home``: an infected PC or router, a residential proxy, a user's own script) or a consumer's cloud
/24 (/64) (``cloud``: a compromised or misbehaving VM next to legit consumers' services). The
others are ``public``. A verdict on such a prefix as a whole would hit the innocent neighbours too.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass

import numpy as np

# First octets of busy public allocations (ISPs, clouds, mobile carriers); none reserved or private.
_V4_FIRST = np.array([23, 31, 37, 45, 46, 62, 66, 68, 71, 73, 76, 77, 79, 81, 82, 83, 84, 85, 86, 87, 88,
                      89, 90, 91, 92, 93, 94, 95, 98, 99, 104, 107, 108, 109, 151, 176, 178, 185, 188,
                      190, 195, 201, 212, 213, 217])
# First octets of cloud and hosting allocations (consumers' VMs, rented server ranges).
_V4_HOSTING = np.array([3, 13, 18, 34, 35, 52, 54, 104, 138, 139, 143, 157, 159, 165, 167, 185, 188, 193,
                        194, 195, 209])
# Global unicast IPv6 blocks held by large ISPs and carriers.
_V6_PREFIX = (0x2A02, 0x2A01, 0x2001, 0x2600, 0x2601, 0x2603, 0x2804, 0x2406, 0x2409, 0x2A00)
# ... and by clouds and hosters.
_V6_HOSTING = (0x2600, 0x2A01, 0x2A03, 0x2604, 0x2605, 0x2A05, 0x2001)

#: (network, share of the population, IPv6 share on that network). Phones are on the carrier most of
#: the time they poll, on home Wi-Fi often, on venue Wi-Fi now and then.
MOBILE_NETWORKS = (("cellular", 0.65, 0.40), ("home", 0.28, 0.30), ("venue", 0.07, 1.0))
#: Browsers: home broadband mostly; phones' browsers and tethered laptops on a carrier; some on
#: campus or guest Wi-Fi. (Browsers at work behind the office NAT are the ``nat_office`` class.)
BROWSER_NETWORKS = (("home", 0.87, 0.12), ("cellular", 0.10, 0.40), ("venue", 0.03, 1.0))
#: Mean clients of the service on one carrier CGNAT /24 (a carrier's pool in one region spans a few
#: to a few dozen /24s; the service's users of that carrier spread over them).
CGNAT_CLIENTS_PER_24 = 8.0
#: Residential IPv4 clients with neighbours (same ISP pool, same /24) also using the service.
HOME_V4_SHARED = 0.30
#: Residential IPv6 clients whose household /64 holds another device using the service.
HOME_V6_SHARED = 0.20
#: Consumers sharing a cloud /24 (/64) with another consumer of the service.
CLOUD_SHARED = 0.30
CONSUMER_V6 = 0.10
OFFICE_V6 = 0.10
#: Sizes (clients of the service per prefix) of shared prefixes, with their weights.
NEIGHBOURS = (tuple(range(2, 11)), tuple(1.0 / s ** 2 for s in range(2, 11)))   # mean 3.5
HOUSEHOLD = ((2, 3), (0.75, 0.25))
VENUE = (tuple(range(3, 13)), tuple(1.0 / s for s in range(3, 13)))           # mean 6
CLOUD = ((2, 3), (0.6, 0.4))

#: Single-address attackers inside prefixes normal clients use: per class, the share of its actors
#: there and how they split over the shared networks (weights). Overall about 40 % (default mix:
#: 0.41). Buggy clients (reconnect_loop, retry_storm, cursor_replay) are mostly somebody's app or
#: integration, so they come from where users and consumers are; scripts (parallel_flood, scraper,
#: credential_stuffing) run from rented servers more often than not, else from a home machine, a
#: tethered laptop, a residential or mobile proxy, or a cloud VM; scanners are mostly dedicated
#: hosts, with a few infected home routers and hijacked VMs.
ATTACKER_SHARED: dict[str, tuple[float, dict[str, float]]] = {
    "reconnect_loop": (0.60, {"cellular": 0.50, "home": 0.45, "cloud": 0.05}),
    "parallel_flood": (0.35, {"cellular": 0.20, "home": 0.45, "cloud": 0.35}),
    "retry_storm": (0.55, {"cellular": 0.40, "home": 0.30, "cloud": 0.30}),
    "cursor_replay": (0.50, {"cellular": 0.30, "home": 0.35, "cloud": 0.35}),
    "scraper": (0.30, {"cellular": 0.30, "home": 0.45, "cloud": 0.25}),
    "credential_stuffing": (0.35, {"cellular": 0.40, "home": 0.50, "cloud": 0.10}),
    "scanner": (0.15, {"cellular": 0.10, "home": 0.60, "cloud": 0.30}),
}
SHARED_KINDS = ("cellular", "home", "cloud")


@dataclass(frozen=True)
class Prefix:
    """An IPv4 /24 (``net`` is its top 24 bits) or an IPv6 /64 (its top 64 bits)."""

    v6: bool
    net: int

    def __str__(self) -> str:
        if self.v6:
            return str(ipaddress.IPv6Network((self.net << 64, 64)))
        return str(ipaddress.IPv4Network((self.net << 8, 24)))


def _prefix(addr: str) -> Prefix:
    ip = ipaddress.ip_address(addr)
    return Prefix(True, int(ip) >> 64) if ip.version == 6 else Prefix(False, int(ip) >> 8)


def prefix_of(addr: str) -> str:
    """The IPv4 /24 or IPv6 /64 of an address, as ``detector.ingest.identity.prefix_of`` writes it."""
    ip = ipaddress.ip_address(addr)
    return str(ipaddress.ip_network(f"{ip}/{24 if ip.version == 4 else 64}", strict=False))


class AddressPool:
    """Hands out distinct addresses from one generator; ``v6_share`` of public ones are IPv6.

    :meth:`public` gives an address in a prefix nobody else holds; :meth:`prefix` and :meth:`carrier`
    give fresh prefixes that :meth:`address_in` then fills with distinct addresses."""

    def __init__(self, rng: np.random.Generator, v6_share: float = 0.15) -> None:
        self._rng = rng
        self._v6_share = v6_share
        self._used: set[str] = set()
        self._nets: set[Prefix] = set()

    def sibling(self, rng: np.random.Generator) -> AddressPool:
        """A pool drawing from ``rng`` that shares this one's addresses and prefixes (neither hands
        out what the other has), so one population can be placed without moving the others' draws."""
        other = AddressPool(rng, self._v6_share)
        other._used = self._used
        other._nets = self._nets
        return other

    def _unique(self, make) -> str:
        while True:
            addr = make()
            if addr not in self._used:
                self._used.add(addr)
                return addr

    def _fresh_v4(self, first: np.ndarray, run: int = 1) -> tuple[int, int, int]:
        """``a.b.c`` such that the ``run`` /24s from ``a.b.c.0`` are all unused; marks them used."""
        rng = self._rng
        while True:
            a = int(rng.choice(first))
            b = int(rng.integers(0, 256))
            c = int(rng.integers(0, 257 - run))
            nets = [Prefix(False, (a << 16) | (b << 8) | (c + k)) for k in range(run)]
            if not any(p in self._nets for p in nets):
                self._nets.update(nets)
                return a, b, c

    def _fresh_v6(self, heads) -> Prefix:
        rng = self._rng
        while True:
            words = rng.integers(0, 0x10000, size=3)
            net = int(heads[int(rng.integers(len(heads)))])
            for w in words:
                net = (net << 16) | int(w)
            p = Prefix(True, net)
            if p not in self._nets:
                self._nets.add(p)
                return p

    def prefix(self, v6: bool, hosting: bool = False) -> Prefix:
        """A /24 (/64) no address has been handed out in yet, from ISP or (``hosting``) cloud space."""
        if v6:
            return self._fresh_v6(_V6_HOSTING if hosting else _V6_PREFIX)
        a, b, c = self._fresh_v4(_V4_HOSTING if hosting else _V4_FIRST)
        return Prefix(False, (a << 16) | (b << 8) | c)

    def carrier(self, n: int) -> list[Prefix]:
        """A carrier's CGNAT pool: ``n`` unused /24s, in runs of consecutive ones (up to 64 a run)."""
        out: list[Prefix] = []
        while len(out) < n:
            run = min(64, n - len(out))
            a, b, c = self._fresh_v4(_V4_FIRST, run=run)
            out.extend(Prefix(False, (a << 16) | (b << 8) | (c + k)) for k in range(run))
        return out

    def address_in(self, p: Prefix) -> str:
        """A distinct address inside ``p`` (hosts .1-.254; on IPv6 a SLAAC or a random interface id)."""
        rng = self._rng
        self._nets.add(p)
        if p.v6:
            def make() -> str:
                words = rng.integers(0, 0x10000, size=4)
                if rng.random() < 0.5:
                    words[1] = (words[1] & 0xFF00) | 0x00FF
                    words[2] = (words[2] & 0x00FF) | 0xFE00
                iid = 0
                for w in words:
                    iid = (iid << 16) | int(w)
                return str(ipaddress.IPv6Address((p.net << 64) | iid))
        else:
            base = p.net << 8

            def make() -> str:
                return str(ipaddress.IPv4Address(base | int(rng.integers(1, 255))))
        return self._unique(make)

    def public(self, v6: bool | None = None) -> str:
        """An address in a /24 (/64) of its own."""
        if v6 is None:
            v6 = bool(self._rng.random() < self._v6_share)
        return self.address_in(self.prefix(v6))

    def private(self) -> str:
        """A node or load-balancer address inside the data centre (10.0.0.0/8 or 172.16.0.0/12)."""
        rng = self._rng

        def make() -> str:
            if rng.random() < 0.6:
                return f"10.{int(rng.integers(0, 4))}.{int(rng.integers(0, 256))}.{int(rng.integers(2, 255))}"
            return f"172.31.{int(rng.integers(0, 64))}.{int(rng.integers(2, 255))}"
        return self._unique(make)


# -- where the normal populations connect from ---------------------------------------------------

def _sizes(rng: np.random.Generator, n: int, sizes: tuple) -> list[int]:
    """Split ``n`` clients into groups with sizes drawn from ``sizes`` (values, weights). A remainder
    smaller than the smallest size joins earlier groups that have room (else it is a group itself)."""
    values, weights = np.asarray(sizes[0]), np.asarray(sizes[1], dtype=float)
    lo, hi = int(values.min()), int(values.max())
    out, left = [], n
    while left >= lo:
        s = min(left, int(rng.choice(values, p=weights / weights.sum())))
        out.append(s)
        left -= s
    for i in range(len(out) - 1, -1, -1):
        if left == 0:
            break
        while left and out[i] < hi:
            out[i] += 1
            left -= 1
    if left:
        out.append(left)
    return out


def _grouped(pool: AddressPool, rng: np.random.Generator, n: int, v6: bool, shared: float, sizes: tuple,
             hosting: bool = False) -> list[str]:
    """``n`` addresses: a share ``shared`` of them in prefixes holding 2+ of them (group sizes from
    ``sizes``), the others alone in theirs. In random order."""
    k = int(rng.binomial(n, shared)) if n else 0
    groups = _sizes(rng, k, sizes) + [1] * (n - k)
    out = []
    for g in groups:
        p = pool.prefix(v6, hosting)
        out.extend(pool.address_in(p) for _ in range(g))
    return [out[i] for i in rng.permutation(len(out)).tolist()]


def _cgnat(pool: AddressPool, rng: np.random.Generator, n: int) -> list[str]:
    """``n`` addresses from carriers' CGNAT pools: a few carriers (market shares falling off like a
    Zipf law), each a run of /24s in proportion to its share, about ``CGNAT_CLIENTS_PER_24`` clients
    per /24."""
    if n == 0:
        return []
    n_pools = max(1, round(n / CGNAT_CLIENTS_PER_24))
    n_carriers = int(min(n_pools, max(1, min(10, round(math.sqrt(n_pools))))))
    share = 1.0 / np.arange(1, n_carriers + 1) ** 0.8
    share /= share.sum()
    # /24s per carrier by largest remainder, at least one each.
    raw = share * n_pools
    per = np.maximum(1, np.floor(raw).astype(int))
    for i in np.argsort(-(raw - np.floor(raw)), kind="stable"):
        if per.sum() >= n_pools:
            break
        per[i] += 1
    carriers = [pool.carrier(int(k)) for k in per]
    who = rng.choice(n_carriers, size=n, p=share)
    return [pool.address_in(carriers[c][int(rng.integers(len(carriers[c])))]) for c in who.tolist()]


def normal_addresses(pool: AddressPool, rng: np.random.Generator,
                     counts: dict[str, int]) -> dict[str, list[tuple[str, str]]]:
    """``(address, network)`` for ``counts[cls]`` clients of each normal class, in client order."""
    out: dict[str, list[tuple[str, str]]] = {}
    # Browsers and phones share carriers' pools and residential /24s: draw each one's network first.
    slots: dict[tuple[str, bool], list[tuple[str, int]]] = {}
    for cls, table in (("mobile", MOBILE_NETWORKS), ("browser", BROWSER_NETWORKS)):
        n = counts.get(cls, 0)
        names = [t[0] for t in table]
        net = rng.choice(len(table), size=n, p=[t[1] for t in table])
        v6 = rng.random(n) < np.array([t[2] for t in table])[net] if n else np.empty(0, bool)
        out[cls] = [("", "")] * n
        for i in range(n):
            slots.setdefault((names[int(net[i])], bool(v6[i])), []).append((cls, i))

    def fill(key: tuple[str, bool], addrs: list[str]) -> None:
        for (cls, i), a in zip(slots.get(key, []), addrs):
            out[cls][i] = (a, key[0])

    def count(key: tuple[str, bool]) -> int:
        return len(slots.get(key, []))

    fill(("cellular", False), _cgnat(pool, rng, count(("cellular", False))))
    fill(("cellular", True), [pool.public(True) for _ in range(count(("cellular", True)))])
    fill(("home", False), _grouped(pool, rng, count(("home", False)), False, HOME_V4_SHARED, NEIGHBOURS))
    fill(("home", True), _grouped(pool, rng, count(("home", True)), True, HOME_V6_SHARED, HOUSEHOLD))
    fill(("venue", True), _grouped(pool, rng, count(("venue", True)), True, 1.0, VENUE))
    fill(("venue", False), _grouped(pool, rng, count(("venue", False)), False, 0.0, VENUE))  # (none by default)

    n = counts.get("consumer", 0)
    n6 = int(rng.binomial(n, CONSUMER_V6)) if n else 0
    addrs = (_grouped(pool, rng, n - n6, False, CLOUD_SHARED, CLOUD, hosting=True)
             + _grouped(pool, rng, n6, True, CLOUD_SHARED, CLOUD, hosting=True))
    out["consumer"] = [(addrs[i], "cloud") for i in rng.permutation(n).tolist()]
    out["nat_office"] = [(pool.public(bool(rng.random() < OFFICE_V6)), "office")
                         for _ in range(counts.get("nat_office", 0))]
    out["health_checker"] = [(pool.private(), "internal") for _ in range(counts.get("health_checker", 0))]
    return out


# -- where single-address attackers connect from ---------------------------------------------------

def _shared_candidates(normal: list[tuple[str, str, str]]) -> dict[str, list[Prefix]]:
    """Per shared network kind, the prefix of every normal client that an attacker may join (one entry
    per client, so busier prefixes and bigger carriers are likelier): carriers' IPv4 CGNAT /24s,
    residential IPv4 /24s, consumers' cloud /24s and /64s."""
    out: dict[str, list[Prefix]] = {k: [] for k in SHARED_KINDS}
    for addr, network, cls in normal:
        if network == "cellular" and ":" not in addr:
            out["cellular"].append(_prefix(addr))
        elif network == "home" and ":" not in addr:
            out["home"].append(_prefix(addr))
        elif network == "cloud" and cls == "consumer":
            out["cloud"].append(_prefix(addr))
    return out


def attacker_addresses(pool: AddressPool, rng: np.random.Generator, classes: list[str],
                       normal: list[tuple[str, str, str]]) -> list[tuple[str, str]]:
    """``(address, network)`` for single-address attackers of ``classes`` (one entry each, in order),
    given the normal clients' ``(address, network, class)``.

    Per class, ``ATTACKER_SHARED`` of its actors (``floor(n * share + u)``, which ones at random) join a
    prefix of normal clients, picked as the prefix of a random normal client of the drawn kind, one
    attacker a prefix while there are others left; the rest get a prefix of their own (``public``).
    When there are attackers and a CGNAT pool at all, at least one attacker is in one (if none drew
    it, a shared attacker -- or any, if none is shared -- moves to a pool). Draws nothing when
    ``classes`` is empty."""
    n = len(classes)
    if n == 0:
        return []
    cand = _shared_candidates(normal)
    kind: list[str | None] = [None] * n
    by_cls: dict[str, list[int]] = {}
    for i, cls in enumerate(classes):
        by_cls.setdefault(cls, []).append(i)
    for cls, idx in by_cls.items():
        share, weights = ATTACKER_SHARED.get(cls, (0.0, {}))
        k = int(math.floor(len(idx) * share + float(rng.random())))
        for j in rng.permutation(len(idx))[:k].tolist():
            kinds = [x for x in SHARED_KINDS if weights.get(x, 0.0) > 0 and cand[x]]
            if kinds:
                w = np.array([weights[x] for x in kinds])
                kind[idx[j]] = kinds[int(rng.choice(len(kinds), p=w / w.sum()))]
    if cand["cellular"] and "cellular" not in kind:
        shared = [i for i in range(n) if kind[i] is not None]
        pick = shared or list(range(n))
        kind[pick[int(rng.integers(len(pick)))]] = "cellular"

    taken: set[Prefix] = set()
    out: list[tuple[str, str]] = []
    for k in kind:
        if k is None:
            out.append((pool.public(), "public"))
            continue
        free = [p for p in cand[k] if p not in taken] or cand[k]
        p = free[int(rng.integers(len(free)))]
        taken.add(p)
        out.append((pool.address_in(p), k))
    return out
