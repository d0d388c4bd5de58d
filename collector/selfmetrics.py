"""The collector's own metrics, named like the OpenTelemetry Collector's.

So the alerts written for an OpenTelemetry Collector apply unchanged:
``otelcol_receiver_accepted_spans_total``/``..._refused_spans_total`` (and the
``metric_points``/``log_records`` variants), ``otelcol_exporter_sent_*``,
``otelcol_exporter_send_failed_*``, ``otelcol_exporter_enqueue_failed_*`` (refused because
the queue was full), ``otelcol_exporter_queue_size``/``_capacity``. Ours add a ``reason``
label on refusals and a few ``narrows_*`` series (write latency, WAL sync latency,
retention deletes, deduplicated requests and spans).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["SelfMetrics"]

_ITEM = {"traces": "spans", "metrics": "metric_points", "logs": "log_records"}


def _per_signal(
    registry: CollectorRegistry, prefix: str, help_tail: str, labels: list[str]
) -> dict[str, Counter]:
    """One counter per signal, named by the item it counts (``…_spans``, ``…_log_records``),
    as the OpenTelemetry Collector names them."""
    return {
        sig: Counter(f"{prefix}{item}", f"{item} {help_tail}", labels, registry=registry)
        for sig, item in _ITEM.items()
    }


class SelfMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self._accepted = _per_signal(
            r, "otelcol_receiver_accepted_", "accepted by a receiver", ["receiver", "transport"]
        )
        self._refused = _per_signal(
            r,
            "otelcol_receiver_refused_",
            "refused by a receiver, by reason",
            ["receiver", "transport", "reason"],
        )
        self._sent = _per_signal(r, "otelcol_exporter_sent_", "committed to DuckDB", ["exporter"])
        self._failed = _per_signal(
            r,
            "otelcol_exporter_send_failed_",
            "whose DuckDB write failed (kept in the WAL, retried on restart)",
            ["exporter"],
        )
        self._enqueue_failed = _per_signal(
            r,
            "otelcol_exporter_enqueue_failed_",
            "refused with 503 because the queue was full",
            ["exporter"],
        )
        self.queue_bytes = Gauge(
            "otelcol_exporter_queue_size",
            "bytes accepted and not yet committed (bodies being decoded + queued batches)",
            registry=r,
        )
        self.queue_capacity = Gauge(
            "otelcol_exporter_queue_capacity", "the memory bound on queued bytes", registry=r
        )
        self.queue_batches = Gauge(
            "narrows_writer_queue_batches", "acknowledged batches waiting for DuckDB", registry=r
        )
        self.write_seconds = Histogram(
            "narrows_writer_commit_duration_seconds",
            "time to insert and commit one group of batches",
            registry=r,
        )
        self.wal_sync_seconds = Histogram(
            "narrows_wal_sync_duration_seconds",
            "time of one fdatasync of the write-ahead log",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
            registry=r,
        )
        self.retention_deleted = Counter(
            "narrows_retention_deleted_rows",
            "rows deleted by retention (age or size)",
            ["table"],
            registry=r,
        )
        self.deduplicated = Counter(
            "narrows_receiver_deduplicated_requests",
            "requests whose identical body was already stored (retries)",
            ["receiver"],
            registry=r,
        )
        self.duplicate_spans = Counter(
            "narrows_writer_duplicate_spans",
            "spans already stored (same content key) that a later request repeated",
            registry=r,
        )
        self.store_reopened = Counter(
            "narrows_store_reopened",
            "times the DuckDB store was reopened after DuckDB invalidated it (a checkpoint"
            " failed on a full disk)",
            registry=r,
        )
        self.scrape_errors = Counter(
            "narrows_scrape_errors", "failed scrapes", ["target"], registry=r
        )

    def accepted(self, signal: str, receiver: str, n: int) -> None:
        if n:
            self._accepted[signal].labels(receiver=receiver, transport="http").inc(n)

    def refused(self, signal: str, receiver: str, reason: str, n: int) -> None:
        if n:
            self._refused[signal].labels(receiver=receiver, transport="http", reason=reason).inc(n)

    def sent(self, signal: str, n: int) -> None:
        self._sent[signal].labels(exporter="duckdb").inc(n)

    def send_failed(self, signal: str, n: int) -> None:
        self._failed[signal].labels(exporter="duckdb").inc(n)

    def enqueue_failed(self, signal: str, n: int) -> None:
        self._enqueue_failed[signal].labels(exporter="duckdb").inc(n)
