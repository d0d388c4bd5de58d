"""collector/otelcol-config.yaml: every pipeline component defined, named as the pinned
OpenTelemetry Collector contrib version names it, and wired to the compose services."""

from __future__ import annotations

from typing import Any

import yaml

from tests.support.deploy import REPO, compose

CONFIG = REPO / "collector" / "otelcol-config.yaml"
PINNED_IMAGE = "otel/opentelemetry-collector-contrib:0.156.0"

# Component types of otelcol-contrib 0.156.0 (an excerpt of its distribution manifest: the
# components a Narrows deployment may reasonably use). Since 0.144 the OTLP exporters are
# `otlp_grpc` and `otlp_http`; the old `otlp`/`otlphttp` exporter names remain as deprecated
# aliases and are listed apart, so the test can refuse them. Bump with the image tag.
COMPONENTS_0_156: dict[str, set[str]] = {
    "receivers": {
        "otlp", "zipkin", "jaeger", "prometheus", "hostmetrics", "filelog", "journald",
        "docker_stats", "redis", "postgresql", "nginx", "kafka", "nop",
    },
    "processors": {
        "memory_limiter", "batch", "resourcedetection", "resource", "attributes", "redaction",
        "transform", "filter", "tail_sampling", "probabilistic_sampler", "k8sattributes",
        "cumulativetodelta", "deltatocumulative", "groupbyattrs", "span", "metricstransform",
    },
    "exporters": {
        "otlp_grpc", "otlp_http", "debug", "nop", "prometheus", "prometheusremotewrite",
        "zipkin", "file", "kafka", "loadbalancing",
    },
    "connectors": {"spanmetrics", "servicegraph", "count", "routing", "forward", "exceptions"},
    "extensions": {
        "health_check", "healthcheckv2", "pprof", "zpages", "file_storage",
        "basicauth", "bearertokenauth", "headers_setter", "oauth2client",
    },
}  # fmt: skip
DEPRECATED_ALIASES = {"exporters": {"otlp", "otlphttp"}}


def _config() -> dict[str, Any]:
    return dict(yaml.safe_load(CONFIG.read_text()))


def _kind(component_id: str) -> str:
    """`otlp_grpc/jaeger` → `otlp_grpc` (the type; after the slash is the instance name)."""
    return component_id.split("/", 1)[0]


def test_the_test_lists_the_components_of_the_image_compose_runs() -> None:
    assert compose()["services"]["otelcol"]["image"] == PINNED_IMAGE


def test_every_defined_component_type_exists_in_the_pinned_version() -> None:
    cfg = _config()
    for section, known in COMPONENTS_0_156.items():
        for component_id in cfg.get(section) or {}:
            kind = _kind(component_id)
            assert kind not in DEPRECATED_ALIASES.get(section, set()), (
                f"{section}.{component_id}: deprecated alias"
            )
            assert kind in known, f"{section}.{component_id}: no such {section[:-1]} in 0.156.0"


def test_every_component_a_pipeline_names_is_defined_and_every_defined_one_is_used() -> None:
    cfg = _config()
    service = cfg["service"]
    connectors = set(cfg.get("connectors", {}))
    used: dict[str, set[str]] = {"receivers": set(), "processors": set(), "exporters": set()}
    for name, pipeline in service["pipelines"].items():
        for section in used:
            for component_id in pipeline.get(section, []):
                defined = set(cfg[section]) | (connectors if section != "processors" else set())
                assert component_id in defined, f"pipeline {name}: {component_id} not defined"
                used[section].add(component_id)
    for section, names in used.items():
        unused = set(cfg[section]) - names
        assert not unused, f"{section} defined but in no pipeline: {unused}"
    for connector in connectors:
        assert connector in used["exporters"], f"{connector} is fed by no pipeline"
        assert connector in used["receivers"], f"{connector} feeds no pipeline"
    assert set(service["extensions"]) == set(cfg["extensions"])


def test_memory_limiter_comes_first_in_every_pipeline() -> None:
    for name, pipeline in _config()["service"]["pipelines"].items():
        assert pipeline["processors"][0] == "memory_limiter", name


def test_pipelines_receive_otlp_and_zipkin_and_feed_jaeger_prometheus_loki() -> None:
    pipelines = _config()["service"]["pipelines"]
    assert set(pipelines["traces"]["receivers"]) == {"otlp", "zipkin"}
    assert "spanmetrics" in pipelines["traces"]["exporters"]
    assert "spanmetrics" in pipelines["metrics"]["receivers"]
    assert "otlp_grpc/jaeger" in pipelines["traces"]["exporters"]
    assert pipelines["metrics"]["exporters"] == ["otlp_http/prometheus"]
    assert pipelines["logs"]["exporters"] == ["otlp_http/loki"]
    for signal in ("traces", "logs"):
        processors = pipelines[signal]["processors"]
        assert {"redaction", "resourcedetection"} <= set(processors), signal


def test_exporters_batch_in_their_sending_queue_and_retry() -> None:
    cfg = _config()
    assert "batch" not in cfg["processors"], "use the exporter-side sending_queue.batch"
    for name, exporter in cfg["exporters"].items():
        queue = exporter["sending_queue"]
        assert queue["enabled"] is True, name
        assert "batch" in queue, name
        assert queue["queue_size"] > 0, name
        assert exporter["retry_on_failure"]["enabled"] is True, name


def test_exporters_point_at_the_backends_compose_runs() -> None:
    exporters = _config()["exporters"]
    services = compose()["services"]
    assert exporters["otlp_grpc/jaeger"]["endpoint"] == "jaeger:4317"
    assert exporters["otlp_http/prometheus"]["endpoint"] == "http://prometheus:9090/api/v1/otlp"
    assert exporters["otlp_http/loki"]["endpoint"] == "http://loki:3100/otlp"
    assert "--web.enable-otlp-receiver" in services["prometheus"]["command"]
    assert {"jaeger", "prometheus", "loki"} <= set(services["otelcol"]["depends_on"])


def test_receivers_listen_on_the_ports_compose_publishes() -> None:
    cfg = _config()
    protocols = cfg["receivers"]["otlp"]["protocols"]
    endpoints = {
        protocols["grpc"]["endpoint"],
        protocols["http"]["endpoint"],
        cfg["receivers"]["zipkin"]["endpoint"],
    }
    assert endpoints == {"0.0.0.0:4317", "0.0.0.0:4318", "0.0.0.0:9411"}
    published = {p.rsplit(":", 1)[1] for p in compose()["services"]["otelcol"]["ports"]}
    assert published == {"4317", "4318", "9411"}
    assert cfg["extensions"]["health_check"]["endpoint"] == "0.0.0.0:13133"


def test_redaction_masks_secret_keys_and_card_numbers() -> None:
    import re

    redaction = _config()["processors"]["redaction"]
    assert redaction["allow_all_keys"] is True
    key_patterns = [re.compile(p) for p in redaction["blocked_key_patterns"]]
    for key in ("db.password", "http.request.header.authorization", "app.api_key", "Cookie"):
        assert any(p.fullmatch(key) for p in key_patterns), key
    assert not any(p.fullmatch("http.route") for p in key_patterns)
    values = [re.compile(p) for p in redaction["blocked_values"]]
    for value in ("Bearer abc.def-123", "card 4111111111111111", "5500000000000004"):
        assert any(p.search(value) for p in values), value


def test_self_metrics_are_exposed_where_prometheus_scrapes_them() -> None:
    readers = _config()["service"]["telemetry"]["metrics"]["readers"]
    prom = readers[0]["pull"]["exporter"]["prometheus"]
    assert (prom["host"], prom["port"]) == ("0.0.0.0", 8888)
    scrape = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in scrape["scrape_configs"]}
    assert jobs["otelcol"]["static_configs"][0]["targets"] == ["otelcol:8888"]


def test_spanmetrics_names_match_what_jaegers_monitor_tab_queries() -> None:
    """traces.span.metrics.calls → traces_span_metrics_calls_total in Prometheus."""
    spanmetrics = _config()["connectors"]["spanmetrics"]
    assert spanmetrics["namespace"] == "traces.span.metrics"
    assert spanmetrics["histogram"]["unit"] == "ms"  # Jaeger reads ..._duration_milliseconds
    assert spanmetrics["exemplars"]["enabled"] is True
    assert {"name": "app.shard.id"} in spanmetrics["dimensions"]
