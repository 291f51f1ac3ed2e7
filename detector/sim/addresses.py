"""Client addresses: unique, public-looking IPv4 and IPv6 addresses, plus private ones for probes."""

from __future__ import annotations

import ipaddress

import numpy as np

# First octets of busy public allocations (ISPs, clouds, mobile carriers); none reserved or private.
_V4_FIRST = np.array([23, 31, 37, 45, 46, 62, 66, 68, 71, 73, 76, 77, 79, 81, 82, 83, 84, 85, 86, 87, 88,
                      89, 90, 91, 92, 93, 94, 95, 98, 99, 104, 107, 108, 109, 151, 176, 178, 185, 188,
                      190, 195, 201, 212, 213, 217])
# Global unicast IPv6 blocks held by large ISPs and carriers.
_V6_PREFIX = (0x2A02, 0x2A01, 0x2001, 0x2600, 0x2601, 0x2603, 0x2804, 0x2406, 0x2409, 0x2A00)


class AddressPool:
    """Hands out distinct addresses from one generator; ``v6_share`` of public ones are IPv6."""

    def __init__(self, rng: np.random.Generator, v6_share: float = 0.15) -> None:
        self._rng = rng
        self._v6_share = v6_share
        self._used: set[str] = set()

    def _unique(self, make) -> str:
        while True:
            addr = make()
            if addr not in self._used:
                self._used.add(addr)
                return addr

    def public(self, v6: bool | None = None) -> str:
        rng = self._rng
        if v6 is None:
            v6 = bool(rng.random() < self._v6_share)
        if v6:
            def make() -> str:
                words = rng.integers(0, 0x10000, size=7)
                # Half the hosts use a SLAAC-looking interface id (ff:fe in the middle).
                if rng.random() < 0.5:
                    words[4] = (words[4] & 0xFF00) | 0x00FF
                    words[5] = (words[5] & 0x00FF) | 0xFE00
                packed = int(_V6_PREFIX[int(rng.integers(len(_V6_PREFIX)))])
                for w in words:
                    packed = (packed << 16) | int(w)
                return str(ipaddress.IPv6Address(packed))
        else:
            def make() -> str:
                a = int(rng.choice(_V4_FIRST))
                b, c = (int(x) for x in rng.integers(0, 256, size=2))
                d = int(rng.integers(1, 255))
                return f"{a}.{b}.{c}.{d}"
        return self._unique(make)

    def private(self) -> str:
        """A node or load-balancer address inside the data centre (10.0.0.0/8 or 172.16.0.0/12)."""
        rng = self._rng

        def make() -> str:
            if rng.random() < 0.6:
                return f"10.{int(rng.integers(0, 4))}.{int(rng.integers(0, 256))}.{int(rng.integers(2, 255))}"
            return f"172.31.{int(rng.integers(0, 64))}.{int(rng.integers(2, 255))}"
        return self._unique(make)
