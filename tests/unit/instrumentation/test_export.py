"""Never break the host: bounded queues, drops counted, one warning, bounded shutdown."""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

import pytest

from instrumentation.export import BoundedBatcher
from instrumentation.settings import InstrumentationSettings
from instrumentation.setup import build_telemetry
from narrows.ports import free_port


class Drops:
    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}

    def __call__(self, signal: str, reason: str, count: int) -> None:
        self.counts[(signal, reason)] = self.counts.get((signal, reason), 0) + count


def batcher(export: Any, drops: Drops, **kw: Any) -> BoundedBatcher[int]:
    options: dict[str, Any] = {
        "destination": "test",
        "queue_size": 10,
        "batch_size": 5,
        "delay_s": 0.02,
        "on_drop": drops,
    }
    options.update(kw)
    return BoundedBatcher("traces", export, lambda: None, **options)


def test_a_full_queue_drops_the_oldest_and_counts_without_blocking() -> None:
    release = threading.Event()
    exported: list[int] = []

    def stuck(batch: list[int]) -> bool:
        release.wait(5)
        exported.extend(batch)
        return True

    drops = Drops()
    b = batcher(stuck, drops, batch_size=100, delay_s=60)
    started = time.monotonic()
    for i in range(25):
        b.add(i)
    assert time.monotonic() - started < 0.5
    assert drops.counts == {("traces", "queue_full"): 15}
    release.set()
    assert b.force_flush(2)
    assert exported == list(range(15, 25))
    b.shutdown(1)


def test_export_failures_are_counted_and_warned_about_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    drops = Drops()
    calls = 0

    def failing(batch: list[int]) -> bool:
        nonlocal calls
        calls += 1
        if calls % 2:
            raise ConnectionError("collector unreachable")
        return False

    b = batcher(failing, drops)
    with caplog.at_level(logging.WARNING, logger="instrumentation.export"):
        for round_ in range(6):
            for i in range(5):
                b.add(round_ * 5 + i)
            assert b.force_flush(2)
    assert drops.counts == {("traces", "export_failed"): 30}
    warnings = [r for r in caplog.records if r.name == "instrumentation.export"]
    assert len(warnings) == 1
    assert "collector unreachable" in warnings[0].getMessage()
    b.shutdown(1)


def test_shutdown_returns_within_the_bound_even_if_export_hangs() -> None:
    never = threading.Event()

    def hangs(batch: list[int]) -> bool:
        never.wait(30)
        return True

    drops = Drops()
    b = batcher(hangs, drops)
    for i in range(5):
        b.add(i)
    time.sleep(0.1)  # the worker is now inside export
    b.add(99)
    started = time.monotonic()
    b.shutdown(0.5)
    assert time.monotonic() - started < 1.0
    assert drops.counts.get(("traces", "shutdown")) == 1
    never.set()


def test_after_fork_the_child_starts_empty_and_exports_its_own() -> None:
    exported: list[int] = []
    b = batcher(lambda batch: exported.extend(batch) or True, Drops(), delay_s=60, batch_size=100)
    b.add(1)  # queued in the parent, not yet exported
    pid = os.fork()
    if pid == 0:  # the child: nothing inherited, a worker thread of its own
        code = 0
        try:
            b.add(2)
            ok = b.force_flush(2)
            code = 0 if ok and exported == [2] else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert b.force_flush(2)
    assert exported == [1]
    b.shutdown(1)


def _down_settings(**kw: Any) -> InstrumentationSettings:
    dead = free_port()  # nothing listens here: the collector is "down"
    return InstrumentationSettings.from_env(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{dead}",
            "OTEL_BSP_SCHEDULE_DELAY": "20",
            "OTEL_BLRP_SCHEDULE_DELAY": "20",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "1500",  # give up after one retry: a short test
        },
        service_name="down",
        **kw,
    )


def test_collector_down_spans_are_dropped_counted_and_exporter_noise_folded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    telemetry = build_telemetry(_down_settings())
    tracer = telemetry.tracer()
    with caplog.at_level(logging.WARNING):
        for _ in range(20):
            with tracer.start_as_current_span("work"):
                pass
        assert telemetry.metrics is not None
        deadline = time.monotonic() + 15
        sample = telemetry.metrics.registry.get_sample_value
        labels = {"signal": "traces", "reason": "export_failed"}
        while (sample("narrows_telemetry_dropped_total", labels) or 0) < 1:
            assert time.monotonic() < deadline, "the failed export was never counted"
            time.sleep(0.1)
        started = time.monotonic()
        assert telemetry.shutdown()
        assert time.monotonic() - started < 2.0
    exporter_warnings = [
        r for r in caplog.records if r.name.startswith("opentelemetry.exporter") and r.levelno >= 30
    ]
    ours = [r for r in caplog.records if r.name == "instrumentation.export"]
    assert exporter_warnings == []
    assert len(ours) == 1
    assert "127.0.0.1" in ours[0].getMessage()
    assert "refused" in ours[0].getMessage()  # the root cause, not just "gave up"


def test_shutdown_during_a_retry_against_a_down_collector_is_bounded() -> None:
    telemetry = build_telemetry(_down_settings(shutdown_timeout_s=1.0))
    with telemetry.tracer().start_as_current_span("work"):
        pass
    time.sleep(0.2)  # the exporter is now in its back-off between retries
    started = time.monotonic()
    telemetry.shutdown()
    assert time.monotonic() - started < 1.5


def test_interpreter_exit_with_the_collector_down_is_bounded() -> None:
    """No shutdown() call: the atexit hook flushes within NARROWS_SHUTDOWN_TIMEOUT and returns."""
    import subprocess
    import sys

    dead = free_port()
    script = (
        "from instrumentation import configure\n"
        "import time\n"
        "t = configure(service_name='exit')\n"
        "for _ in range(50):\n"
        "    with t.tracer().start_as_current_span('work'):\n"
        "        pass\n"
        "time.sleep(0.5)  # the first export is now retrying against the dead port\n"
        "print('leaving', flush=True)\n"
    )
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{dead}",
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        "NARROWS_SHUTDOWN_TIMEOUT": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None
    for line in proc.stdout:  # JSON log lines may come first
        if b"leaving" in line:
            break
    left = time.monotonic()
    proc.wait(30)
    # NARROWS_SHUTDOWN_TIMEOUT is 1 s; the rest is interpreter teardown, slow on a loaded
    # machine. Unbounded would be the exporter's retry schedule (tens of seconds).
    assert time.monotonic() - left < 4.0
    assert proc.returncode == 0
    assert b"Traceback" not in proc.stderr.read()
