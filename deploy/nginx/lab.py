"""A small long-poll lab on loopback: nginx with ``nginx.conf.template`` in front of a toy long-poll API,
``detector serve --tail`` on nginx's access log, and two kinds of client.

Used by the end-to-end tests (``tests/e2e``) and by ``demo.py`` (for a person to watch). Everything
listens on 127.0.0.1 on free ports; clients take distinct loopback source addresses (127.0.0.2, ...), so
nginx's ``$remote_addr`` tells them apart without any other network. Every loop here is bounded by a
stop event and a deadline; every process is stopped by ``close()``.

* ``LongPollAPI``: ``GET /v1/poll?cursor=N`` is held until the next message (one every ``every``
  seconds on average, the same timeline for everyone) or ``hold`` seconds (then 204). A poll whose
  client went away is dropped at once. ``GET /v1/ping`` answers at once.
* ``Nginx``: the shipped template rendered into a folder; ``nginx -p DIR -c nginx.conf -g 'daemon off;'``.
* ``Detector``: ``python -m detector serve --tail <access log> --verdicts``; verdict changes on stdout.
* ``Poller``: a polite client, a browser tab: poll, re-poll 0.1-0.6 s after each answer, honour
  ``Retry-After``.
* ``ReconnectLoop``: the abusive client: opens a poll, gives up after ~50 ms (nginx logs a 499) and
  opens the next at once, some 15 a second.
* ``Pinger``: a polite monitor: ``GET /v1/ping?seq=N`` once a second.
* ``ParallelFlood``: another: holds ``width`` polls open at once, each re-opened as soon as it ends.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "nginx.conf.template"
REPO = HERE.parents[1]
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0"
SCRIPT = "python-requests/2.32.3"
MONITOR = "Uptime-Kuma/1.23.16"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def render(template: str, values: dict[str, str]) -> str:
    """Fill ``${NAME}`` placeholders (upper-case names only; nginx's own ``$vars`` stay); all must be given."""
    out = re.sub(r"\$\{([A-Z_]+)\}", lambda m: values[m.group(1)], template)
    left = re.findall(r"\$\{[A-Z_]+\}", out)
    if left:
        raise KeyError(f"unfilled placeholders: {left}")
    return out


def wait_until(ready, timeout: float, what: str, proc: subprocess.Popen | None = None, step: float = 0.05) -> None:
    """Poll ``ready()`` until true; raise after ``timeout`` seconds or if ``proc`` exits first."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not ready after {timeout} s")
        time.sleep(step)


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


# -- the long-poll API ----------------------------------------------------------------------------
class LongPollAPI:
    """See the module docstring. ``start()`` serves in a thread; ``close()`` stops."""

    def __init__(self, hold: float = 5.0, every: float = 3.0, seed: int = 0, host: str = "127.0.0.1") -> None:
        self.hold = hold
        self.every = every
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._messages = [time.time()]
        self.served: dict[int, int] = {}
        lab = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                if self.path.startswith("/v1/ping"):  # answered at once (for checks that must not wait)
                    self._answer(200, b'{"pong":true}')
                    return
                if not self.path.startswith("/v1/poll"):
                    self._answer(404, b'{"message":"not found"}')
                    return
                now = time.time()
                due = lab.next_message(now)
                wait = min(due, now + lab.hold) - now
                readable, _, _ = select.select([self.connection], [], [], max(wait, 0.0))
                if readable:  # the client (nginx) went away: nothing to answer
                    self.close_connection = True
                    return
                if due <= now + lab.hold:
                    self._answer(200, json.dumps({"messages": [{"at": due}]}).encode())
                else:
                    self._answer(204, b"")

            def _answer(self, status: int, body: bytes) -> None:
                with lab._lock:
                    lab.served[status] = lab.served.get(status, 0) + 1
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if body:
                        self.wfile.write(body)
                except OSError:
                    pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.address = f"{host}:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="longpoll-api", daemon=True)

    def next_message(self, now: float) -> float:
        """The time of the first message after ``now`` (messages come ``every`` seconds on average)."""
        with self._lock:
            while self._messages[-1] <= now:
                self._messages.append(self._messages[-1] + self._rng.expovariate(1.0 / self.every))
            for t in self._messages:
                if t > now:
                    break
            if len(self._messages) > 1000:
                self._messages = self._messages[-10:]
            return t

    def start(self) -> LongPollAPI:
        self._thread.start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- nginx ----------------------------------------------------------------------------------------
class Nginx:
    """nginx with the shipped configuration, rendered into ``folder`` (logs, cache and temp files there)."""

    def __init__(self, folder: Path, app: str, detector: str, port: int | None = None,
                 template: Path = TEMPLATE) -> None:
        self.binary = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
        if self.binary is None:
            raise FileNotFoundError("nginx is not installed (Debian: apt-get install -y nginx)")
        self.folder = Path(folder)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        logs, state = self.folder / "logs", self.folder / "state"
        logs.mkdir(parents=True, exist_ok=True)
        state.mkdir(parents=True, exist_ok=True)
        self.access_log = logs / "access.json.log"
        self.error_log = logs / "error.log"
        self.conf = self.folder / "nginx.conf"
        self.conf.write_text(render(template.read_text(), {
            "LISTEN": f"127.0.0.1:{self.port}", "APP": app, "DETECTOR": detector, "LOGS": str(logs),
            "STATE": str(state)}))
        self.proc: subprocess.Popen | None = None

    def _command(self, *extra: str) -> list[str]:
        # as root, workers would run as "nobody" and could not reach a private temp folder
        directives = "daemon off;" + (" user root;" if os.geteuid() == 0 else "")
        return [self.binary, "-p", str(self.folder), "-c", str(self.conf), "-e", str(self.error_log),
                "-g", directives, *extra]

    def check(self) -> None:
        """``nginx -t`` on the rendered configuration; raises with nginx's message if it is refused."""
        done = subprocess.run(self._command("-t"), capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise RuntimeError(f"nginx -t failed: {done.stderr.strip()}")

    def start(self, timeout: float = 15.0) -> Nginx:
        self.access_log.touch()
        self.proc = subprocess.Popen(self._command(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_until(lambda: port_open("127.0.0.1", self.port), timeout, "nginx", self.proc)
        return self

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: workers finish, then exit
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


# -- detector -------------------------------------------------------------------------------------
class Detector:
    """``detector serve`` as a subprocess on a free port, following ``tail`` (if given), verdicts on stdout."""

    def __init__(self, folder: Path, model: str | Path, tail: list[Path] = (), port: int | None = None,
                 env: dict[str, str] | None = None, args: list[str] = ()) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.address = f"127.0.0.1:{self.port}"
        self.stdout = self.folder / "verdicts.jsonl"
        self.stderr = self.folder / "detector.log"
        self.env = {**os.environ, "DETECTOR_MODEL": str(model), "DETECTOR_STORE__PATH": str(self.folder / "detector.db"),
                    "PYTHONUNBUFFERED": "1", **(env or {})}
        self.command = [sys.executable, "-m", "detector", "serve", "--port", str(self.port), "--verdicts",
                        *(["--tail", *map(str, tail)] if tail else []), *args]
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> Detector:
        out, err = open(self.stdout, "ab"), open(self.stderr, "ab")
        self.proc = subprocess.Popen(self.command, env=self.env, stdout=out, stderr=err, cwd=self.folder)
        out.close()
        err.close()

        def ready() -> bool:
            try:
                return self.get("/readyz")[0] == 200
            except OSError:
                return False

        try:
            wait_until(lambda: port_open("127.0.0.1", self.port) and ready(), timeout, "detector serve", self.proc,
                       step=0.1)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{exc}\n{self.stderr.read_text()[-3000:]}") from None
        return self

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path, headers=headers or {})
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def metrics(self) -> dict[str, float]:
        """``/metrics`` as {'name{labels}': value}."""
        _, _, body = self.get("/metrics")
        out = {}
        for line in body.decode().splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def verdicts(self) -> list[dict]:
        """The verdict changes printed so far (JSON lines)."""
        if not self.stdout.exists():
            return []
        out = []
        for line in self.stdout.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        """``kill -9``."""
        if self.proc is not None:
            self.signal(signal.SIGKILL)
            self.proc.wait(10)

    def close(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()


# -- clients --------------------------------------------------------------------------------------
@dataclass
class Answer:
    at: float  # wall time the request was sent
    status: int  # 0: no answer (gave up, or a connection error)
    decision: str = ""  # X-Authz-Decision, when nginx passed detector's verdict on
    retry_after: str = ""


@dataclass(eq=False)  # threads must stay hashable
class Client(threading.Thread):
    """A client thread with a loopback source address; ``answers`` records every request."""

    base: str  # nginx "127.0.0.1:PORT"
    source: str  # e.g. "127.0.0.2"
    deadline: float  # wall time at which it stops, whatever happens
    answers: list[Answer] = field(default_factory=list)
    stop_event: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        threading.Thread.__init__(self, name=f"client-{self.source}", daemon=True)
        host, port = self.base.rsplit(":", 1)
        self.host, self.port = host, int(port)

    def running(self) -> bool:
        return not self.stop_event.is_set() and time.time() < self.deadline

    def stop(self) -> None:
        self.stop_event.set()
        self.join(10)

    def statuses(self, since: float = 0.0) -> list[int]:
        return [a.status for a in list(self.answers) if a.at >= since]

    def get(self, path: str, agent: str, timeout: float = 40.0) -> Answer:
        """One ``GET`` from ``source`` on a connection of its own; recorded in ``answers``."""
        sent = time.time()
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout, source_address=(self.source, 0))
        try:
            conn.request("GET", path, headers={"User-Agent": agent})
            r = conn.getresponse()
            r.read()
            answer = Answer(sent, r.status, r.getheader("X-Authz-Decision", ""), r.getheader("Retry-After", ""))
        except OSError:
            answer = Answer(sent, 0)
        finally:
            conn.close()
        self.answers.append(answer)
        return answer


class Poller(Client):
    """The polite client (see the module docstring)."""

    def run(self) -> None:
        rng = random.Random(self.source)
        cursor = 0
        while self.running():
            answer = self.get(f"/v1/poll?cursor={cursor}", BROWSER)
            cursor += answer.status == 200
            pause = float(answer.retry_after) if answer.retry_after.isdigit() else rng.uniform(0.1, 0.6)
            self.stop_event.wait(pause if answer.status else 1.0)


class Pinger(Client):
    """A polite client of another kind, a monitor: ``GET /v1/ping?seq=N`` (answered at once) every ``every``
    seconds."""

    every: float = 1.0

    def run(self) -> None:
        seq = 0
        while self.running():
            seq += 1
            self.get(f"/v1/ping?seq={seq}", MONITOR, timeout=10)
            self.stop_event.wait(self.every)


class ReconnectLoop(Client):
    """The abusive client (see the module docstring): ``first_denied`` is when detector's verdict reached it."""

    patience: float = 0.05

    def __post_init__(self) -> None:
        super().__post_init__()
        self.first_denied: float | None = None

    def run(self) -> None:
        request = (f"GET /v1/poll?cursor=0 HTTP/1.1\r\nHost: {self.host}\r\nUser-Agent: {SCRIPT}\r\n"
                   "Accept: */*\r\n\r\n").encode()
        while self.running():
            sent = time.time()
            answer = Answer(sent, 0)
            try:
                with socket.create_connection((self.host, self.port), timeout=2, source_address=(self.source, 0)) as s:
                    s.sendall(request)
                    answer = self._read_head(s, sent + self.patience)
            except OSError:
                pass
            self.answers.append(answer)
            if answer.decision in ("throttle", "block") and self.first_denied is None:
                self.first_denied = sent
            rest = sent + self.patience - time.time()
            if rest > 0:  # a denial comes at once: keep the pace at ~one attempt per 50 ms anyway
                self.stop_event.wait(rest)

    @staticmethod
    def _read_head(s: socket.socket, until: float) -> Answer:
        sent = until - ReconnectLoop.patience
        data = b""
        while b"\r\n\r\n" not in data:
            left = until - time.time()
            if left <= 0:
                return Answer(sent, 0)  # give up: nginx logs a 499
            s.settimeout(left)
            try:
                piece = s.recv(4096)
            except TimeoutError:
                return Answer(sent, 0)
            if not piece:
                break
            data += piece
        head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        if not head or not head[0].startswith("HTTP/"):
            return Answer(sent, 0)
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])}
        return Answer(sent, int(head[0].split()[1]), headers.get("x-authz-decision", ""),
                      headers.get("retry-after", ""))


class ParallelFlood(Client):
    """The other abusive client (see the module docstring): ``width`` threads each poll in a loop, all
    opened within ``ramp`` seconds. ``answers`` holds every finished poll."""

    width: int = 30
    ramp: float = 1.0

    def run(self) -> None:
        polls = [threading.Thread(target=self._poll_loop, args=(i,), daemon=True) for i in range(self.width)]
        for i, poll in enumerate(polls):
            if self.stop_event.wait(self.ramp / self.width):
                break
            poll.start()
        for poll in polls:
            if poll.is_alive():
                poll.join()

    def _poll_loop(self, i: int) -> None:
        while self.running():
            answer = self.get(f"/v1/poll?cursor=0&n={i}", SCRIPT)
            if answer.status in (403, 429) or not answer.status:
                self.stop_event.wait(0.5)


def loopback_sources_work(sources: list[str]) -> bool:
    """True if this machine lets us bind these loopback addresses (Linux routes all of 127/8 locally)."""
    for source in sources:
        try:
            with socket.socket() as s:
                s.bind((source, 0))
        except OSError:
            return False
    return True
