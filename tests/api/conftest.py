"""A real uvicorn server on a free port, in a thread, around a real fitted model."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest
import uvicorn

from detector.api import create_app
from detector.config import load_settings
from detector.service import Service


class Clock:
    """A settable wall clock for the app (only the API reads the clock)."""

    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Running:
    def __init__(self, app, port: int):
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                                   lifespan="off", proxy_headers=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{port}"

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(5)


@pytest.fixture
def make_server(model_dir, tmp_path):
    """Build a Service + app with settings overrides and serve it; yields (service, client, clock).

    The store is a fresh SQLite file in ``tmp_path`` unless ``store`` is overridden."""
    running = []

    def make(now: float = 1_764_403_400.0, **overrides):
        overrides.setdefault("model", model_dir)
        overrides.setdefault("store", {"path": str(tmp_path / f"store-{len(running)}.db")})
        settings = load_settings(None, **overrides)
        service = Service.from_settings(settings)
        clock = Clock(now)
        r = Running(create_app(service, clock=clock), free_port()).__enter__()
        r.service = service
        running.append(r)
        return service, httpx.Client(base_url=r.url, timeout=5), clock

    yield make
    for r in running:
        r.__exit__()
        r.service.store.close()


def key(service, role: str = "admin", name: str | None = None) -> dict:
    """Headers carrying a fresh API key of ``role``."""
    _, token = service.store.add_key(name or f"{role}-{len(service.store.keys())}", role, 0.0)
    return {"X-Api-Key": token}
