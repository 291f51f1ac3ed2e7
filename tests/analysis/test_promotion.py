"""detector.promotion: version names, the reload call against a stand-in service, hand-over in words."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from detector import promotion as p
from detector.model import save_artifact, set_current


class _Service(BaseHTTPRequestHandler):
    """Answers the reload endpoint like detector's admin API: 200 for the key "admin", 403 otherwise."""

    calls: list = []

    def do_POST(self):  # noqa: N802 - http.server's name
        self.calls.append((self.path, self.headers.get("X-Api-Key")))
        ok = self.headers.get("X-Api-Key") == "admin"
        body = {"previous": "old.1", "version": self.server.serves} if ok else {"message": "access forbidden"}
        payload = json.dumps(body).encode()
        self.send_response(200 if ok else 403)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def service():
    server = HTTPServer(("127.0.0.1", 0), _Service)
    server.serves = "new.1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Service.calls = []
    yield server, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_next_version_takes_the_first_free_number(tmp_path):
    assert p.next_version(tmp_path, "2026-11-29") == "2026-11-29.1"
    (tmp_path / "2026-11-29.1").mkdir()
    (tmp_path / "2026-11-29.2").mkdir()
    assert p.next_version(tmp_path, "2026-11-29") == "2026-11-29.3"
    with pytest.raises(ValueError):
        p.next_version(tmp_path, "../x")


def test_request_reload_ok_refused_and_unreachable(service):
    server, url = service
    ok = p.request_reload(url, "admin")
    assert (ok.reached, ok.ok, ok.version, ok.previous) == (True, True, "new.1", "old.1")
    assert _Service.calls == [("/v1/admin/model/reload", "admin")]
    refused = p.request_reload(url + "/", "bouncer")
    assert (refused.reached, refused.ok) == (True, False) and "403: access forbidden" in refused.message
    gone = p.request_reload(f"http://127.0.0.1:{_closed_port()}", "admin", timeout=2)
    assert (gone.reached, gone.ok) == (False, False) and gone.message.startswith("cannot reach")


def test_cli_commands():
    assert p.cli_commands("models", "v.1") == ["detector models promote v.1 --models-dir models"]
    both = p.cli_commands("/m", "v.1", ["/a b.log"], fmt="nginx-json")
    assert both[1] == "detector train '/a b.log' --format nginx-json --out /m/v.1 --set-current"


@pytest.fixture
def models(tmp_path, small_model):
    model, _ = small_model
    for version in ("old.1", "new.1"):
        save_artifact(model, tmp_path, version)
    set_current(tmp_path, "old.1")
    return tmp_path


def test_hand_over_without_promotion_changes_nothing(models):
    lines = p.hand_over(models, "new.1", promote=False, url="http://x", api_key="admin")
    assert (models / "current").read_text().strip() == "old.1"
    assert "not made current" in lines[0] and any("detector models promote new.1" in line for line in lines)


def test_hand_over_promotes_and_tells_the_service(models, service):
    _server, url = service
    lines = p.hand_over(models, "new.1", promote=True, url=url, api_key="admin")
    assert (models / "current").read_text().strip() == "new.1"
    assert (models / "history").read_text().split() == ["old.1"]  # so `detector models rollback` works
    assert lines[0].endswith("-> new.1 (was old.1)") and "now serves new.1" in lines[1] and len(lines) == 2


def test_hand_over_says_when_the_service_serves_another_folder(models, service):
    server, url = service
    server.serves = "elsewhere.7"
    lines = p.hand_over(models, "new.1", promote=True, url=url, api_key="admin")
    assert any("serves elsewhere.7, not new.1" in line for line in lines)


def test_hand_over_with_no_service_prints_the_cli_way(models):
    lines = p.hand_over(models, "new.1", promote=True, url=f"http://127.0.0.1:{_closed_port()}", api_key="admin",
                        logs=["day.log"])
    assert (models / "current").read_text().strip() == "new.1"
    assert any(line.startswith("cannot reach") for line in lines)
    assert any("detector train day.log --out" in line for line in lines)
    quiet = p.hand_over(models, "new.1", promote=True)
    assert "no service was told" in quiet[-1]


def test_load_current_explains_what_it_cannot_use(tmp_path, models):
    assert p.load_current(models).version == "old.1" and p.load_current(models).problem == ""
    assert "no current model" in p.load_current(tmp_path / "empty").problem
    card = json.loads((models / "old.1" / "card.json").read_text())
    (models / "old.1" / "card.json").write_text(json.dumps({**card, "features": ["something_else"]}))
    stale = p.load_current(models)
    assert stale.model is None and "ModelSchemaError" in stale.problem
