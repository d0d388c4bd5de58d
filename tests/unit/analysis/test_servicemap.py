"""The service map: calls from client/server pairs, edges with rate, errors, p95 and network
time, and the edges that stand out from their peers — on hand-built traces, on the micro
topology's synthetic traffic with and without replica faults, and on a real Zipkin trace."""

from __future__ import annotations

from pathlib import Path

import pytest

from dashboard.analysis.servicemap import EXTERNAL, calls_frame, hops, service_map
from tests.support.synthetic_micro import CATALOG, GATEWAY, Fault, MicroScenario, generate
from tests.unit.analysis.helpers import server, span, trace, zipkin_trace

GW = f"{GATEWAY}[gateway-0]"


def _hop(*, error: bool = False, answered: bool = True, resend: int = 0) -> list:  # type: ignore[type-arg]
    """gateway server → client (to catalog-1) → catalog-1 server → a shard query and a lookup."""
    attrs = {"app.upstream.service": CATALOG, "app.upstream.instance": "catalog-1"}
    if resend:
        attrs["http.request.resend_count"] = resend
    if error:
        attrs["error.type"] = "ConnectError" if not answered else "500"
    spans = [
        server("GET /items/{id}", 0, 20, service=GATEWAY, instance="gateway-0"),
        span("GET", 1, 19, "root", sid="c1", service=GATEWAY, instance="gateway-0", attrs=attrs,
             error=error),
    ]  # fmt: skip
    if answered:
        spans += [
            span("GET /items/{id}", 2, 17, "c1", sid="s1", kind=2, service=CATALOG,
                 instance="catalog-1", error=error),
            span("cache.get items", 3, 4, "s1", service=CATALOG, instance="catalog-1",
                 attrs={"app.cache.name": "items", "app.cache.hit": False}),
            span("SELECT items", 5, 12, "s1", service=CATALOG, instance="catalog-1",
                 attrs={"app.shard.id": "2"}),
        ]  # fmt: skip
    return spans


def test_a_client_span_and_its_server_child_make_one_call_with_its_network_time() -> None:
    calls = calls_frame([trace(*_hop())])
    entry = calls[calls["caller"] == EXTERNAL]
    assert list(entry["callee_instance"]) == ["gateway-0"]  # from an untraced client
    calls = calls[calls["caller"] != EXTERNAL].set_index("target_kind")
    hop = calls.loc["service"]
    assert (hop["caller"], hop["caller_instance"]) == (GATEWAY, "gateway-0")
    assert (hop["callee"], hop["callee_instance"]) == (CATALOG, "catalog-1")
    assert hop["operation"] == "GET /items/{id}"
    assert hop["duration_ms"] == pytest.approx(18.0)
    assert hop["server_ms"] == pytest.approx(15.0)
    assert hop["network_ms"] == pytest.approx(3.0)
    shard, cache = calls.loc["shard"], calls.loc["cache"]
    assert (shard["callee"], shard["callee_instance"], shard["target"]) == (CATALOG, "", "2")
    assert (shard["caller_instance"], cache["target"]) == ("catalog-1", "items")


def test_an_unanswered_call_is_named_from_the_clients_own_attributes() -> None:
    calls = calls_frame([trace(*_hop(error=True, answered=False, resend=2))])
    (row,) = calls[calls["caller"] == GATEWAY].to_dict("records")
    assert (row["callee"], row["callee_instance"]) == (CATALOG, "catalog-1")
    assert not row["answered"]
    assert row["error"]
    assert row["resend"] == 2
    assert row["error_type"] == "ConnectError"


def test_a_call_whose_server_span_is_missing_was_answered_if_the_client_saw_a_status() -> None:
    """The end of a window that reaches "now": the caller's span is in, the callee's not yet
    (each process exports on its own timer). The status code says an answer came."""
    spans = _hop(answered=False)
    spans[1] = span("GET", 1, 19, "root", sid="c1", service=GATEWAY, instance="gateway-0",
                    attrs={**spans[1].attributes, "http.response.status_code": 200})  # fmt: skip
    (row,) = calls_frame([trace(*spans)]).query("caller == @GATEWAY").to_dict("records")
    assert (row["callee"], row["callee_instance"]) == (CATALOG, "catalog-1")
    assert row["answered"]
    assert not row["error"]


def test_an_attempt_the_caller_abandoned_is_neither_a_failure_nor_a_refusal() -> None:
    """A sibling call failed and the gateway cancelled this one: error.type=CancelledError
    without ERROR status (docs/telemetry.md)."""
    attrs = {"app.upstream.service": CATALOG, "app.upstream.instance": "catalog-1",
             "error.type": "CancelledError"}  # fmt: skip
    spans = [
        server("GET /items", 0, 20, service=GATEWAY, instance="gateway-0"),
        span("GET", 1, 9, "root", sid="c1", service=GATEWAY, instance="gateway-0", attrs=attrs),
    ]
    calls = calls_frame([trace(*spans)])
    (row,) = calls[calls["caller"] == GATEWAY].to_dict("records")
    assert row["cancelled"]
    assert not row["error"]
    assert not row["answered"]
    edge = service_map([trace(*spans)], window_s=1.0).edge(GW, f"{CATALOG}[catalog-1]")
    assert edge is not None
    assert (edge.errors, edge.unanswered, edge.status) == (0, 0, "ok")


def test_a_hop_is_a_client_span_and_its_server_child_with_the_network_time() -> None:
    (hop,) = hops(trace(*_hop()))
    assert (hop.client.span_id, hop.server.span_id) == ("c1", "s1")
    assert hop.network_ms == pytest.approx(3.0)
    assert hops(trace(*_hop(error=True, answered=False))) == []


def test_edges_go_to_replicas_shards_and_the_cache_with_rates_over_the_window() -> None:
    traces = [trace(*_hop(), trace_id=f"t{i}") for i in range(10)]
    m = service_map(traces, window_s=5.0, scale=2.0)
    kinds = {n.id: n.kind for n in m.nodes}
    assert kinds == {
        GW: "instance",
        f"{CATALOG}[catalog-1]": "instance",
        f"{CATALOG}: shard 2": "shard",
        f"{CATALOG}: cache items": "cache",
        EXTERNAL: "external",  # the entry server span has no traced client
    }
    edge = m.edge(GW, f"{CATALOG}[catalog-1]")
    assert edge is not None
    assert (edge.calls, edge.errors, edge.kind) == (10, 0, "http")
    assert edge.rate_rps == pytest.approx(10 * 2.0 / 5.0)
    assert edge.network_ms == pytest.approx(3.0)
    assert edge.p95_ms == pytest.approx(18.0)
    assert m.edge(f"{CATALOG}[catalog-1]", f"{CATALOG}: shard 2") is not None
    assert m.edge(f"{CATALOG}[catalog-1]", f"{CATALOG}: cache items") is not None
    assert m.edge(EXTERNAL, GW) is not None
    merged = service_map(traces, window_s=5.0, by_instance=False)
    assert merged.edge(GATEWAY, CATALOG) is not None
    assert {n.kind for n in merged.nodes} == {"service", "shard", "cache", "external"}


def test_a_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="window_s"):
        service_map([], window_s=0)


@pytest.fixture(scope="module")
def healthy() -> list:  # type: ignore[type-arg]
    return generate(MicroScenario(seed=21, duration_s=12.0)).traces


def test_a_healthy_topology_has_every_hop_and_no_edge_stands_out(healthy: list) -> None:  # type: ignore[type-arg]
    m = service_map(healthy[:400], window_s=12.0, scale=len(healthy) / 400)
    replicas = {f"{CATALOG}[catalog-{i}]" for i in range(3)}
    assert {e.target for e in m.edges if e.source == GW} == replicas | {"narrows-orders[orders-0]"}
    assert m.edge("narrows-orders[orders-0]", "narrows-orders: shard 0") is not None
    assert m.edge("narrows-load", GW) is not None
    entry = m.edge("narrows-load", GW)
    assert entry is not None
    assert entry.rate_rps == pytest.approx(len(healthy) / 12.0, rel=0.01)
    assert not m.standing_out(), [(e.key, e.why) for e in m.standing_out()]
    # Round-robin: each replica takes about a third of the gateway's catalog calls.
    shares = [m.edge(GW, r).calls for r in sorted(replicas)]  # type: ignore[union-attr]
    assert max(shares) - min(shares) <= 0.1 * sum(shares)


def test_the_slow_replicas_edge_stands_out_and_no_other() -> None:
    slow = Fault("slow_replica", {"instance": 1, "delay_ms": 15.0})
    traces = generate(MicroScenario(seed=22, duration_s=12.0, faults=(slow,))).traces[:400]
    m = service_map(traces, window_s=12.0)
    flagged = m.standing_out()
    assert {e.key for e in flagged} >= {f"{GW} → {CATALOG}[catalog-1]"}
    assert all(e.target == f"{CATALOG}[catalog-1]" and e.status == "slow" for e in flagged)
    assert flagged[0].ratio > 3


def test_a_refusing_replicas_edge_is_failing_with_unanswered_calls() -> None:
    # Never ejected: every call to it in the window is refused.
    down = Fault("replica_down", {"instance": 0})
    scenario = MicroScenario(seed=23, duration_s=6.0, eject_after=1000, faults=(down,))
    traces = generate(scenario).traces[:300]
    m = service_map(traces, window_s=6.0)
    edge = m.edge(GW, f"{CATALOG}[catalog-0]")
    assert edge is not None
    assert edge.status == "failing"
    assert edge.unanswered == edge.calls
    assert edge.trace_ids
    assert all(e.status == "ok" for e in m.edges if e.key != edge.key and e.kind != "http")


def test_a_real_zipkin_trace_maps_its_client_server_pairs(fixtures_dir: Path) -> None:
    t = zipkin_trace(fixtures_dir, "yelp.json")
    m = service_map([t], window_s=1.0, by_instance=False)
    http = {(e.source, e.target) for e in m.edges if e.kind == "http"}
    assert http == {
        (EXTERNAL, "routing"),
        ("unknown", "yelp_main/api_proxy"),
        ("yelp-main", "mobile_api"),
        ("mobile_api", "spectre"),
        # client spans to untraced dependencies, named by their remote endpoint
        ("mobile_api", "blt"),
        ("mobile_api", "memcache"),
        ("yelp-main", "memcache"),
        ("yelp-main", "mysql"),
    }
    spectre = m.edge("mobile_api", "spectre")
    assert spectre is not None
    assert spectre.network_ms == pytest.approx(3.0 - 1.49)
    assert m.edge("yelp-main", "mysql").calls == 2  # type: ignore[union-attr]
