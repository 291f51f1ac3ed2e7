"""``detector serve`` as a real process with a SQLite store: decisions added through the admin API
survive ``kill -9`` and a restart, with their expiry, and so do the allowlist, keys and bouncer cursors."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args: str, env: dict) -> str:
    done = subprocess.run([sys.executable, "-m", "detector", *args], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def serve(port: int, env: dict, log) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "detector", "serve", "--port", str(port)], env=env,
                            stdout=log, stderr=log)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"detector serve did not start (exit {proc.poll()})")
        time.sleep(0.1)


def test_decisions_survive_kill_9(tmp_path, model_dir):
    env = {**os.environ, "DETECTOR_STORE__PATH": str(tmp_path / "detector.db"),
           "DETECTOR_MODEL": str(model_dir / "current"), "DETECTOR_API__WATCH_INTERVAL": "0.2"}
    admin = {"X-Api-Key": cli("keys", "add", "--role", "admin", "ops", env=env)}
    bouncer = {"X-Api-Key": cli("keys", "add", "--role", "bouncer", "edge", env=env)}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(tmp_path / "serve.log", "wb") as log:
        proc = serve(port, env, log)
        try:
            for body in ({"value": "203.0.113.9", "type": "ban", "duration": "4h", "reason": "stuffing"},
                         {"value": "198.51.100.0/24", "type": "throttle", "duration": "30m"},
                         {"value": "2001:db8::7", "type": "ban", "duration": 2},
                         {"value": "192.0.2.1", "type": "allow", "duration": "1h"}):
                assert httpx.post(f"{url}/v1/admin/decisions", json=body, headers=admin).status_code == 201
            assert httpx.post(f"{url}/v1/admin/allowlist", json={"value": "192.0.2.128/25"}, headers=admin).status_code == 201
            before = httpx.get(f"{url}/v1/admin/decisions", headers=admin).json()
            startup = httpx.get(f"{url}/v1/decisions/stream", params={"startup": "true"}, headers=bouncer).json()
            assert len(startup["new"]) == 3  # the allow is not for bouncers
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        proc = serve(port, env, log)
        try:
            short = next(d for d in before if d["value"] == "2001:db8::7")
            time.sleep(max(0.0, short["until_epoch"] - time.time() + 0.05))  # it ends while down or just after
            after = httpx.get(f"{url}/v1/admin/decisions", params={"all": "true"}, headers=admin).json()
            assert {(d["id"], d["value"], d["type"], d["until_epoch"]) for d in after} == \
                {(d["id"], d["value"], d["type"], d["until_epoch"]) for d in before}
            active = {d["value"] for d in after if d["active"]}
            assert active == {"203.0.113.9", "198.51.100.0/24", "192.0.2.1"}
            assert httpx.get(f"{url}/authz", headers={"X-Real-IP": "203.0.113.9"}).status_code == 403
            assert httpx.get(f"{url}/authz", headers={"X-Real-IP": "198.51.100.20"}).status_code == 429
            allowlist = httpx.get(f"{url}/v1/admin/allowlist", headers=admin).json()
            assert [e["value"] for e in allowlist] == ["192.0.2.128/25"]
            # the bouncer's cursor survived: it hears only of the ban that expired meanwhile
            step = httpx.get(f"{url}/v1/decisions/stream", headers=bouncer).json()
            assert step["new"] is None and [d["value"] for d in step["deleted"]] == ["2001:db8::7"]
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)
