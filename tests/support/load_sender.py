"""An open-loop span sender for the load tests, run as its own process.

Each sender builds its request bodies first (unique spans: every body comes from its own
seed), prints ``ready`` and waits for a line on stdin, so that several senders start
together and body building never counts as sending time. It then sends one request every
``spans_per_request / rate`` seconds, retries a 503/429/connection error after a short
back-off as an exporter would, and prints one JSON line: spans sent and acknowledged,
retries, and the latency of every acknowledged request.

    python -m tests.support.load_sender URL {otlp,gzip,zipkin} RATE SECONDS SEED
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time

import httpx

from benchmarks._payloads import trace_request, zipkin_request

__all__ = ["FORMATS", "main"]

FORMATS = ("otlp", "gzip", "zipkin")
_RETRY_S = 0.2
_GIVE_UP_S = 60.0


def _bodies(fmt: str, count: int, spans: int, seed: int) -> list[bytes]:
    seeds = [seed * 1_000_000 + i for i in range(count)]
    if fmt == "zipkin":
        return [zipkin_request(spans, seed=s) for s in seeds]
    bodies = [trace_request(spans, seed=s) for s in seeds]
    if fmt == "gzip":
        return [gzip.compress(b, compresslevel=6) for b in bodies]
    return bodies


def _target(base: str, fmt: str) -> tuple[str, dict[str, str]]:
    if fmt == "zipkin":
        return base + "/api/v2/spans", {"content-type": "application/json"}
    headers = {"content-type": "application/x-protobuf"}
    if fmt == "gzip":
        headers["content-encoding"] = "gzip"
    return base + "/v1/traces", headers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="load_sender")
    parser.add_argument("url", help="base URL: the OTLP port, or the Zipkin port for zipkin")
    parser.add_argument("format", choices=FORMATS)
    parser.add_argument("rate", type=float, help="spans per second")
    parser.add_argument("seconds", type=float)
    parser.add_argument("seed", type=int)
    parser.add_argument("--spans-per-request", type=int, default=500)
    args = parser.parse_args(argv)
    per = args.spans_per_request
    count = max(1, round(args.rate * args.seconds / per))
    bodies = _bodies(args.format, count, per, args.seed)
    url, headers = _target(args.url, args.format)
    interval = per / args.rate
    print("ready", flush=True)
    sys.stdin.readline()
    latencies: list[float] = []
    retries = 0
    acked = 0
    failed = 0
    started = time.monotonic()
    with httpx.Client(timeout=30, headers=headers) as client:
        for i, body in enumerate(bodies):
            delay = started + i * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            give_up = time.monotonic() + _GIVE_UP_S
            while True:
                t0 = time.perf_counter()
                try:
                    status = client.post(url, content=body).status_code
                except httpx.HTTPError:
                    status = 0
                if status in (200, 202):
                    latencies.append(time.perf_counter() - t0)
                    acked += per
                    break
                if status not in (0, 429, 502, 503, 504) or time.monotonic() > give_up:
                    failed += 1
                    break
                retries += 1
                time.sleep(_RETRY_S)
    finished = time.monotonic()
    result = {
        "format": args.format,
        "spans_sent": count * per,
        "spans_acked": acked,
        "requests": count,
        "failed_requests": failed,
        "retries": retries,
        "seconds": finished - started,
        "latencies_s": latencies,
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
