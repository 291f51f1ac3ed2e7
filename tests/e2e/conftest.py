"""End-to-end fixtures: the lab of ``deploy/nginx/lab.py`` (nginx, a long-poll API, ``detector serve`` as a
process, clients on loopback addresses) and the model it serves.

nginx comes from Debian's package (``.ci/run`` installs it); without it these tests are skipped, except
under CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "deploy" / "nginx" / "lab.py"
SHIPPED_MODEL = REPO / "models" / "current"
SOURCES = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]


def _load_lab():
    spec = importlib.util.spec_from_file_location("detector_nginx_lab", LAB)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def lab():
    return _load_lab()


@pytest.fixture(scope="session")
def nginx_ready(lab):
    """nginx is installed and loopback source addresses can be bound; else skip (fail under CI)."""
    missing = None
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        missing = "nginx is not installed (apt-get install -y nginx; .ci/run does it)"
    elif not lab.loopback_sources_work(SOURCES):
        missing = f"cannot bind the loopback source addresses {SOURCES}"
    if missing:
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)


@pytest.fixture(scope="session")
def served_model(tmp_path_factory) -> Path:
    """The shipped model (``models/current``); if it does not load with this code (being retrained), one
    trained here the same way on 20 simulated minutes without attacks (about 20 s)."""
    from detector.model import ModelSchemaError, load_artifact

    try:
        load_artifact(SHIPPED_MODEL)
        return SHIPPED_MODEL
    except (ModelSchemaError, FileNotFoundError) as exc:
        print(f"\nshipped model unusable ({str(exc)[:120]}...); training a stand-in", file=sys.stderr)
    root = tmp_path_factory.mktemp("e2e-model")
    t0 = time.monotonic()
    for args in (["simulate", "--minutes", "20", "--no-attacks", "--seed", "101", "--clients", "400",
                  "--out", str(root / "sim")],
                 ["train", str(root / "sim" / "access.log"), "--out", str(root / "models" / "standin"),
                  "--trees", "100", "--set-current"]):
        done = subprocess.run([sys.executable, "-m", "detector", *args], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    print(f"stand-in model trained in {time.monotonic() - t0:.1f} s", file=sys.stderr)
    return root / "models" / "current"


@pytest.fixture
def cleanup():
    """Things to close at the end of the test, last first (processes, servers, client threads)."""
    items: list = []
    yield items
    for item in reversed(items):
        try:
            item.close() if hasattr(item, "close") else item.stop()
        except Exception as exc:  # keep closing the rest
            print(f"cleanup of {item!r} failed: {exc}", file=sys.stderr)
