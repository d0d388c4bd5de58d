"""Jaeger, Loki, nginx, PostgreSQL init and the Dockerfile agree with docker-compose.yml
(ports, service names, paths); none of their programs runs here, so drift is caught by reading."""

from __future__ import annotations

import re
import subprocess

import yaml

from tests.support.deploy import DEPLOY, REPO, compose, datasources


def test_jaeger_serves_the_ui_and_health_where_compose_and_grafana_look() -> None:
    cfg = yaml.safe_load((DEPLOY / "jaeger/config.yaml").read_text())
    service = cfg["service"]
    assert set(service["extensions"]) == set(cfg["extensions"])
    pipeline = service["pipelines"]["traces"]
    assert pipeline["receivers"] == ["otlp"]
    assert pipeline["exporters"] == ["jaeger_storage_exporter"]
    query = cfg["extensions"]["jaeger_query"]
    assert query["http"]["endpoint"] == "0.0.0.0:16686"
    storage = cfg["extensions"]["jaeger_storage"]
    assert query["storage"]["traces"] in storage["backends"]
    assert cfg["exporters"]["jaeger_storage_exporter"]["trace_storage"] in storage["backends"]
    # The Monitor tab reads the spanmetrics connector's series from Prometheus.
    metrics = storage["metric_backends"][query["storage"]["metrics"]]["prometheus"]
    assert metrics["endpoint"] == "http://prometheus:9090"
    assert cfg["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert cfg["extensions"]["healthcheckv2"]["http"]["endpoint"] == "0.0.0.0:13133"
    services = compose()["services"]
    assert services["jaeger"]["ports"] == ["127.0.0.1:16686:16686"]
    assert services["dashboard"]["environment"]["NARROWS_JAEGER_URL"] == "http://jaeger:16686"
    urls = {ds["uid"]: ds["url"] for ds in datasources()}
    assert urls["narrows-jaeger"] == "http://jaeger:16686"


def test_loki_keeps_structured_metadata_for_trace_links() -> None:
    cfg = yaml.safe_load((DEPLOY / "loki/loki.yaml").read_text())
    assert cfg["server"]["http_listen_port"] == 3100
    assert cfg["limits_config"]["allow_structured_metadata"] is True
    (schema,) = cfg["schema_config"]["configs"]
    assert (schema["store"], schema["schema"]) == ("tsdb", "v13")
    assert cfg["auth_enabled"] is False
    services = compose()["services"]
    assert services["dashboard"]["environment"]["NARROWS_LOKI_URL"] == "http://loki:3100"
    assert {ds["uid"]: ds["url"] for ds in datasources()}["narrows-loki"] == "http://loki:3100"


def test_nginx_balances_over_every_demo_replica_and_hides_metrics() -> None:
    conf = (DEPLOY / "nginx/default.conf").read_text()
    assert "resolver 127.0.0.11" in conf, "re-resolve `demo` so scaled replicas join"
    assert re.search(r"set \$demo_upstream http://demo:8000;\s+proxy_pass \$demo_upstream;", conf)
    assert "listen 8000;" in conf
    assert re.search(r"location = /metrics \{\s+return 404;", conf)
    assert "location = /lb-health" in conf
    assert conf.count("{") == conf.count("}")


def test_postgres_init_script_is_mounted_where_the_image_runs_it() -> None:
    script = DEPLOY / "postgres/initdb/10-narrows-shards.sh"
    assert script.stat().st_mode & 0o111, "must be executable (the image sources it otherwise)"
    result = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr
    volumes = compose()["services"]["postgres"]["volumes"]
    assert "./deploy/postgres/initdb:/docker-entrypoint-initdb.d:ro" in volumes


def test_dockerfile_is_multi_stage_pinned_and_runs_as_a_user() -> None:
    lines = [ln.strip() for ln in (REPO / "Dockerfile").read_text().splitlines()]
    froms = [ln.split()[1] for ln in lines if ln.startswith("FROM ")]
    assert len(froms) >= 2
    for image in froms:
        assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", image), image
    final = lines[max(i for i, ln in enumerate(lines) if ln.startswith("FROM "))]
    users = [ln.split()[1] for ln in lines[lines.index(final) :] if ln.startswith("USER ")]
    assert users
    assert users[-1] not in ("root", "0")
    # The collector's named volume at /data must be writable by that user.
    assert "install -d -o narrows -g narrows /data" in (REPO / "Dockerfile").read_text()
    assert "collector-data:/data" in compose()["services"]["narrows-collector"]["volumes"]
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    assert {".venv", ".git", ".env"} <= set(ignored)
