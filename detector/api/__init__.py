"""The HTTP edge: ``create_app(settings, service, clock)`` builds the FastAPI application.

Pydantic lives here only. Routes answer from what the pipeline already stored; nothing on the request
path calls the model. Only this package and the CLI read the clock (injected, for tests).
"""

from detector.api.app import create_app

__all__ = ["create_app"]
