"""API keys at the HTTP edge: ``X-Api-Key`` checked against the store's hashed keys.

Bouncer keys read (``/v1/decisions``, the stream), admin keys also write (``/v1/admin/...``). A missing,
unknown or too-weak key is answered 403 ``{"message":"access forbidden"}``, as CrowdSec's LAPI does.
"""

from __future__ import annotations

from typing import Callable

from fastapi import Security
from fastapi.security import APIKeyHeader

from detector.api.errors import Forbidden
from detector.store import ApiKey, Store

HEADER = "X-Api-Key"
api_key_header = APIKeyHeader(name=HEADER, auto_error=False,
                              description="a bouncer key (read) or an admin key (read and write), "
                                          "made with `detector keys add`")


def requires(store: Store, role: str) -> Callable[..., ApiKey]:
    """A FastAPI dependency: the presented key, if it may act as ``role``; else 403."""
    def check(token: str | None = Security(api_key_header)) -> ApiKey:
        key = store.authenticate(token)
        if key is None or not key.can(role):
            raise Forbidden()
        return key
    return check


def optional(store: Store, required: bool) -> Callable[..., ApiKey | None]:
    """For endpoints open unless ``api.require_key``: then any valid key will do."""
    def check(token: str | None = Security(api_key_header)) -> ApiKey | None:
        if not required:
            return None
        key = store.authenticate(token)
        if key is None:
            raise Forbidden()
        return key
    return check
