"""The scaled shape's metrics side, without Docker: the real demo (PostgreSQL shards created by
deploy/postgres's init script, Redis cache) under `narrows load`, the Narrows collector standing
in for the OpenTelemetry Collector (same self-metric names), and a private Prometheus scraping
them with the jobs and recording rules of deploy/prometheus."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from narrows.ports import free_port
from tests.conftest import require_program
from tests.support.procs import OwnedProcess, narrows_cmd, wait_for, wait_http
from tests.support.scaled import (
    LOAD_SECONDS,
    SEED_ITEMS,
    SHARDS,
    ScaledStack,
    prometheus_extra_config,
    run_init_script,
    scrape_jobs,
    unique_prefix,
)
from tests.support.servers import PostgresServer, prometheus_server, redis_server
from tests.support.stack import collector_proc


@pytest.fixture(scope="module")
def scaled_stack(
    tmp_path_factory: pytest.TempPathFactory, postgres: PostgresServer
) -> Iterator[ScaledStack]:
    require_program("prometheus")
    require_program("redis-server")
    root = tmp_path_factory.mktemp("scaled")
    prefix = unique_prefix()
    init = run_init_script(postgres, prefix, SHARDS)
    assert init.returncode == 0, init.stderr
    with ExitStack() as stack:
        redis = stack.enter_context(redis_server(root / "redis"))
        collector = stack.enter_context(collector_proc(root / "collector"))
        otel_env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.otlp_url,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_BSP_SCHEDULE_DELAY": "500",
        }
        port = free_port()
        demo = OwnedProcess.start(
            "demo",
            narrows_cmd(
                "demo",
                "--demo-port",
                str(port),
                "--data-dir",
                str(root / "demo"),
                "--seed-items",
                str(SEED_ITEMS),
                "--shards",
                str(SHARDS),
                "--shard-dsn",
                postgres.dsn(prefix + "{i}"),
                "--cache",
                redis.url,
            ),
            root / "logs",
            env={**otel_env, "OTEL_SERVICE_NAME": "narrows-demo"},
        )
        stack.callback(demo.stop)
        demo_url = f"http://127.0.0.1:{port}"
        wait_http(f"{demo_url}/healthz", 90, demo)
        jobs = scrape_jobs(
            {"narrows-demo": f"127.0.0.1:{port}", "otelcol": f"127.0.0.1:{collector.query_port}"}
        )
        prometheus = stack.enter_context(
            prometheus_server(root / "prometheus", [], "1s", prometheus_extra_config(jobs))
        )
        load = OwnedProcess.start(
            "load",
            narrows_cmd(
                "load",
                "--target",
                demo_url,
                "--rate",
                "40",
                "--duration",
                str(LOAD_SECONDS),
                "--keys",
                "zipf:1.1",
                "--max-id",
                str(SEED_ITEMS),
                "--progress",
                "0",
            ),
            root / "logs",
            env={**otel_env, "OTEL_SERVICE_NAME": "narrows-load"},
        )
        stack.callback(load.stop)
        scaled = ScaledStack(prometheus, collector, demo_url, load)

        def warmed_up() -> bool:
            # Rates need two scrapes with traffic between them; the recording rules one round.
            answer = scaled.query("narrows:http_error_ratio:rate5m")
            return (
                bool(answer["data"]["result"])
                and len(
                    scaled.query("count_over_time(http_server_active_requests[1m])")["data"][
                        "result"
                    ]
                )
                > 0
            )

        started = time.monotonic()
        wait_for(warmed_up, 60, "Prometheus to hold the demo's rates and recording rules", load)
        # A few more scrapes so every series (e.g. a rare route) has two points in the window.
        time.sleep(max(0.0, 8 - (time.monotonic() - started)))
        yield scaled
