"""API keys: bouncer keys read decisions, admin keys change them. Only a key's SHA-256 is stored.

A token is shown once, when it is made (``detector keys add``); afterwards the store can only tell
whether a presented token hashes to a known key.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Literal

Role = Literal["bouncer", "admin"]
ROLES: tuple[str, ...] = ("bouncer", "admin")
TOKEN_PREFIX = "dtk_"


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: int
    name: str
    role: str
    hash: str
    created_at: float

    def can(self, role: str) -> bool:
        """Admin keys may do what bouncer keys do; bouncer keys only read."""
        return self.role == "admin" or self.role == role


def new_token() -> str:
    """A fresh random token (256 bits)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The stored form of a token.

    >>> hash_token("abc")[:16]
    'ba7816bf8f01cfea'
    """
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()
