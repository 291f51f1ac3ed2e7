"""What a decision or allowlist entry is about (an IP, a CIDR, or any other client key), and the index
that finds every item covering a client in a few dictionary look-ups.

``/authz`` asks "which decisions cover this address?" on every request. Exact values sit in one dict;
CIDRs sit in one dict per (IP version, prefix length), keyed by the network number, so a look-up costs
one probe per prefix length in use (a handful), never a scan over decisions.

Writers replace whole tuples and dicts (copy-on-write under the store's lock), so readers on other
threads never iterate a container that is being changed.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache
from typing import Generic, Protocol, TypeVar

SCOPE_IP, SCOPE_RANGE, SCOPE_CLIENT = "Ip", "Range", "Client"
_BITS = {4: 32, 6: 128}


@dataclass(frozen=True, slots=True)
class Target:
    """A parsed value: ``scope`` Ip / Range / Client, its canonical text, and for addresses the network."""

    scope: str
    value: str
    version: int = 0  # 4 or 6; 0 for a non-address client key
    network: int = 0  # the address (Ip) or network number (Range) as an integer
    prefix: int = 0  # prefix length: 32 / 128 for an Ip

    @property
    def is_address(self) -> bool:
        return self.version != 0

    def covers(self, other: Target) -> bool:
        """True if every address of ``other`` lies inside this target (or both are the same key).

        >>> target_of("10.0.0.0/8").covers(target_of("10.1.2.3")), target_of("10.1.2.3").covers(target_of("10.0.0.0/8"))
        (True, False)
        """
        if not self.is_address or not other.is_address:
            return self.value == other.value
        if self.version != other.version or self.prefix > other.prefix:
            return False
        shift = _BITS[self.version] - self.prefix
        return (other.network >> shift) == (self.network >> shift)


@lru_cache(maxsize=65536)
def target_of(value: str) -> Target:
    """Parse an IP, a CIDR (host bits dropped) or any other client key into its canonical ``Target``.

    >>> target_of("10.0.0.7/24"), target_of(" 2001:db8::1 ").value, target_of("198.51.100.4/32").scope
    (Target(scope='Range', value='10.0.0.0/24', version=4, network=167772160, prefix=24), '2001:db8::1', 'Ip')
    >>> target_of("api-key:abc").scope
    'Client'
    """
    text = value.strip()
    try:
        if "/" in text:
            net = ipaddress.ip_network(text, strict=False)
            bits = _BITS[net.version]
            if net.prefixlen == bits:
                return Target(SCOPE_IP, str(net.network_address), net.version, int(net.network_address), bits)
            return Target(SCOPE_RANGE, str(net), net.version, int(net.network_address), net.prefixlen)
        addr = ipaddress.ip_address(text.strip("[]"))
        return Target(SCOPE_IP, str(addr), addr.version, int(addr), _BITS[addr.version])
    except ValueError:
        return Target(SCOPE_CLIENT, text)


def network_target(value: str) -> Target:
    """``target_of`` for operator input, which must be an IP or a CIDR; ``ValueError`` otherwise."""
    target = target_of(value)
    if not target.is_address:
        raise ValueError(f"not an IP address or CIDR: {value!r}")
    return target


class HasValue(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def value(self) -> str: ...


T = TypeVar("T", bound=HasValue)


class PrefixIndex(Generic[T]):
    """Items (with a unique ``id``) keyed by their value's ``Target``; ``covering`` finds those covering a target."""

    def __init__(self) -> None:
        self._exact: dict[str, tuple[T, ...]] = {}
        self._ranges: dict[tuple[int, int], dict[int, tuple[T, ...]]] = {}
        self._lengths: tuple[tuple[int, int], ...] = ()  # (version, prefix) in use, longest prefix first

    def add(self, item: T) -> None:
        t = target_of(item.value)
        if t.scope != SCOPE_RANGE:
            self._exact[t.value] = self._exact.get(t.value, ()) + (item,)
            return
        key = (t.version, t.prefix)
        bucket = self._ranges.get(key)
        if bucket is None:
            bucket = self._ranges[key] = {}
            self._lengths = tuple(sorted(self._ranges, key=lambda k: (k[0], -k[1])))
        net = t.network >> (_BITS[t.version] - t.prefix)
        bucket[net] = bucket.get(net, ()) + (item,)

    def remove(self, item: T) -> None:
        t = target_of(item.value)
        if t.scope != SCOPE_RANGE:
            _drop(self._exact, t.value, item)
            return
        key = (t.version, t.prefix)
        bucket = self._ranges.get(key)
        if bucket is None:
            return
        _drop(bucket, t.network >> (_BITS[t.version] - t.prefix), item)
        if not bucket:
            self._lengths = tuple(k for k in self._lengths if k != key)
            del self._ranges[key]

    def covering(self, value: str | Target) -> list[T]:
        """Every item whose value is ``value`` itself or a CIDR containing it."""
        t = value if isinstance(value, Target) else target_of(value)
        found = list(self._exact.get(t.value, ()))
        if t.is_address:
            for version, prefix in self._lengths:
                if version == t.version and prefix <= t.prefix:
                    bucket = self._ranges.get((version, prefix))  # a writer may have just dropped it
                    hit = bucket.get(t.network >> (_BITS[version] - prefix)) if bucket else None
                    if hit:
                        found.extend(hit)
        return found

    def exact(self, value: str) -> tuple[T, ...]:
        """Items whose value is exactly ``value`` (after canonicalisation)."""
        t = target_of(value)
        if t.scope != SCOPE_RANGE:
            return self._exact.get(t.value, ())
        bucket = self._ranges.get((t.version, t.prefix), {})
        return bucket.get(t.network >> (_BITS[t.version] - t.prefix), ())

    def __len__(self) -> int:
        return sum(map(len, self._exact.values())) + sum(
            len(items) for bucket in self._ranges.values() for items in bucket.values())


def _drop(table: dict, key, item) -> None:
    items = tuple(i for i in table.get(key, ()) if i.id != item.id)
    if items:
        table[key] = items
    else:
        table.pop(key, None)
