"""Which client an ``/authz`` request is about: ``X-Client-Id``, ``X-Real-IP``, or X-Forwarded-For.

The headers are believed only from the gateway itself (a trusted proxy) or when no trusted proxies are
configured and the gateway is the direct peer; the last resort is the TCP peer address.
"""

from __future__ import annotations

from fastapi import Request

from detector.ingest.identity import Network, client_from_forwarded, in_networks


def client_of(request: Request, trusted: tuple[Network, ...]) -> str:
    peer = request.client.host if request.client else ""
    headers = request.headers
    explicit = headers.get("x-client-id") or headers.get("x-real-ip")
    if explicit and (not trusted or in_networks(peer, trusted)):
        return explicit.strip()
    forwarded = headers.get("x-forwarded-for")
    if forwarded and trusted:
        return client_from_forwarded(peer, forwarded, trusted)
    return peer
