"""The micro topology in compose (profile `micro`): catalog replicas behind nginx, the gateway
published on loopback, each service scraped by its service name, the service graph built."""

from __future__ import annotations

import re

import yaml

from tests.support.deploy import DEPLOY, REPO, compose


def test_catalog_replicas_sit_behind_the_load_balancer_and_the_gateway_calls_them_there() -> None:
    services = compose()["services"]
    catalog, orders, gateway = services["catalog"], services["orders"], services["gateway"]
    assert catalog["deploy"]["replicas"] >= 2
    assert "ports" not in catalog
    assert "ports" not in orders
    assert gateway["ports"] == ["127.0.0.1:8080:8000"]
    for svc in (catalog, orders, gateway):
        assert svc["profiles"] == ["micro"]
    assert "catalog-lb=http://lb:8100" in gateway["command"]
    assert "catalog-lb=http://lb:8100" in orders["command"]
    assert "http://orders:8000" in gateway["command"]
    assert orders["environment"]["NARROWS_DEMO_SHARD_DSN"].endswith("/narrows_orders_{i}")
    assert catalog["environment"]["NARROWS_DEMO_SHARD_DSN"].endswith("/narrows_shard_{i}")
    conf = (DEPLOY / "nginx/default.conf").read_text()
    assert "listen 8100;" in conf
    assert re.search(
        r"set \$catalog_upstream http://catalog:8000;\s+proxy_pass \$catalog_upstream;", conf
    )


def test_each_micro_service_is_scraped_under_its_service_name() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    services = compose()["services"]
    for name in ("gateway", "catalog", "orders"):
        job = jobs[services[name]["environment"]["OTEL_SERVICE_NAME"]]
        assert job["dns_sd_configs"][0]["names"] == [name]
        assert job["dns_sd_configs"][0]["port"] == 8000


def test_the_otel_collector_builds_the_service_graph_per_replica() -> None:
    config = yaml.safe_load((REPO / "collector/otelcol-config.yaml").read_text())
    graph = config["connectors"]["servicegraph"]
    assert "service.instance.id" in graph["dimensions"]
    pipelines = config["service"]["pipelines"]
    assert "servicegraph" in pipelines["traces"]["exporters"]
    assert "servicegraph" in pipelines["metrics"]["receivers"]
    dims = [d["name"] for d in config["connectors"]["spanmetrics"]["dimensions"]]
    assert {"app.upstream.service", "app.upstream.instance"} <= set(dims)
    keys = config["connectors"]["spanmetrics"]["resource_metrics_key_attributes"]
    assert "service.instance.id" in keys
