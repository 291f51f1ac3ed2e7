"""User agents the simulated clients send: browsers, mobile apps, libraries, probes and scanners.

Lists are built deterministically (no randomness here); callers pick from them with their own
generator. Browser agents come with popularity weights (newer Chrome on Windows is the most common).
"""

from __future__ import annotations

import numpy as np


def _browser_agents() -> tuple[list[str], list[float]]:
    agents: list[str] = []
    weights: list[float] = []

    def add(ua: str, w: float) -> None:
        agents.append(ua)
        weights.append(w)

    chrome = range(116, 132)
    for v in chrome:
        recency = 1.0 + (v - 116) ** 1.5  # newer versions dominate
        add(f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            f"Chrome/{v}.0.0.0 Safari/537.36", 6.0 * recency)
        add(f"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
            f"Chrome/{v}.0.0.0 Safari/537.36", 2.5 * recency)
        add(f"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
            f"Chrome/{v}.0.0.0 Safari/537.36", 0.6 * recency)
        add(f"Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
            f"Chrome/{v}.0.0.0 Mobile Safari/537.36", 2.0 * recency)
        build = 2000 + 37 * (v - 116)
        add(f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            f"Chrome/{v}.0.0.0 Safari/537.36 Edg/{v}.0.{build}.{(v * 7) % 90 + 10}", 1.5 * recency)
    for v in (115, 119, 121, 123, 125, 127, 128, 129, 130, 131, 132, 133):
        recency = 1.0 + max(0, v - 120) ** 1.2
        if v == 115 or v == 128:  # ESR releases linger in offices
            recency += 6.0
        add(f"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0", 1.2 * recency)
        add(f"Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:{v}.0) Gecko/20100101 Firefox/{v}.0", 0.4 * recency)
        add(f"Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0", 0.4 * recency)
        add(f"Mozilla/5.0 (X11; Linux x86_64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0", 0.2 * recency)
    for v in ("16.6", "17.0", "17.1", "17.2.1", "17.3.1", "17.4.1", "17.5", "17.6", "18.0", "18.0.1", "18.1"):
        add(f"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
            f"Version/{v} Safari/605.1.15", 3.0)
    for ios, ver in (("16_7_10", "16.6.1"), ("17_1_2", "17.1.2"), ("17_4_1", "17.4.1"), ("17_5_1", "17.5.1"),
                     ("17_6_1", "17.6.1"), ("18_0", "18.0"), ("18_0_1", "18.0.1"), ("18_1", "18.1"),
                     ("18_1_1", "18.1.1")):
        add(f"Mozilla/5.0 (iPhone; CPU iPhone OS {ios} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
            f"Version/{ver} Mobile/15E148 Safari/604.1", 3.0)
        add(f"Mozilla/5.0 (iPad; CPU OS {ios} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
            f"Version/{ver} Mobile/15E148 Safari/604.1", 0.6)
    for sv, cv in (("23.0", 115), ("24.0", 117), ("25.0", 121), ("26.0", 122)):
        add(f"Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) "
            f"SamsungBrowser/{sv} Chrome/{cv}.0.0.0 Mobile Safari/537.36", 1.0)
    for v in (112, 113, 114, 115):
        add(f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            f"Chrome/{v + 14}.0.0.0 Safari/537.36 OPR/{v}.0.0.0", 0.4)
    return agents, weights


BROWSER_AGENTS, _bw = _browser_agents()
BROWSER_WEIGHTS = np.asarray(_bw, dtype=float) / sum(_bw)
del _bw

#: The app's own clients (iOS, Android) and the HTTP stacks they report.
MOBILE_AGENTS: tuple[str, ...] = tuple(
    [f"PollApp/{v} (iPhone; iOS {ios}; Scale/3.00)"
     for v in ("5.2.0", "5.3.1", "5.4.0") for ios in ("16.7.10", "17.5.1", "17.6.1", "18.0.1", "18.1")]
    + [f"PollApp/{v} CFNetwork/{cf} Darwin/{dw}"
       for v in ("5.3.1", "5.4.0")
       for cf, dw in (("1490.0.4", "23.2.0"), ("1494.0.7", "23.4.0"), ("1568.100.1", "24.1.0"))]
    + [f"PollApp/{v} (Android {a}; {m})"
       for v in ("5.2.0", "5.3.1", "5.4.0") for a, m in (("12", "SM-A525F"), ("13", "SM-G991B"), ("14", "Pixel 7"),
                                                     ("14", "Pixel 8"), ("14", "SM-S918B"), ("13", "moto g(60)"))]
    + ["okhttp/4.12.0", "okhttp/4.11.0", "okhttp/4.9.3",
       "Dalvik/2.1.0 (Linux; U; Android 14; Pixel 8 Build/AP2A.240805.005)",
       "Dalvik/2.1.0 (Linux; U; Android 13; SM-G991B Build/TP1A.220624.014)"]
)

#: Server-side consumers and scripts.
LIBRARY_AGENTS: tuple[str, ...] = (
    "python-requests/2.31.0", "python-requests/2.32.3", "Go-http-client/1.1", "Go-http-client/2.0",
    "okhttp/4.9.3", "Apache-HttpClient/4.5.14 (Java/17.0.9)", "Java-http-client/17.0.9",
    "aiohttp/3.9.5", "axios/1.6.8", "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)",
    "python-httpx/0.27.0", "curl/8.5.0",
)

#: Load balancer and orchestrator probes.
HEALTH_AGENTS: tuple[str, ...] = (
    "kube-probe/1.29", "kube-probe/1.30", "ELB-HealthChecker/2.0", "GoogleHC/1.0",
    "Consul Health Check", "Blackbox Exporter/0.25.0",
)

#: Vulnerability scanners and what they like to send.
SCANNER_AGENTS: tuple[str, ...] = (
    "sqlmap/1.7.2#stable (https://sqlmap.org)",
    "Mozilla/5.00 (Nikto/2.5.0) (Evasions:None) (Test:000003)",
    "Mozilla/5.0 zgrab/0.x",
    "Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)",
    "masscan/1.3 (https://github.com/robertdavidgraham/masscan)",
    "Mozilla/5.0 (compatible; CensysInspect/1.1; +https://about.censys.io/)",
    "Fuzz Faster U Fool v2.1.0-dev",
    "() { :; }; echo; echo \"shellshock\"",
    # A raw Latin-1 byte (invalid UTF-8): nginx logs it as sent, the writers keep it that way.
    "Mozilla/5.0 (compatible; Scanbot/2.1; +http://scan.example.net/caf\udce9)",
)

#: Plain agents scanners and stuffers hide behind (old browsers, bare libraries, nothing at all).
PLAIN_AGENTS: tuple[str, ...] = (
    "Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/41.0.2228.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/98.0.4758.102 Safari/537.36",
    "curl/7.88.1", "python-requests/2.28.1", "Go-http-client/1.1", "Wget/1.21.3", "",
)


def pick_browser(rng: np.random.Generator, n: int | None = None):
    """One browser agent (or ``n`` of them), drawn by popularity."""
    idx = rng.choice(len(BROWSER_AGENTS), size=n, p=BROWSER_WEIGHTS)
    if n is None:
        return BROWSER_AGENTS[int(idx)]
    return [BROWSER_AGENTS[int(i)] for i in idx]


def office_pool(rng: np.random.Generator, size: int) -> tuple[list[str], np.ndarray]:
    """The agents one office's machines run, with a share for each: managed fleets standardise on a
    few builds, so the first agents carry most users and the tail is laptops and phones."""
    idx = rng.choice(len(BROWSER_AGENTS), size=size, replace=False, p=BROWSER_WEIGHTS)
    weights = 1.0 / np.arange(1, size + 1) ** 0.9
    return [BROWSER_AGENTS[int(i)] for i in idx], weights / weights.sum()
