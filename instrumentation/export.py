"""Bounded, never-blocking batch processors for spans and log records, with drops counted.

Why not the SDK's ``BatchSpanProcessor``: it reports drops only through OpenTelemetry
self-metrics (off by default) and logs a warning per dropped item, and its
``force_flush`` ignores its timeout (opentelemetry-python #4568). The host app needs the
opposite: a bounded queue whose overflow is counted in
``narrows_telemetry_dropped_total{signal, reason}``, one warning per incident rather than
a flood, and a flush/shutdown that returns within a bound whether the collector is up,
down or slow. The exporters themselves are the official ones.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, attach, detach, set_value
from opentelemetry.sdk._logs import LogRecordProcessor
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

__all__ = [
    "EXPORTER_LOGGERS",
    "BoundedBatcher",
    "BoundedLogProcessor",
    "BoundedSpanProcessor",
    "DropCounter",
    "ExportFailureFilter",
]

_log = logging.getLogger("instrumentation.export")
T = TypeVar("T")

#: ``(signal, reason, count)``; reasons: ``queue_full``, ``export_failed``, ``shutdown``,
#: ``redaction_failed`` (a span the redactor could not mask is dropped, never sent as is).
DropCounter = Callable[[str, str, int], None]

#: Loggers of the official exporters; their per-retry warnings are folded into ours.
EXPORTER_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http._log_exporter",
    "opentelemetry.exporter.otlp.proto.http._common",
    "opentelemetry.exporter.otlp.common.http",
    "opentelemetry.exporter.zipkin.json",
)
WARN_EVERY_S = 300.0


class ExportFailureFilter(logging.Filter):
    """Swallows the exporters' retry warnings and keeps them as reasons.

    The exporter logs on every retry of every batch; with the collector down that is a
    line every second. ``BoundedBatcher`` prints one warning per incident instead and
    quotes the first reason logged during the failed export (the root cause, e.g.
    "connection refused", rather than the final "gave up"). At DEBUG level everything
    passes.
    """

    def __init__(self) -> None:
        super().__init__()
        self.seen = 0
        self._recent: collections.deque[tuple[int, str]] = collections.deque(maxlen=16)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        self.seen += 1
        text = record.getMessage()
        self._recent.append((self.seen, text if len(text) <= 300 else text[:299] + "…"))
        return logging.getLogger(record.name).getEffectiveLevel() <= logging.DEBUG

    def first_since(self, mark: int) -> str:
        """The first reason logged after ``mark`` (a value of ``seen``), or ""."""
        return next((text for n, text in list(self._recent) if n > mark), "")


class BoundedBatcher(Generic[T]):
    """A bounded deque drained by one daemon thread; adding never blocks, overflow is counted."""

    def __init__(
        self,
        signal: str,
        export: Callable[[list[T]], bool],
        close_exporter: Callable[[], None],
        *,
        destination: str,
        queue_size: int,
        batch_size: int,
        delay_s: float,
        on_drop: DropCounter,
        failures: ExportFailureFilter | None = None,
    ) -> None:
        self._signal, self._export_fn, self._close_exporter = signal, export, close_exporter
        self._destination = destination
        self._max, self._batch_size, self._delay = queue_size, min(batch_size, queue_size), delay_s
        self._on_drop, self._failures = on_drop, failures
        self._queue: collections.deque[T] = collections.deque(maxlen=queue_size)
        self._stopping = False
        self._healthy = True
        self._exporter_closed = False
        self._next_warning = 0.0
        self._start_thread()
        if hasattr(os, "register_at_fork"):
            ref = weakref.WeakMethod(self._after_fork)
            os.register_at_fork(after_in_child=lambda: (m := ref()) and m())

    def _start_thread(self) -> None:
        self._wake = threading.Event()
        self._flush_waiters: list[threading.Event] = []
        self._thread = threading.Thread(
            target=self._run, name=f"narrows-export-{self._signal}", daemon=True
        )
        self._thread.start()

    def _after_fork(self) -> None:
        """In a forked worker: the parent's queue is the parent's to send (no duplicates)."""
        self._queue.clear()
        if not self._stopping:
            self._start_thread()

    def add(self, item: T) -> None:
        queue = self._queue
        if len(queue) >= self._max:
            self._dropped("queue_full", 1)  # the deque drops the oldest item on append
        queue.append(item)
        if len(queue) >= self._batch_size and not self._wake.is_set():
            self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait(self._delay)
            self._wake.clear()
            self._drain()
            waiters, self._flush_waiters = self._flush_waiters, []
            for done in waiters:
                done.set()
            if self._stopping:
                return

    def _drain(self) -> None:
        token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))  # no spans of our own export
        try:
            while self._queue:
                batch: list[T] = []
                while self._queue and len(batch) < self._batch_size:
                    batch.append(self._queue.popleft())
                self._export(batch)
        finally:
            detach(token)

    def _export(self, batch: list[T]) -> None:
        mark = self._failures.seen if self._failures is not None else 0
        try:
            ok = self._export_fn(batch)
            reason = "" if ok else "the exporter reported a failure"
        except Exception as exc:  # never let an exporter bug reach the worker loop
            ok, reason = False, f"{type(exc).__name__}: {exc}"
        self._healthy = ok
        if ok:
            return
        self._dropped("export_failed", len(batch))
        logged = self._failures.first_since(mark) if self._failures is not None else ""
        reason = logged or reason
        now = time.monotonic()
        if now >= self._next_warning:
            self._next_warning = now + WARN_EVERY_S
            _log.warning(
                "exporting %s to %s failed (%s); dropping them and counting in "
                "narrows_telemetry_dropped_total; the app is unaffected. "
                "This warning repeats at most every %.0f s.",
                self._signal,
                self._destination,
                reason,
                WARN_EVERY_S,
            )

    def _dropped(self, reason: str, count: int) -> None:
        with contextlib.suppress(Exception):  # a counter must never break the request path
            self._on_drop(self._signal, reason, count)

    def force_flush(self, timeout_s: float) -> bool:
        if self._stopping or not self._thread.is_alive():
            return False
        done = threading.Event()
        self._flush_waiters.append(done)
        self._wake.set()
        return done.wait(timeout_s)

    def shutdown(self, timeout_s: float) -> None:
        """Flush what is queued within ``timeout_s``, then close the exporter. Idempotent."""
        if self._stopping:
            return
        deadline = time.monotonic() + timeout_s
        self._stopping = True
        if not self._healthy:
            self._close()  # the collector is known to be down: abort retries now
        self._wake.set()
        self._thread.join(max(0.0, deadline - time.monotonic() - 0.2))
        if self._thread.is_alive():
            self._close()  # interrupts the exporter's retry back-off
            self._thread.join(max(0.0, deadline - time.monotonic()))
        self._close()
        if self._queue:
            self._dropped("shutdown", len(self._queue))
            self._queue.clear()

    def _close(self) -> None:
        if self._exporter_closed:
            return
        self._exporter_closed = True
        try:
            self._close_exporter()
        except Exception:
            _log.debug("closing the %s exporter failed", self._signal, exc_info=True)


class BoundedSpanProcessor(SpanProcessor):
    """Queues sampled spans for a ``SpanExporter`` through a ``BoundedBatcher``.

    ``redact`` (a ``SpanRedactor``) masks secrets in each span of a batch just before it
    is exported, in the export thread: the request path pays nothing for it.
    """

    def __init__(
        self,
        exporter: Any,
        batcher_kwargs: dict[str, Any],
        redact: Callable[[ReadableSpan], ReadableSpan] | None = None,
    ) -> None:
        self.exporter = exporter
        self._redact = redact
        self._on_drop: DropCounter = batcher_kwargs["on_drop"]
        self._batcher: BoundedBatcher[ReadableSpan] = BoundedBatcher(
            "traces", self._send, exporter.shutdown, **batcher_kwargs
        )

    def _send(self, batch: Sequence[ReadableSpan]) -> bool:
        from opentelemetry.sdk.trace.export import SpanExportResult

        if self._redact is not None:
            batch = self._redacted(batch)
            if not batch:
                return True
        return bool(self.exporter.export(batch) == SpanExportResult.SUCCESS)

    def _redacted(self, batch: Sequence[ReadableSpan]) -> list[ReadableSpan]:
        """Each span masked; one that cannot be is dropped and counted, never sent as is."""
        assert self._redact is not None
        out, failed = [], 0
        for span in batch:
            try:
                out.append(self._redact(span))
            except Exception:
                failed += 1
        if failed:
            _log.debug("%d span(s) could not be redacted; dropped", failed)
            with contextlib.suppress(Exception):
                self._on_drop("traces", "redaction_failed", failed)
        return out

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is not None and span.context.trace_flags.sampled:
            self._batcher.add(span)

    def shutdown(self, timeout_s: float = 5.0) -> None:
        self._batcher.shutdown(timeout_s)

    def force_flush(self, timeout_millis: int = 5000) -> bool:
        return self._batcher.force_flush(timeout_millis / 1000)


class BoundedLogProcessor(LogRecordProcessor):
    """Queues log records for a ``LogRecordExporter`` through a ``BoundedBatcher``."""

    def __init__(self, exporter: Any, batcher_kwargs: dict[str, Any]) -> None:
        self.exporter = exporter
        self._batcher: BoundedBatcher[Any] = BoundedBatcher(
            "logs", self._send, exporter.shutdown, **batcher_kwargs
        )

    def _send(self, batch: Sequence[Any]) -> bool:
        result = self.exporter.export(batch)
        return getattr(result, "name", "") == "SUCCESS"

    def on_emit(self, log_record: Any) -> None:
        self._batcher.add(log_record)

    def shutdown(self, timeout_s: float = 5.0) -> None:
        self._batcher.shutdown(timeout_s)

    def force_flush(self, timeout_millis: int = 5000) -> bool:
        return self._batcher.force_flush(timeout_millis / 1000)
