"""Prometheus metrics of the consumer (served by ``ledger consume --metrics-port``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from ledger.service import BatchReport


class ConsumerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events = Counter(
            "ledger_events_total", "Events by type and outcome", ["type", "outcome"], registry=r
        )
        self.undecodable = Counter(
            "ledger_undecodable_total",
            "Records that never became events, by reason",
            ["reason"],
            registry=r,
        )
        self.duplicates = Counter(
            "ledger_duplicate_events_total", "Redelivered events (no effect)", registry=r
        )
        self.batch_seconds = Histogram(
            "ledger_batch_seconds",
            "Time to decode and apply one poll batch",
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.lag = Gauge(
            "ledger_consumer_lag",
            "Records behind the high watermark",
            ["topic", "partition"],
            registry=r,
        )
        self.last_event_time = Gauge(
            "ledger_last_applied_event_time_ms",
            "Event time of the latest applied event",
            registry=r,
        )
        self.db_retries = Counter(
            "ledger_db_retries_total", "Batch retries after database errors", registry=r
        )
        self._lag: dict[tuple[str, int], int] = {}

    def observe_batch(self, report: BatchReport, seconds: float) -> None:
        self.batch_seconds.observe(seconds)
        for event_type, outcomes in report.by_type.items():
            for outcome, n in outcomes.items():
                self.events.labels(event_type, outcome).inc(n)
        if report.duplicates:
            self.duplicates.inc(report.duplicates)
        for reason, n in report.undecodable_reasons.items():
            self.undecodable.labels(reason).inc(n)
        if report.last_event_time is not None:
            self.last_event_time.set(report.last_event_time)

    def set_lag(self, topic: str, partition: int, lag: int) -> None:
        self._lag[(topic, partition)] = lag
        self.lag.labels(topic, str(partition)).set(lag)

    def total_lag(self) -> int:
        return sum(self._lag.values())

    def serve(self, port: int) -> None:
        start_http_server(port, addr="127.0.0.1", registry=self.registry)
