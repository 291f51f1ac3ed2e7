"""How numbers read in the summary and the report ("n/a" for undefined ones)."""

from __future__ import annotations


def ratio(x: float | None, digits: int = 3) -> str:
    """
    >>> ratio(0.91234), ratio(None), ratio(0.0004, 4)
    ('0.912', 'n/a', '0.0004')
    """
    return "n/a" if x is None else f"{x:.{digits}f}"


def signed(x: float | None, digits: int = 3) -> str:
    """
    >>> signed(0.25), signed(-0.1), signed(None)
    ('+0.250', '-0.100', 'n/a')
    """
    return "n/a" if x is None else f"{x:+.{digits}f}"


def seconds(x: float | None) -> str:
    """
    >>> seconds(4.25), seconds(95), seconds(600), seconds(None)
    ('4.2 s', '95 s', '10.0 min', 'n/a')
    """
    if x is None:
        return "n/a"
    if abs(x) >= 300:
        return f"{x / 60:.1f} min"
    return f"{x:.1f} s" if abs(x) < 10 else f"{x:.0f} s"


def count_of(n: int, total: int) -> str:
    """
    >>> count_of(2, 8), count_of(0, 0)
    ('2/8 (25.0%)', '0/0')
    """
    return f"{n}/{total} ({100 * n / total:.1f}%)" if total else f"{n}/{total}"


def label(name: str) -> str:
    """A class or group name as a heading word.

    >>> label("nat_office"), label("active_in_outage")
    ('NAT offices', 'active in the outage')
    """
    return {"nat_office": "NAT offices", "consumer": "consumers", "active_in_outage": "active in the outage",
            "other": "other normal clients"}.get(name, name.replace("_", " "))
