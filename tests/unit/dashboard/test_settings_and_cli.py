"""Dashboard settings fall back on bad values; the launcher pins the security flags."""

from __future__ import annotations

import argparse

import pytest

from dashboard import cli
from dashboard.settings import DashboardSettings


def test_defaults_bind_nothing_and_read_the_local_collector() -> None:
    s = DashboardSettings.from_env({})
    assert (s.source, s.query_url, s.loki_url) == ("narrows", "http://127.0.0.1:16686", None)


def test_scaled_source_urls_are_read() -> None:
    s = DashboardSettings.from_env(
        {
            "NARROWS_SOURCE": "prometheus+jaeger+loki",
            "NARROWS_PROMETHEUS_URL": "http://prom:9090/",
            "NARROWS_JAEGER_URL": "http://jaeger:16686",
            "NARROWS_LOKI_URL": "http://loki:3100",
        }
    )
    assert s.source == "prometheus+jaeger+loki"
    assert s.prometheus_url == "http://prom:9090"
    assert s.loki_url == "http://loki:3100"


@pytest.mark.parametrize(
    ("name", "value", "field", "default"),
    [
        ("NARROWS_SOURCE", "elastic", "source", "narrows"),
        ("NARROWS_QUERY_URL", "ftp://x", "query_url", "http://127.0.0.1:16686"),
        ("NARROWS_LOKI_URL", "loki:3100", "loki_url", None),
        ("NARROWS_DASHBOARD_TIMEOUT", "-1", "timeout_s", 5.0),
        ("NARROWS_SLO_AVAILABILITY", "1.5", "slo_availability", 0.999),
        ("NARROWS_SLO_LATENCY_MS", "fast", "slo_latency_ms", 250.0),
    ],
)
def test_a_bad_value_warns_and_uses_the_default(
    name: str, value: str, field: str, default: object, caplog: pytest.LogCaptureFixture
) -> None:
    assert getattr(DashboardSettings.from_env({name: value}), field) == default
    assert name in caplog.text


def test_streamlit_runs_with_xsrf_on_and_error_details_off() -> None:
    argv = cli.streamlit_argv(8501, "127.0.0.1")
    flags = dict(zip(argv[5::2], argv[6::2], strict=False))
    assert flags["--server.enableXsrfProtection"] == "true"
    assert flags["--client.showErrorDetails"] == "none"
    assert flags["--server.address"] == "127.0.0.1"
    assert flags["--browser.gatherUsageStats"] == "false"


def test_the_listen_default_is_loopback() -> None:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(["--source", "prometheus+jaeger+loki", "--loki-url", "http://l"])
    assert args.listen == "127.0.0.1"
    assert args.loki_url == "http://l"
