"""Shared test helpers: building event frames and log lines by hand."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pandas as pd
import pytest

from detector.ingest.formats import EVENT_COLUMNS


def events(rows: list[dict]) -> pd.DataFrame:
    """An event frame from dicts with at least client, start and end (duration = end - start)."""
    out = []
    for r in rows:
        r = dict(r)
        r.setdefault("duration", r["end"] - r["start"])
        r.setdefault("method", "GET")
        r.setdefault("path", "/v1/poll")
        r.setdefault("query", "")
        r.setdefault("status", 200)
        r.setdefault("bytes", 0)
        r.setdefault("ua", "ua")
        out.append(r)
    frame = pd.DataFrame(out, columns=list(EVENT_COLUMNS))
    return frame.astype({"status": "int32", "bytes": "int64", "start": "float64", "end": "float64",
                         "duration": "float64"})


def nginx_line(client: str, end: float, duration: float, status: int = 200, uri: str = "/v1/poll?cursor=1",
               ua: str = "Mozilla/5.0", nbytes: int = 0, method: str = "GET") -> bytes:
    """One nginx-json access-log line, as ``log_format ... escape=json`` writes it."""
    return orjson.dumps({
        "msec": f"{end:.3f}", "remote_addr": client, "request_method": method, "request_uri": uri,
        "status": str(status), "body_bytes_sent": str(nbytes), "request_time": f"{duration:.3f}",
        "http_user_agent": ua, "request_id": "0" * 32, "upstream_response_time": "" if math.isnan(duration) else
        f"{duration:.3f}",
    })


def poll_traffic(clients: int = 120, seconds: float = 600.0, t0: float = 1_764_403_200.0, seed: int = 0) -> pd.DataFrame:
    """Ordinary long-poll clients, each in its own /24: 1–25 s holds, re-poll 0.05–1 s later, a handful of user
    agents."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(clients):
        t = t0 + rng.uniform(0, 30)
        while t < t0 + seconds:
            d = float(rng.uniform(1, 25))
            rows.append(dict(client=f"10.1.{c}.7", start=t, end=t + d, status=204 if d > 20 else 200,
                             ua=f"Mozilla/5.0 v{c % 7}", bytes=0 if d > 20 else 400))
            t += d + float(rng.uniform(0.05, 1.0))
    return events(rows).sort_values("end", ignore_index=True)


def reconnect_loop(client: str, t0: float, t1: float, every: float = 0.06) -> pd.DataFrame:
    """A client that aborts each poll after 50 ms and re-polls at once (499s)."""
    return events([dict(client=client, start=t, end=t + 0.05, status=499, ua="python-requests/2.31")
                   for t in np.arange(t0, t1, every)])


@pytest.fixture(scope="session")
def small_model():
    """A real fitted model on ordinary poll traffic (seconds to fit): (model, card)."""
    from detector.features.stream import FeatureStream
    from detector.model import AnomalyModel

    stream = FeatureStream(tick=2.0, lateness=1.0)
    frames = list(stream.push(poll_traffic())) + list(stream.finish())
    raw = np.vstack([f.raw for f in frames])
    clients = np.concatenate([f.clients for f in frames])
    model = AnomalyModel(n_estimators=50, max_samples=512, throttle_fpr=0.01, block_fpr=0.001).fit(raw, groups=clients)
    return model, {"version": "test-1", "features": list(model.feature_names_in_)}


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, small_model):
    """``small_model`` saved as an artifact folder with a ``current`` pointer."""
    from detector.model import save_artifact, set_current

    root = tmp_path_factory.mktemp("models")
    save_artifact(small_model[0], root, "test-1", {"source": "tests"})
    set_current(root, "test-1")
    return root
