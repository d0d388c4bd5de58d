"""grafana/: datasources with their correlations, dashboards and alert rules hold together.

Every uid is stable and unique; every panel, target, variable, exemplar link, trace link and
alert query names a provisioned datasource. Whether the PromQL returns data is proven against
a real Prometheus in tests/integration/deploy/.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from tests.support.deploy import (
    GRAFANA,
    alert_rules,
    compose,
    dashboard_queries,
    dashboards,
    datasources,
    iter_panels,
    target_datasource_uid,
)

DASHBOARD_UIDS = {
    "narrows-service-red",
    "narrows-shards-cache",
    "narrows-capacity",
    "narrows-collector-health",
}
ALERT_UIDS = {
    "narrows-p99-over-slo",
    "narrows-error-budget-burn-fast",
    "narrows-error-budget-burn-slow",
    "narrows-cache-hit-ratio-drop",
    "narrows-shard-skew",
    "narrows-collector-queue-near-capacity",
    "narrows-target-down",
}
SPECIAL_UIDS = {"-- Grafana --", "__expr__"}


def _uids() -> dict[str, str]:
    return {ds["uid"]: ds["type"] for ds in datasources()}


def _by_type(kind: str) -> dict[str, Any]:
    (ds,) = [d for d in datasources() if d["type"] == kind]
    return ds


def test_datasources_have_unique_fixed_uids_and_reach_compose_services() -> None:
    sources = datasources()
    assert len({d["uid"] for d in sources}) == len(sources) == 3
    assert len({d["name"] for d in sources}) == 3
    assert _uids() == {
        "narrows-prometheus": "prometheus",
        "narrows-jaeger": "jaeger",
        "narrows-loki": "loki",
    }
    services = compose()["services"]
    for ds in sources:
        host = re.match(r"http://([\w-]+):\d+$", ds["url"])
        assert host, ds["url"]
        assert host.group(1) in services, ds["url"]
        assert ds["access"] == "proxy"
        assert ds["editable"] is False


def test_prometheus_exemplars_link_to_jaeger_by_the_trace_id_label() -> None:
    (dest,) = _by_type("prometheus")["jsonData"]["exemplarTraceIdDestinations"]
    # The instrumentation's exemplars carry `trace_id` (docs/telemetry.md).
    assert dest == {**dest, "name": "trace_id", "datasourceUid": "narrows-jaeger"}


def test_jaeger_links_traces_to_loki_logs_and_prometheus_metrics() -> None:
    data = _by_type("jaeger")["jsonData"]
    logs = data["tracesToLogsV2"]
    assert logs["datasourceUid"] == "narrows-loki"
    assert logs["filterByTraceID"] is True
    assert {"key": "service.name", "value": "service_name"} in logs["tags"]
    metrics = data["tracesToMetrics"]
    assert metrics["datasourceUid"] == "narrows-prometheus"
    assert {"key": "service.name", "value": "job"} in metrics["tags"]
    assert all("$__tags" in q["query"] for q in metrics["queries"])


def test_loki_derived_fields_turn_trace_ids_into_jaeger_links() -> None:
    fields = _by_type("loki")["jsonData"]["derivedFields"]
    assert {f["datasourceUid"] for f in fields} == {"narrows-jaeger"}
    assert all(f["url"] == "${__value.raw}" for f in fields)
    by_label = [f for f in fields if f.get("matcherType") == "label"]
    assert [f["matcherRegex"] for f in by_label] == ["trace_id"]
    (in_line,) = [f for f in fields if f.get("matcherType") == "regex"]
    line = (
        '{"event": "order placed", "trace_id": "0af7651916cd43dd8448eb211c80319c", "level": "info"}'
    )
    match = re.search(in_line["matcherRegex"], line)
    assert match
    assert match.group(1) == "0af7651916cd43dd8448eb211c80319c"


def test_the_dashboard_provider_reads_the_folder_compose_mounts() -> None:
    (path,) = (GRAFANA / "provisioning/dashboards").glob("*.yaml")
    (provider,) = yaml.safe_load(path.read_text())["providers"]
    assert provider["type"] == "file"
    assert provider["allowUiUpdates"] is False
    mounts = compose()["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in mounts
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in mounts


def test_dashboards_have_stable_unique_uids_and_valid_structure() -> None:
    dash = dashboards()
    assert {d["uid"] for d in dash.values()} == DASHBOARD_UIDS
    assert len({d["title"] for d in dash.values()}) == len(dash)
    for name, d in dash.items():
        assert name == f"{d['uid']}.json"
        assert isinstance(d["schemaVersion"], int)
        assert d["schemaVersion"] >= 36
        assert d["editable"] is False
        panels = list(iter_panels(d["panels"]))
        ids = [p["id"] for p in panels]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
        for p in panels:
            pos = p["gridPos"]
            inside = pos["x"] >= 0 and pos["x"] + pos["w"] <= 24 and pos["h"] > 0
            assert inside, (name, p["title"], pos)
            assert p.get("title"), f"{name}: untitled panel"


def test_dashboards_do_not_overlap_panels() -> None:
    for name, d in dashboards().items():
        cells: dict[tuple[int, int], str] = {}
        for p in iter_panels(d["panels"]):
            pos = p["gridPos"]
            for x in range(pos["x"], pos["x"] + pos["w"]):
                for y in range(pos["y"], pos["y"] + pos["h"]):
                    assert (x, y) not in cells, f"{name}: {p['title']!r} overlaps {cells[(x, y)]!r}"
                    cells[(x, y)] = p["title"]


def test_every_panel_target_and_variable_uses_a_provisioned_datasource() -> None:
    uids = _uids()
    for name, d in dashboards().items():
        for p in iter_panels(d["panels"]):
            if p["type"] == "row":
                continue
            assert p["datasource"]["uid"] in uids, (name, p["title"])
            assert p["targets"], f"{name}: {p['title']!r} has no query"
            refs = [t["refId"] for t in p["targets"]]
            assert len(refs) == len(set(refs)), (name, p["title"])
            for t in p["targets"]:
                uid = target_datasource_uid(p, t)
                assert uid in uids, (name, p["title"], uid)
                assert uids[uid] == p["datasource"]["type"] == t["datasource"]["type"]
        for var in d["templating"]["list"]:
            assert var["datasource"]["uid"] in uids, (name, var["name"])
        for ann in d["annotations"]["list"]:
            assert ann["datasource"]["uid"] in uids or ann["datasource"]["uid"] in SPECIAL_UIDS


def test_every_variable_a_query_uses_is_defined_on_its_dashboard() -> None:
    builtin = {"__rate_interval", "__interval", "__range"}
    for name, d in dashboards().items():
        defined = {v["name"] for v in d["templating"]["list"]} | builtin
        for p in iter_panels(d["panels"]):
            for t in p.get("targets", []):
                text = " ".join(str(t.get(k, "")) for k in ("expr", "service", "query"))
                used = set(re.findall(r"\$\{?(\w+)", text))
                assert used <= defined, (name, p["title"], used - defined)


def test_latency_panels_show_exemplars() -> None:
    exemplar_panels = {q.where.split(" target ")[0] for q in dashboard_queries() if q.exemplar}
    for dashboard, title in (
        ("narrows-service-red", "Latency p50 / p95 / p99 by route (exemplars link to Jaeger)"),
        ("narrows-service-red", "Latency distribution (exemplars link to Jaeger)"),
        ("narrows-shards-cache", "Shard operation latency p99 (exemplars link to Jaeger)"),
    ):
        assert f"{dashboard}.json panel {title!r}" in exemplar_panels
    for q in dashboard_queries():
        if q.exemplar:
            assert "_bucket" in q.expr, q.where


def test_dashboard_links_point_at_existing_dashboards() -> None:
    dash = dashboards()
    uids = {d["uid"] for d in dash.values()}
    for name, d in dash.items():
        for link in d.get("links", []):
            if link["type"] == "dashboards":
                tagged = [x for x in dash.values() if set(link["tags"]) <= set(x["tags"])]
                assert len(tagged) == len(dash), name
        for p in iter_panels(d["panels"]):
            defaults = p.get("fieldConfig", {}).get("defaults", {})
            for link in [*p.get("links", []), *defaults.get("links", [])]:
                target = re.search(r"/d/([\w-]+)", link.get("url", ""))
                assert target is None or target.group(1) in uids, (name, link)
                internal = link.get("internal", {})
                assert not internal or internal["datasourceUid"] in _uids(), (name, link)


def test_alert_rules_cover_the_slo_shards_cache_and_collector() -> None:
    rules = alert_rules()
    uids = [r["uid"] for r in rules]
    assert len(uids) == len(set(uids)), "duplicate alert rule uid"
    assert set(uids) == ALERT_UIDS
    assert len({r["title"] for r in rules}) == len(rules)


def test_alert_rules_are_wired_to_provisioned_datasources_and_their_own_queries() -> None:
    uids = set(_uids()) | SPECIAL_UIDS
    dashboard_uids = {d["uid"] for d in dashboards().values()}
    for rule in alert_rules():
        refs = {node["refId"] for node in rule["data"]}
        assert rule["condition"] in refs, rule["uid"]
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["uid"]
        assert rule["labels"]["severity"] in {"page", "ticket", "warning"}
        assert rule["annotations"]["__dashboardUid__"] in dashboard_uids
        for node in rule["data"]:
            assert node["datasourceUid"] in uids, (rule["uid"], node["refId"])
            model = node["model"]
            assert model["refId"] == node["refId"]
            if node["datasourceUid"] == "__expr__":
                inputs = set(re.findall(r"\$(\w+)", model["expression"])) or {model["expression"]}
                assert inputs <= refs - {node["refId"]}, (rule["uid"], model["expression"])
                assert model["type"] in {"threshold", "math", "reduce"}
            else:
                assert model["expr"].strip()
                assert model["instant"] is True


def test_alert_provisioning_survives_grafanas_env_expansion() -> None:
    """Grafana expands $VAR in labels (not in annotations or models): keep `$` out of them."""
    for rule in alert_rules():
        for value in rule["labels"].values():
            assert "$" not in value, rule["uid"]
