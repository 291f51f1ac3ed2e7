"""The HTTP edge: ``create_app(service, clock)`` builds the FastAPI application; ``Upkeep`` is the
background thread a server runs beside it.

Pydantic lives here only. Routes answer from what the pipeline and operators already stored; nothing on
the request path calls the model. Only this package and the CLI read the clock (injected, for tests).
The two names load lazily, so the CLI can use ``detector.api.schemas`` without FastAPI and the model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from detector.api.app import create_app
    from detector.api.upkeep import Upkeep

__all__ = ["Upkeep", "create_app"]


def __getattr__(name: str):
    if name == "create_app":
        from detector.api.app import create_app

        return create_app
    if name == "Upkeep":
        from detector.api.upkeep import Upkeep

        return Upkeep
    raise AttributeError(f"module 'detector.api' has no attribute {name!r}")
