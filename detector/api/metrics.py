"""``/metrics``: Prometheus text from a registry of this app's own (never the global one).

* ``detector_http_requests_total`` / ``detector_http_request_seconds``, by endpoint (the route's path
  template) and decision (``/authz``'s answer; ``-`` elsewhere); the counter also by status code;
* ``detector_decisions_active`` by type, origin and simulated, counted at scrape time;
* ``detector_lines_read_total``, ``detector_lines_ingested_total``, ``detector_lines_rejected_total``
  (by reason) and ``detector_lines_skipped_total`` (by record type: Envoy's periodic records), from
  ``Service.stats``;
* ``detector_model_info{version}``, ``detector_model_reloads_total{result}``;
* ``detector_scoring_seconds`` (a histogram of each scoring tick) and ``detector_scored_rows_total``.

Live ingestion (``detector.feeds``), per source (``tail:PATH``, ``stdin``, ``http``, ``demo``), adding up
exactly at every scrape: received = parsed + malformed + skipped (lines); parsed = queued + processed +
failed + rejected_full (events):

* ``detector_ingest_received_lines_total``, ``detector_ingest_parsed_lines_total``,
  ``detector_ingest_malformed_lines_total``, ``detector_ingest_skipped_lines_total``, ``detector_ingest_rejected_full_events_total`` (the queue
  was full: HTTP answered 503), ``detector_ingest_processed_events_total``,
  ``detector_ingest_failed_events_total``, ``detector_ingest_queued_events`` (gauge) and
  ``detector_ingest_queue_capacity_events``;
* ``detector_ingest_requests_total{result}`` (``POST /v1/ingest``: accepted, queue_full, too_large,
  bad_body, unsupported_encoding, forbidden);
* ``detector_tail_offset_bytes{source}`` (committed) and ``detector_tail_events_total{source,event}``
  (resumed, rotated, truncated, lost, cut);
* ``detector_events_late_total`` (older than ``features.lateness`` behind the newest: dropped),
  ``detector_clients_tracked``, ``detector_clients_refused_total`` and ``detector_events_refused_total``
  (past ``features.max_clients``), ``detector_clients_evicted_total`` (idle), ``detector_observations``
  and ``detector_observations_evicted_total`` (past ``store.max_observations``);
* from start records: ``detector_open_requests`` (begun, not yet ended), and
  ``detector_start_records_total{outcome}``: ``closed`` by their end, ``expired`` (no end within
  ``features.max_open``: many of these mean the start and end records of a request do not match, and
  the open-requests feature is not read), ``refused`` (past ``features.max_open_requests``); and
  ``detector_start_records_matched_ratio``, the share of recent ends that found their start record:
  below 0.9 the open-requests feature is not read (ends of a location that writes no start lines, a
  filter that rewrites the path between the two records).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Callable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from detector.ingest.offsets import source_key
from detector.service import Service
from detector.store.decisions import DECISION_TYPES, ORIGINS

if TYPE_CHECKING:
    from detector.feeds import Ingestion

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_SCORING_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ServiceCollector(Collector):
    """Numbers read from the service at scrape time."""

    def __init__(self, service: Service, clock: Callable[[], float]) -> None:
        self.service = service
        self.clock = clock

    def describe(self):
        return []  # collected only at scrape time

    def collect(self):
        service = self.service
        active = GaugeMetricFamily("detector_decisions_active", "decisions in force",
                                   labels=["type", "origin", "simulated"])
        counts = service.store.counts(self.clock())
        keys = {(t, o, False) for t in DECISION_TYPES for o in ORIGINS} | set(counts)
        for t, o, sim in sorted(keys):
            active.add_metric([t, o, str(sim).lower()], counts.get((t, o, sim), 0))
        yield active
        stats = service.stats
        yield CounterMetricFamily("detector_lines_read", "log lines read", value=stats.read)
        yield CounterMetricFamily("detector_lines_ingested", "log lines parsed into events", value=stats.parsed)
        rejected = CounterMetricFamily("detector_lines_rejected", "malformed log lines skipped", labels=["reason"])
        for reason, n in sorted(stats.malformed.items()):
            rejected.add_metric([reason], n)
        yield rejected
        skipped = CounterMetricFamily("detector_lines_skipped", "records of no request's start or end, passed over",
                                      labels=["type"])
        for kind, n in sorted(stats.skipped.items()):
            skipped.add_metric([kind], n)
        yield skipped
        info = GaugeMetricFamily("detector_model_info", "the model serving (value 1)", labels=["version"])
        info.add_metric([service.version], 1)
        yield info
        reloads = CounterMetricFamily("detector_model_reloads", "model reloads", labels=["result"])
        for result in ("ok", "refused"):
            reloads.add_metric([result], service.reloads.get(result, 0))
        yield reloads
        yield CounterMetricFamily("detector_scored_rows", "client rows scored", value=service.scoring.rows)
        stream = service.pipeline.stream
        c = stream.counters
        yield CounterMetricFamily("detector_ticks", "scoring ticks closed (event time)", value=c.ticks)
        yield CounterMetricFamily("detector_events_late", "events older than the lateness allows (dropped)",
                                  value=c.late)
        yield GaugeMetricFamily("detector_clients_tracked", "clients the feature stream holds", value=stream.tracked_clients)
        yield CounterMetricFamily("detector_clients_refused", "new clients not tracked (features.max_clients reached)",
                                  value=c.refused_clients)
        yield CounterMetricFamily("detector_events_refused", "events of clients not tracked (features.max_clients)",
                                  value=c.refused_events)
        yield CounterMetricFamily("detector_clients_evicted", "idle clients forgotten by the feature stream",
                                  value=c.evicted_clients)
        yield GaugeMetricFamily("detector_open_requests", "requests begun (start records) and not yet ended",
                                value=stream.open_requests)
        yield GaugeMetricFamily("detector_start_records_matched_ratio",
                                f"share of recent ends that closed a start record (open requests are read at "
                                f">= {stream.min_matched}; NaN without start records)", value=stream.matched_share)
        opened = CounterMetricFamily("detector_start_records", "start records by what became of them",
                                     labels=["outcome"])
        for outcome, n in (("closed", c.open_closed), ("expired", c.open_expired), ("refused", c.open_refused)):
            opened.add_metric([outcome], n)
        yield opened
        yield GaugeMetricFamily("detector_observations", "clients whose latest score is kept", value=len(service.store))
        yield CounterMetricFamily("detector_observations_evicted", "observations dropped (store.max_observations)",
                                  value=service.pipeline.evicted_observations)


class IngestCollector(Collector):
    """The ingest queue's per-source counts and the tail sources' offsets, read at scrape time."""

    def __init__(self, ingestion: Ingestion) -> None:
        self.ingestion = ingestion

    def describe(self):
        return []

    def collect(self):
        ingestion = self.ingestion
        queue = ingestion.queue
        counts = queue.counts()
        families = {
            "received": CounterMetricFamily("detector_ingest_received_lines", "lines read by a source",
                                            labels=["source"]),
            "parsed": CounterMetricFamily("detector_ingest_parsed_lines", "lines parsed into events", labels=["source"]),
            "malformed": CounterMetricFamily("detector_ingest_malformed_lines", "lines rejected by the parser",
                                             labels=["source"]),
            "skipped": CounterMetricFamily("detector_ingest_skipped_lines",
                                           "records of no request's start or end, passed over", labels=["source"]),
            "rejected_full": CounterMetricFamily("detector_ingest_rejected_full_events",
                                                 "events refused because the ingest queue was full", labels=["source"]),
            "processed": CounterMetricFamily("detector_ingest_processed_events", "events pushed through the pipeline",
                                             labels=["source"]),
            "failed": CounterMetricFamily("detector_ingest_failed_events", "events whose pipeline push failed",
                                          labels=["source"]),
            "queued": GaugeMetricFamily("detector_ingest_queued_events", "events waiting in the ingest queue",
                                        labels=["source"]),
        }
        for source, n in sorted(counts.items()):
            for name, value in n.as_dict().items():
                families[name].add_metric([source], value)
        yield from families.values()
        yield GaugeMetricFamily("detector_ingest_queue_capacity_events", "events the ingest queue holds at most",
                                value=queue.capacity)
        offsets = GaugeMetricFamily("detector_tail_offset_bytes", "committed offset of a followed file",
                                    labels=["source"])
        events = CounterMetricFamily("detector_tail_events", "what happened to a followed file",
                                     labels=["source", "event"])
        book = ingestion.book.snapshot()
        for source, tailer in sorted(ingestion.tailers.items()):
            position = book.get(source_key(tailer.path))
            offsets.add_metric([source], position.offset if position else 0)
            for event in ("resumed", "rotated", "truncated", "lost", "cut"):
                events.add_metric([source, event], tailer.counts.get(event, 0))
        yield offsets
        yield events


class Metrics:
    """The app's registry and the instruments the middleware and the pipeline feed."""

    def __init__(self, service: Service, clock: Callable[[], float], ingestion: Ingestion | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.ingest_requests = Counter("detector_ingest_requests", "POST /v1/ingest requests by outcome", ["result"],
                                       registry=self.registry)
        self.requests = Counter("detector_http_requests", "HTTP requests", ["endpoint", "decision", "code"],
                                registry=self.registry)
        self.latency = Histogram("detector_http_request_seconds", "HTTP request latency", ["endpoint", "decision"],
                                 buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.scoring = Histogram("detector_scoring_seconds", "time to score one tick (model + policy + store)",
                                 buckets=_SCORING_BUCKETS, registry=self.registry)
        self.registry.register(ServiceCollector(service, clock))
        if ingestion is not None:
            self.registry.register(IngestCollector(ingestion))
        pipeline = service.pipeline
        if pipeline.timer is None:
            pipeline.timer = time.perf_counter
        pipeline.on_tick.append(lambda seconds, rows: self.scoring.observe(seconds))


class MetricsMiddleware:
    """Pure ASGI middleware: counts and times every HTTP request by route and ``/authz`` decision."""

    def __init__(self, app, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        seen = {"code": "500", "decision": "-"}

        async def record(message) -> None:
            if message["type"] == "http.response.start":
                seen["code"] = str(message["status"])
                for name, value in message.get("headers", ()):
                    if name == b"x-authz-decision":
                        seen["decision"] = value.decode("latin-1")
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(endpoint, seen["decision"], seen["code"]).inc()
            self.metrics.latency.labels(endpoint, seen["decision"]).observe(time.perf_counter() - started)
