"""The feature catalogue: which function runs on which window, how it is transformed, how it reads.

Adding a feature is one function in ``functions.py``, one line here and one hand-computed test.
The order of ``FEATURES`` is the model's feature schema; a model trained on another schema is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from detector.features import functions as f
from detector.features.view import ClientEvents, refused


@dataclass(frozen=True)
class FeatureSpec:
    """One model input: ``fn`` over a window of ``window`` seconds; ``log`` asks the model to ``log1p`` it.

    ``ceiling`` marks a count of what one program does (per user agent), where more is worse: a client
    beyond the most any training client ever reached is suspicious by that alone (``AnomalyModel.beyond``).
    Counts of how many people share an address (among them the open requests of its busiest user agent:
    colleagues on one browser build behind a NAT), neighbours' traffic and timing shapes are not ceilings;
    nor are bytes, which depend on what the site serves (a page of images, a download) more than on what
    the client does: a model trained on a long-poll API's small answers blocked 39 readers of a blog's
    images and downloads when bytes had ceilings.
    """

    name: str
    window: float
    fn: Callable[[ClientEvents], np.ndarray]
    label: str  # plain words for reasons: "<label> <value><unit> (normal <lo>–<hi><unit>)"
    unit: str = ""
    log: bool = True
    context: bool = False  # describes everyone at this moment, so never named as a client's reason
    ceiling: bool = False
    #: False: not an input of the forest, read only past its ceiling (``AnomalyModel``). For a count that
    #: nearly every training client has at 0: as a column of the forest, its few training clients above 0
    #: (a person mistyping a password) were isolated by it, and raised the calibrated thresholds.
    forest: bool = True
    #: the events (by status) the function reads, where not all: a window longer than every window
    #: reading all events holds only these (``FeatureStream``), so that it costs memory only for them
    only: Callable[[np.ndarray], np.ndarray] | None = None

    def __post_init__(self) -> None:
        if not self.forest and not self.ceiling:
            raise ValueError(f"{self.name}: a feature outside the forest is read only past its ceiling")


#: How the prefix-summed counts (``functions._fleet_per_ua_string_per_minute``) read.
_FLEET = "per minute per user-agent string, all addresses of the /24 (/64) summed"

FEATURES: tuple[FeatureSpec, ...] = (
    FeatureSpec("rpm_10s", 10, f.requests_per_minute, "requests per minute (last 10 s)"),
    FeatureSpec("aborts_per_ua_10s", 10, f.aborts_per_ua_per_minute,
                "aborted requests (499) per minute per user agent (last 10 s)", ceiling=True),
    FeatureSpec("client_errors_top_ua_10s", 10, f.client_errors_top_ua_per_minute,
                "4xx answers per minute of its most refused user agent (last 10 s)", ceiling=True),
    FeatureSpec("busiest_ua_concurrency_10s", 10, f.busiest_agent_concurrency,
                "open requests of its busiest user agent (last 10 s)"),
    FeatureSpec("concurrency_per_ua_10s", 10, f.concurrency_per_ua, "open requests per user agent (last 10 s)",
                ceiling=True),
    FeatureSpec("quick_per_ua_10s", 10, f.quick_requests_per_ua_per_minute,
                "requests answered within 1 s, per minute per user agent (last 10 s)", ceiling=True),
    FeatureSpec("bytes_per_ua_10s", 10, f.bytes_per_ua_per_minute,
                "response bytes per minute per user agent (last 10 s)"),
    FeatureSpec("rpm_per_ua_10s", 10, f.requests_per_ua_per_minute, "requests per minute per user agent (last 10 s)",
                ceiling=True),
    FeatureSpec("server_errors_per_ua_10s", 10, f.server_errors_per_ua_per_minute,
                "5xx answers per minute per user agent (last 10 s)", ceiling=True),
    FeatureSpec("paths_per_ua_10s", 10, f.paths_per_ua, "distinct paths per user agent (last 10 s)", ceiling=True),
    FeatureSpec("early_empty_per_ua_10s", 10, f.early_empty_answers_per_ua_per_minute,
                "empty answers within a quarter of the server's hold time, per minute per user agent (last 10 s)",
                ceiling=True),
    FeatureSpec("repeats_top_read_10s", 10, f.repeated_answers_top_read_per_minute,
                "answers to the request it asked for most again once answered, per minute per user agent (last 10 s)",
                ceiling=True),
    FeatureSpec("rpm_60s", 60, f.requests_per_minute, "requests per minute"),
    FeatureSpec("user_agents_60s", 60, f.user_agents, "distinct user agents"),
    FeatureSpec("rpm_per_ua_60s", 60, f.requests_per_ua_per_minute, "requests per minute per user agent",
                ceiling=True),
    FeatureSpec("aborts_per_ua_60s", 60, f.aborts_per_ua_per_minute,
                "aborted requests (499) per minute per user agent", ceiling=True),
    FeatureSpec("client_errors_top_ua_60s", 60, f.client_errors_top_ua_per_minute,
                "4xx answers per minute of its most refused user agent", ceiling=True),
    FeatureSpec("refusals_top_ua_300s", 300, f.refusals_top_ua,
                "refused attempts (4xx but 429, 499; a read refused again counts once) of its most refused "
                "user agent (last 5 min)",
                ceiling=True, forest=False, only=refused),
    FeatureSpec("throttled_per_ua_60s", 60, f.throttled_per_ua_per_minute,
                "429 answers per minute per user agent", ceiling=True),
    FeatureSpec("server_errors_per_ua_60s", 60, f.server_errors_per_ua_per_minute,
                "5xx answers per minute per user agent", ceiling=True),
    FeatureSpec("hold_share_60s", 60, f.hold_share, "median hold as a share of the server's hold time",
                log=False),
    FeatureSpec("early_empty_per_ua_60s", 60, f.early_empty_answers_per_ua_per_minute,
                "empty answers within a quarter of the server's hold time, per minute per user agent",
                ceiling=True),
    FeatureSpec("concurrency_per_ua_60s", 60, f.concurrency_per_ua, "open requests per user agent", ceiling=True),
    FeatureSpec("busiest_ua_concurrency_60s", 60, f.busiest_agent_concurrency,
                "open requests of its busiest user agent"),
    FeatureSpec("gap_60s", 60, f.median_gap_seconds, "re-requests after each response in", " s"),
    FeatureSpec("gap_after_error_60s", 60, f.gap_after_error_seconds,
                "retries after a 429/5xx in", " s"),
    FeatureSpec("bytes_60s", 60, f.bytes_per_request, "bytes per response"),
    FeatureSpec("bytes_per_ua_60s", 60, f.bytes_per_ua_per_minute, "response bytes per minute per user agent"),
    FeatureSpec("quick_per_ua_60s", 60, f.quick_requests_per_ua_per_minute,
                "requests answered within 1 s, per minute per user agent", ceiling=True),
    FeatureSpec("paths_per_ua_60s", 60, f.paths_per_ua, "distinct paths per user agent", ceiling=True),
    FeatureSpec("failed_paths_per_ua_60s", 60, f.failed_paths_per_ua,
                "distinct paths answered with an error (4xx, 5xx; not 429, 499) per user agent", ceiling=True),
    FeatureSpec("unprompted_read_seconds_10s", 10, f.unprompted_read_seconds_per_minute,
                "seconds in which it asked for something new that no poll answer prompted, per minute (last 10 s)",
                ceiling=True),
    FeatureSpec("unprompted_read_seconds_60s", 60, f.unprompted_read_seconds_top_ua,
                "seconds in which it asked for something new that no poll answer prompted", ceiling=True),
    FeatureSpec("path_entropy_60s", 60, f.path_entropy, "path entropy", " bits", log=False),
    FeatureSpec("outside_poll_share_60s", 60, f.outside_poll_share,
                "share of requests outside the long-poll endpoint", log=False),
    FeatureSpec("repeats_top_read_60s", 60, f.repeated_answers_top_read_per_minute,
                "answers to the request it asked for most again once answered, per minute per user agent",
                ceiling=True),
    FeatureSpec("replayed_polls_top_read_60s", 60, f.replayed_polls_top_read_per_minute,
                "answers to the poll it asked for most again once answered, per minute per user agent",
                ceiling=True),
    FeatureSpec("repeated_bytes_top_read_60s", 60, f.repeated_bytes_top_read_per_minute,
                "bytes of answers to the request it asked for most again once answered, per minute per user agent"),
    FeatureSpec("writes_per_ua_10s", 10, f.writes_per_ua_per_minute,
                "writes (POST, PUT, DELETE, ...) per minute per user agent (last 10 s)", ceiling=True),
    FeatureSpec("writes_per_ua_60s", 60, f.writes_per_ua_per_minute,
                "writes (POST, PUT, DELETE, ...) per minute per user agent", ceiling=True),
    FeatureSpec("written_paths_per_ua_60s", 60, f.written_paths_per_ua,
                "distinct things written to (POST, PUT, DELETE, ...; record ids taken out of the path) per user agent",
                ceiling=True),
    FeatureSpec("quick_one_off_agents_60s", 60, f.quick_one_off_agents,
                "user agents seen on a single request, answered within 1 s", ceiling=True),
    FeatureSpec("open_surge_per_ua_10s", 10, f.open_surge_per_ua,
                "requests open now beyond its mean over the last 10 s, per user agent", ceiling=True),
    FeatureSpec("prefix_addresses_60s", 60, f.prefix_addresses, "active addresses in its /24 (/64)"),
    FeatureSpec("prefix_rpm_per_ua_60s", 60, f.prefix_requests_per_ua_per_minute,
                "requests per minute per user agent of its whole /24 (/64)"),
    FeatureSpec("prefix_failures_per_ua_60s", 60, f.prefix_failures_per_ua_per_minute,
                "4xx answers per minute per user agent of its whole /24 (/64)"),
    FeatureSpec("fleet_client_errors_per_ua_10s", 10, f.fleet_client_errors_per_ua_per_minute,
                f"refused requests (4xx but 429, 499) {_FLEET} (last 10 s)", ceiling=True),
    FeatureSpec("fleet_client_errors_per_ua_60s", 60, f.fleet_client_errors_per_ua_per_minute,
                f"refused requests (4xx but 429, 499) {_FLEET}", ceiling=True),
    FeatureSpec("fleet_early_empty_per_ua_10s", 10, f.fleet_early_empty_answers_per_ua_per_minute,
                f"empty answers within a quarter of the server's hold time {_FLEET} (last 10 s)", ceiling=True),
    FeatureSpec("fleet_early_empty_per_ua_60s", 60, f.fleet_early_empty_answers_per_ua_per_minute,
                f"empty answers within a quarter of the server's hold time {_FLEET}", ceiling=True),
    FeatureSpec("irregularity_60s", 60, f.timing_irregularity,
                "timing irregularity (0 = machine-perfect)", log=False),
    FeatureSpec("population_failing_10s", 10, f.population_failing_share,
                "share of all clients getting 5xx/429 (last 10 s)", log=False, context=True),
)

FEATURE_NAMES: tuple[str, ...] = tuple(s.name for s in FEATURES)
WINDOWS: tuple[float, ...] = tuple(sorted({s.window for s in FEATURES}))
SPECS: dict[str, FeatureSpec] = {s.name: s for s in FEATURES}


def compute_raw(views: dict[float, ClientEvents], specs: tuple[FeatureSpec, ...] = FEATURES) -> np.ndarray:
    """Raw (untransformed) feature matrix, one row per client of the views, one column per spec."""
    return np.column_stack([spec.fn(views[spec.window]) for spec in specs]) if specs else np.empty((0, 0))

