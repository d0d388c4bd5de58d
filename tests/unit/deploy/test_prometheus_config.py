"""deploy/prometheus: promtool accepts the config and the rules, and the rules compute what
the alerts expect (promtool's rule unit tests)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from tests.conftest import require_program
from tests.support.deploy import DEPLOY, compose

PROMETHEUS = DEPLOY / "prometheus"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    exe = require_program("promtool")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=60, cwd=PROMETHEUS)


def test_promtool_accepts_the_prometheus_config() -> None:
    result = _promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_accepts_every_rule_file() -> None:
    files = sorted(str(p.relative_to(PROMETHEUS)) for p in (PROMETHEUS / "rules").glob("*.yml"))
    assert files
    result = _promtool("check", "rules", *files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_recording_rules_pass_their_unit_tests() -> None:
    result = _promtool("test", "rules", "tests/narrows-slo.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rejects_a_broken_rule(tmp_path: Path) -> None:
    """The checks above are not vacuous."""
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "groups:\n  - name: x\n    rules:\n      - record: a:b\n        expr: sum(rate(x[5m])\n"
    )
    result = _promtool("check", "rules", str(bad))
    assert result.returncode != 0


def test_scrape_jobs_reach_compose_services_and_name_the_demo_by_its_service_name() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    services = compose()["services"]
    demo = jobs["narrows-demo"]
    assert demo["job_name"] == services["demo"]["environment"]["OTEL_SERVICE_NAME"]
    # One target per replica through Docker's DNS, so --scale needs no edit.
    assert demo["dns_sd_configs"] == [
        {"names": ["demo"], "type": "A", "port": 8000, "refresh_interval": "15s"}
    ]
    for name in ("otelcol", "jaeger", "loki"):
        (host,) = {t.split(":")[0] for t in jobs[name]["static_configs"][0]["targets"]}
        assert host in services, name
    command = services["prometheus"]["command"]
    assert "--enable-feature=exemplar-storage" in command
    assert "--web.enable-otlp-receiver" in command
    assert "--config.file=/etc/prometheus/prometheus.yml" in command
