"""Watch nginx and detector turn an abusive client away, live, on this machine.

    python deploy/nginx/demo.py [--model models/current] [--seconds 120] [--abuse-after 15] [--keep]

Starts, all on 127.0.0.1 and free ports (nothing else is touched): a toy long-poll API, nginx with
``nginx.conf.template`` in front of it, ``detector serve --tail`` on nginx's access log, three polite
browser-like pollers (127.0.0.2, .4, .5) and, after ``--abuse-after`` seconds, a client in a tight
reconnect loop (127.0.0.3). Prints detector's verdict changes as they happen and, every few seconds,
what each client got from nginx. Needs nginx (Debian: ``apt-get install nginx``); Ctrl-C stops it all.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lab

POLITE = ["127.0.0.2", "127.0.0.4", "127.0.0.5"]
ABUSIVE = "127.0.0.3"


def summary(client: lab.Client, since: float) -> str:
    got = Counter(a.status for a in list(client.answers) if a.at >= since)
    parts = [f"{n}×{'gave up' if s == 0 else s}" for s, n in sorted(got.items())]
    return ", ".join(parts) or "-"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(lab.REPO / "models" / "current"))
    p.add_argument("--seconds", type=float, default=120)
    p.add_argument("--abuse-after", type=float, default=15)
    p.add_argument("--every", type=float, default=3.0, help="seconds between status lines")
    p.add_argument("--keep", action="store_true", help="keep the working folder (logs, nginx.conf)")
    args = p.parse_args()
    if not lab.loopback_sources_work(POLITE + [ABUSIVE]):
        print("cannot bind 127.0.0.2-5 as source addresses (Linux allows it; this system does not)")
        return 2

    folder = Path(tempfile.mkdtemp(prefix="detector-nginx-demo-"))
    closing: list = []
    try:
        api = lab.LongPollAPI().start()
        closing.append(api)
        detector_port = lab.free_port()
        nginx = lab.Nginx(folder / "nginx", api.address, f"127.0.0.1:{detector_port}")
        nginx.check()
        closing.append(nginx.start())
        print(f"nginx on {nginx.url} (config {nginx.conf}); access log {nginx.access_log}")
        detector = lab.Detector(folder / "detector", args.model, tail=[nginx.access_log], port=detector_port,
                                env={"DETECTOR_API__ALLOW_CACHE_SECONDS": "2"})
        print("starting detector ...", flush=True)
        closing.append(detector.start())
        print(f"detector on {detector.url}: try  curl -s '{detector.url}/score?client={ABUSIVE}'")
        front = f"127.0.0.1:{nginx.port}"
        t0 = time.time()
        end = t0 + args.seconds
        clients: list[lab.Client] = [lab.Poller(front, ip, end) for ip in POLITE]
        abusive = lab.ReconnectLoop(front, ABUSIVE, end)
        for c in clients:
            c.start()
            closing.append(c)
        shown = 0
        last = t0
        while time.time() < end:
            time.sleep(0.25)
            if not abusive.is_alive() and abusive.ident is None and time.time() >= t0 + args.abuse_after:
                print(f"[{time.time() - t0:5.1f} s] {ABUSIVE} starts a tight reconnect loop (abort after 50 ms, "
                      "re-poll at once)", flush=True)
                abusive.start()
                clients.append(abusive)
                closing.append(abusive)
            verdicts = detector.verdicts()
            for v in verdicts[shown:]:
                print(f"[{time.time() - t0:5.1f} s] verdict {v['client']}: {v['verdict']} (score {v['score']}, "
                      f"until {v['until']}) {'; '.join(v['reasons'][:2])}", flush=True)
            shown = len(verdicts)
            if time.time() - last >= args.every:
                print(f"[{time.time() - t0:5.1f} s] nginx answers in the last {args.every:g} s: "
                      + " | ".join(f"{c.source}: {summary(c, last)}" for c in clients), flush=True)
                last = time.time()
        if abusive.first_denied:
            print(f"{ABUSIVE} was first turned away {abusive.first_denied - abusive_start(abusive):.1f} s after "
                  "its loop began")
    except KeyboardInterrupt:
        pass
    finally:
        for item in reversed(closing):
            item.close() if hasattr(item, "close") else item.stop()
        if args.keep:
            print(f"kept {folder}")
        else:
            import shutil

            shutil.rmtree(folder, ignore_errors=True)
    return 0


def abusive_start(client: lab.ReconnectLoop) -> float:
    return client.answers[0].at if client.answers else time.time()


if __name__ == "__main__":
    raise SystemExit(main())
