"""Scenario 8, instrumentation side: secrets sent in headers and query strings, logged by a
careless app, quoted in an exception, or carried by an outgoing call never reach the
collector unmasked — checked in what the real collector stored, spans and logs alike."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.integration.instrumentation.conftest import AppStarter, get_trace, logs_of, traceparent
from tests.support.stack import CollectorProc

pytestmark = pytest.mark.integration
SECRETS = {
    "authorization": "Bearer SECRET-AUTH-0123456789",
    "cookie": "session=SECRET-COOKIE-abcdef",
    "x-api-key": "SECRET-HEADER-KEY",
    "proxy-authorization": "Basic U0VDUkVULVBST1hZ",
}
QUERY = "token=SECRET-QUERY-TOKEN&password=SECRET-QUERY-PASSWORD&api_key=SECRET-QUERY-KEY&page=1"


def test_no_secret_reaches_the_collector_from_headers_queries_logs_or_calls(
    collector: CollectorProc, start_app: AppStarter
) -> None:
    proc, url = start_app(
        "shop",
        {
            "NARROWS_TEST_INSTRUMENT": "1",
            "OTEL_SERVICE_NAME": "shop",
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.otlp_url,
            "NARROWS_ACCESS_LOG": "true",
            # even if someone switches on header capture, secret headers stay masked
            "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST": "authorization,x-api-key",
        },
    )
    careless_id, careless_tp = traceparent(1, "5e")
    resp = httpx.get(
        f"{url}/careless?{QUERY}", headers={**SECRETS, "traceparent": careless_tp}, timeout=10
    )
    assert resp.status_code == 500
    proxy_id, proxy_tp = traceparent(2, "5e")
    resp = httpx.get(
        f"{url}/proxy?{QUERY}", headers={**SECRETS, "traceparent": proxy_tp}, timeout=10
    )
    assert resp.status_code == 200

    careless = get_trace(collector, careless_id, want=1)
    proxied = get_trace(collector, proxy_id, want=3)  # server, client, the nested server
    logs = logs_of(collector, careless_id, want=2)  # the careless line and the access line
    stored = json.dumps([careless, proxied, logs])
    leaked = [s for s in ("SECRET-", "hunter2", "U0VDUkVU") if s in stored]
    assert leaked == [], stored[:3000]
    # ...and they were there to mask: the telemetry says where.
    assert stored.count("[REDACTED]") >= 6
    client = next(s for _, s in proxied if "url.full" in json.dumps(s))
    assert "page=2" in json.dumps(client)  # ordinary parameters stay readable
    assert "SECRET" not in proc.log()  # stdout, the other way logs leave
