"""`narrows dashboard`: run the Streamlit app with safe defaults."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

__all__ = ["add_arguments", "run", "streamlit_argv"]

APP = Path(__file__).with_name("app.py")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dashboard-port", type=int, default=8501, help="port (default 8501)")
    parser.add_argument("--listen", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--query-url",
        default=None,
        help="Narrows collector query API (default $NARROWS_QUERY_URL or http://127.0.0.1:16686)",
    )
    parser.add_argument(
        "--source",
        choices=["narrows", "prometheus+jaeger+loki"],
        default=None,
        help="telemetry backend (default $NARROWS_SOURCE or narrows)",
    )
    parser.add_argument(
        "--prometheus-url",
        default=None,
        help="with prometheus+jaeger+loki: $NARROWS_PROMETHEUS_URL",
    )
    parser.add_argument(
        "--jaeger-url", default=None, help="with prometheus+jaeger+loki: $NARROWS_JAEGER_URL"
    )
    parser.add_argument(
        "--loki-url", default=None, help="with prometheus+jaeger+loki: $NARROWS_LOKI_URL"
    )


def streamlit_argv(port: int, listen: str) -> list[str]:
    """The streamlit command; security settings are flags so no config file can weaken them."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.port",
        str(port),
        "--server.address",
        listen,
        "--server.headless",
        "true",
        "--server.enableXsrfProtection",
        "true",
        "--client.showErrorDetails",
        "none",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
    ]


def run(args: argparse.Namespace) -> int:
    env = dict(os.environ)
    if args.query_url:
        env["NARROWS_QUERY_URL"] = args.query_url
    for flag, name in (
        ("source", "NARROWS_SOURCE"),
        ("prometheus_url", "NARROWS_PROMETHEUS_URL"),
        ("jaeger_url", "NARROWS_JAEGER_URL"),
        ("loki_url", "NARROWS_LOKI_URL"),
    ):
        value = getattr(args, flag, None)
        if value:
            env[name] = value
    argv = streamlit_argv(args.dashboard_port, args.listen)
    # Replace this process, so signals reach Streamlit directly.
    os.execve(sys.executable, argv, env)
