"""Every PromQL expression the scaled shape runs returns data from a real Prometheus.

Dashboard panels, template variables, Grafana alert queries, Prometheus recording rules and
the Jaeger → Prometheus correlation queries run against a private Prometheus that scraped the
real demo under `narrows load` (tests/integration/deploy/conftest.py), with `$service`,
`$route`, `$collector` replaced by values the variables' own queries returned, as Grafana
would. A query with no finite value fails: a dashboard that shows "No data" is a defect.
"""

from __future__ import annotations

import math
import re
import time
from functools import cache
from typing import Any

import httpx
import pytest

from tests.support.deploy import (
    PROMETHEUS_UID,
    Query,
    Variable,
    alert_queries,
    alert_rules,
    correlation_queries,
    dashboard_queries,
    dashboard_variables,
    interpolate,
    recording_rule_queries,
)
from tests.support.scaled import ScaledStack, run_init_script, unique_prefix
from tests.support.servers import PostgresServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Grafana's built-ins, as they would be with this test's 1 s scrape interval and a short range.
BUILTINS = {"__rate_interval": "1m", "__interval": "15s", "__range": "5m"}
ALL_QUERIES = [
    *dashboard_queries(),
    *alert_queries(),
    *recording_rule_queries(),
    *correlation_queries(),
]
SHARD_ERRORS = "narrows-shards-cache.json panel 'Shard errors/s (operations that raised)' target A"
VARIABLES = dashboard_variables()
POLL_S = 20.0


def _finite(result: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in result if math.isfinite(float(r["value"][1]))]


def _label_values(stack: ScaledStack, query: str) -> list[str]:
    """Grafana's ``label_values(selector, label)`` through the series API, as Grafana does."""
    m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", query.strip())
    assert m, f"unsupported variable query {query!r}"
    selector, label = m.groups()
    resp = httpx.get(
        f"{stack.prometheus.url}/api/v1/series",
        params={"match[]": selector, "start": str(time.time() - 300)},
        timeout=10,
    )
    resp.raise_for_status()
    return sorted({s[label] for s in resp.json()["data"] if label in s})


@cache
def _resolve(stack: ScaledStack, dashboard: str) -> dict[str, str]:
    """One real value per variable of a dashboard, resolving them in order (chained queries)."""
    values = dict(BUILTINS)
    for var in (v for v in VARIABLES if v.dashboard == dashboard):
        regex = frozenset(v.name for v in VARIABLES if v.dashboard == dashboard and _is_regex(v))
        found = _label_values(stack, interpolate(var.query, values, regex_vars=regex))
        if not found:
            raise AssertionError(f"{dashboard}: variable ${var.name} ({var.query}) has no values")
        values[var.name] = found[0]
    return values


def _is_regex(var: Variable) -> bool:
    return var.multi or var.include_all


def _render(stack: ScaledStack, query: Query) -> str:
    if ".json panel " in query.where:
        dashboard = query.where.split(" panel ")[0]
        values = _resolve(stack, dashboard)
        regex = frozenset(v.name for v in VARIABLES if v.dashboard == dashboard and _is_regex(v))
        return interpolate(query.expr, values, regex_vars=regex)
    # Correlation queries: Grafana turns the span's service.name into job="<service>".
    service = _resolve(stack, "narrows-service-red.json")["service"]
    return interpolate(query.expr, {**BUILTINS, "__tags": f'job="{service}"'})


def test_no_query_needs_series_only_the_opentelemetry_collector_makes() -> None:
    """Every query is checked for data below, so none may rest on the spanmetrics connector
    (it needs the collector binary, i.e. Docker); the app's own metrics answer them all."""
    assert not [q.where for q in ALL_QUERIES if "traces_span_metrics_" in q.expr]


def test_there_is_a_query_for_every_kind_of_source() -> None:
    kinds = {q.where.split(" ")[0].split(".")[-1] for q in ALL_QUERIES}
    assert {"json", "alert", "yml", "datasource"} <= kinds
    assert len(ALL_QUERIES) >= 60
    assert SHARD_ERRORS in {q.where for q in ALL_QUERIES}


@pytest.mark.parametrize("variable", VARIABLES, ids=lambda v: f"{v.dashboard}:${v.name}")
def test_every_template_variable_offers_real_values(
    scaled_stack: ScaledStack, variable: Variable
) -> None:
    values = _resolve(scaled_stack, variable.dashboard)
    assert values[variable.name]


def _assert_returns_data(stack: ScaledStack, where: str, promql: str, timeout: float) -> None:
    """Valid PromQL with at least one finite value within ``timeout`` (NaN is "No data" too)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = stack.query(promql)
        assert answer["status"] == "success", f"{where}: {answer.get('error')}\n{promql}"
        if _finite(answer["data"]["result"]):
            return
        if time.monotonic() > deadline:
            got = answer["data"]["result"][:3]
            pytest.fail(f"{where}: no finite value after {timeout}s\n{promql}\ngot {got}")
        time.sleep(1)


@pytest.mark.parametrize("query", ALL_QUERIES, ids=lambda q: q.where)
def test_every_promql_query_returns_data(scaled_stack: ScaledStack, query: Query) -> None:
    _assert_returns_data(scaled_stack, query.where, _render(scaled_stack, query), POLL_S)


@pytest.mark.parametrize(
    "promql",
    [
        'sum(rate(http_server_request_duration_seconds_count{http_route="/no/such/route"}[1m]))',
        "histogram_quantile(0.99, sum by (le) (rate(app_shard_pool_wait_seconds_bucket[1s])))",
    ],
)
def test_the_check_fails_a_query_without_data(scaled_stack: ScaledStack, promql: str) -> None:
    """Not vacuous: no series, or only NaN (a quantile of an empty window), fails."""
    with pytest.raises(pytest.fail.Exception, match="no finite value"):
        _assert_returns_data(scaled_stack, "a query without data", promql, 1.0)


@pytest.mark.parametrize(
    "query", [q for q in dashboard_queries() if q.exemplar], ids=lambda q: q.where
)
def test_exemplar_panels_get_exemplars_whose_traces_the_collector_holds(
    scaled_stack: ScaledStack, query: Query
) -> None:
    """The exemplar dots exist, carry `trace_id` (the label the Prometheus datasource links
    on), and the trace behind one is there to open."""
    promql = _render(scaled_stack, query)
    end = time.time()
    resp = httpx.get(
        f"{scaled_stack.prometheus.url}/api/v1/query_exemplars",
        params={"query": promql, "start": str(end - 300), "end": str(end)},
        timeout=10,
    )
    resp.raise_for_status()
    exemplars = [e for series in resp.json()["data"] for e in series["exemplars"]]
    assert exemplars, f"{query.where}: no exemplars\n{promql}"
    assert all(re.fullmatch(r"[0-9a-f]{32}", e["labels"]["trace_id"]) for e in exemplars)
    # The oldest few: their spans have surely been exported and stored by now.
    oldest = [e["labels"]["trace_id"] for e in sorted(exemplars, key=lambda e: e["timestamp"])[:5]]
    url = scaled_stack.collector.query_url
    deadline = time.monotonic() + POLL_S

    def stored(trace_id: str) -> bool:
        return httpx.get(f"{url}/api/v3/traces/{trace_id}", timeout=5).status_code == 200

    while not any(stored(t) for t in oldest):
        assert time.monotonic() < deadline, f"{query.where}: traces {oldest} not in the collector"
        time.sleep(1)


MATH_RULES = [r for r in alert_rules() if any(n["model"].get("type") == "math" for n in r["data"])]


@pytest.mark.parametrize("rule", MATH_RULES, ids=lambda r: r["uid"])
def test_queries_an_alert_combines_return_series_grafana_can_join(
    scaled_stack: ScaledStack, rule: dict[str, Any]
) -> None:
    """`$A > x && $B > y` pairs series by their labels: A and B must carry the same ones."""
    exprs = {
        n["refId"]: n["model"]["expr"] for n in rule["data"] if n["datasourceUid"] == PROMETHEUS_UID
    }
    (math_node,) = [n for n in rule["data"] if n["model"].get("type") == "math"]
    label_sets = {}
    for ref in sorted(set(re.findall(r"\$(\w+)", math_node["model"]["expression"]))):
        result = scaled_stack.query(exprs[ref])["data"]["result"]
        label_sets[ref] = {
            frozenset((k, v) for k, v in r["metric"].items() if k != "__name__") for r in result
        }
    first, *others = label_sets.values()
    assert first, f"{rule['uid']}: no series"
    assert all(other == first for other in others), label_sets


def test_postgres_init_script_creates_every_shard_database_once(postgres: PostgresServer) -> None:
    import psycopg

    prefix = unique_prefix()
    for _ in range(2):  # idempotent: a second run (after raising NARROWS_SHARDS) is safe
        result = run_init_script(postgres, prefix, 3)
        assert result.returncode == 0, result.stderr
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s ORDER BY datname",
            (prefix + "%",),
        ).fetchall()
        assert [r[0] for r in rows] == [f"{prefix}{i}" for i in range(3)]
        for (name,) in rows:
            conn.execute(f'DROP DATABASE "{name}"')


def test_postgres_init_script_refuses_a_bad_shard_count(postgres: PostgresServer) -> None:
    result = run_init_script(postgres, unique_prefix(), "4; DROP DATABASE postgres")
    assert result.returncode != 0
    assert "NARROWS_SHARDS must be a number" in result.stderr


def _labels(series: dict[str, Any]) -> frozenset[tuple[str, str]]:
    return frozenset((k, v) for k, v in series["metric"].items() if k != "__name__")


def _firing(stack: ScaledStack, rule: dict[str, Any]) -> set[frozenset[tuple[str, str]]]:
    """The label sets for which a Grafana rule's condition holds now: its Prometheus queries
    run for real; its threshold and math nodes are evaluated the way Grafana evaluates them
    (per label set, 1 for true)."""
    values: dict[str, dict[frozenset[tuple[str, str]], float]] = {}
    for node in rule["data"]:
        model = node["model"]
        if node["datasourceUid"] == PROMETHEUS_UID:
            result = stack.query(model["expr"])["data"]["result"]
            values[node["refId"]] = {_labels(r): float(r["value"][1]) for r in result}
        elif model["type"] == "threshold":
            evaluator = model["conditions"][0]["evaluator"]
            limit = float(evaluator["params"][0])
            compare = {"gt": float.__gt__, "lt": float.__lt__}[evaluator["type"]]
            source = values[model["expression"]]
            values[node["refId"]] = {k: float(compare(v, limit)) for k, v in source.items()}
        else:
            assert model["type"] == "math", model
            refs = set(re.findall(r"\$(\w+)", model["expression"]))
            python = model["expression"].replace("&&", " and ").replace("||", " or ")
            out = {}
            for key in set.intersection(*(set(values[r]) for r in refs)):
                text = re.sub(r"\$(\w+)", lambda m, k=key: repr(values[m.group(1)][k]), python)
                out[key] = float(eval(text, {"__builtins__": {}}))  # our own rule file
            values[node["refId"]] = out
    return {k for k, v in values[rule["condition"]].items() if v}


def _rule(uid: str) -> dict[str, Any]:
    (rule,) = [r for r in alert_rules() if r["uid"] == uid]
    return rule


def _shard_errors(stack: ScaledStack) -> dict[str, float]:
    """The Shard errors panel's query, as Grafana runs it: errors/s per shard."""
    (query,) = [q for q in ALL_QUERIES if q.where == SHARD_ERRORS]
    result = stack.query(_render(stack, query))["data"]["result"]
    return {r["metric"]["app_shard_id"]: float(r["value"][1]) for r in result}


# Keep this test last in the module: pytest runs a module's tests in file order, and this one
# breaks the shared demo on purpose.
def test_alerts_fire_on_the_failures_they_name(scaled_stack: ScaledStack) -> None:
    """A shard that fails every query burns the error budget fast and slow (and neither alert
    fired before) and shows on the Shard errors panel, labelled by the driver's exception; a
    slow shard pushes p99 over the SLO."""
    demo = {("job", "narrows-demo")}
    burn = [_rule("narrows-error-budget-burn-fast"), _rule("narrows-error-budget-burn-slow")]
    for rule in burn:
        assert not any(demo <= k for k in _firing(scaled_stack, rule)), f"{rule['uid']} at rest"
    assert _shard_errors(scaled_stack).get("1") == 0.0  # data, and no error yet
    faults = f"{scaled_stack.demo_url}/admin/faults"
    try:
        for name, params in (
            ("failing_shard", {"shard": 1, "error_rate": 1.0}),
            ("slow_shard", {"shard": 2, "delay_ms": 800}),
        ):
            httpx.put(f"{faults}/{name}", json=params, timeout=5).raise_for_status()
        for rule in [*burn, _rule("narrows-p99-over-slo")]:
            deadline = time.monotonic() + 45
            while not any(demo <= k for k in _firing(scaled_stack, rule)):
                assert time.monotonic() < deadline, f"{rule['uid']} did not fire"
                time.sleep(1)
        assert _shard_errors(scaled_stack)["1"] > 0
        types = scaled_stack.query(
            'sum by (error_type) (db_client_operation_duration_seconds_count{app_shard_id="1",'
            ' error_type!=""})'
        )["data"]["result"]
        # psycopg's own error, as the failing shard raises it (docs/telemetry.md).
        assert "OperationalError" in {r["metric"]["error_type"] for r in types}
    finally:
        httpx.delete(faults, timeout=5)
