"""Who a request comes from: the client key, including the first untrusted hop of X-Forwarded-For.

Used by the parsers (log field ``http_x_forwarded_for``) and by the HTTP edge (``/authz`` headers), so
both key a client the same way.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """Parse IPs and CIDRs into networks; raise ``ValueError`` naming the bad entry.

    >>> parse_networks(["10.0.0.0/8", "192.0.2.7"])
    (IPv4Network('10.0.0.0/8'), IPv4Network('192.0.2.7/32'))
    """
    nets = []
    for value in values:
        try:
            nets.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"not an IP address or CIDR: {value!r}") from exc
    return tuple(nets)


@lru_cache(maxsize=65536)
def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip().strip("[]"))
    except ValueError:
        return None


def in_networks(value: str, networks: tuple[Network, ...]) -> bool:
    """True if ``value`` is an address inside one of ``networks`` (False for non-addresses).

    >>> in_networks("10.1.2.3", parse_networks(["10.0.0.0/8"]))
    True
    """
    addr = _address(value)
    return addr is not None and any(addr.version == n.version and addr in n for n in networks)


def client_from_forwarded(remote_addr: str, forwarded_for: str, trusted: tuple[Network, ...]) -> str:
    """The first untrusted hop: walk X-Forwarded-For from the right, skipping trusted proxies.

    Only when the direct peer (``remote_addr``) is itself a trusted proxy is the header believed.

    >>> trusted = parse_networks(["10.0.0.0/8"])
    >>> client_from_forwarded("10.0.0.5", "203.0.113.9, 10.0.0.7", trusted)
    '203.0.113.9'
    >>> client_from_forwarded("198.51.100.1", "203.0.113.9", trusted)  # untrusted peer: header ignored
    '198.51.100.1'
    """
    if not forwarded_for or not in_networks(remote_addr, trusted):
        return remote_addr
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not in_networks(hop, trusted):
            return hop
    return hops[0] if hops else remote_addr


@lru_cache(maxsize=65536)
def prefix_of(client: str, v4_bits: int = 24, v6_bits: int = 64) -> str:
    """The IPv4 /24 or IPv6 /64 a client address belongs to; non-addresses are their own prefix.

    >>> prefix_of("203.0.113.9"), prefix_of("2001:db8::1")
    ('203.0.113.0/24', '2001:db8::/64')
    """
    addr = _address(client)
    if addr is None:
        return client
    bits = v4_bits if addr.version == 4 else v6_bits
    return str(ipaddress.ip_network(f"{addr}/{bits}", strict=False))


def overlaps_networks(value: str, networks: tuple[Network, ...]) -> bool:
    """True if the address or CIDR ``value`` shares any address with one of ``networks``.

    >>> nets = parse_networks(["198.51.100.7"])
    >>> overlaps_networks("198.51.100.0/24", nets), overlaps_networks("198.51.101.0/24", nets)
    (True, False)
    """
    try:
        net = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        return False
    return any(net.version == n.version and net.overlaps(n) for n in networks)
