"""docker-compose.yml: valid, pinned, healthy-ordered, memory-bounded, loopback-only, secret-free.

No Docker engine here: the file is checked against the compose-spec schema, by Debian's
``docker-compose config -q`` (1.29: wrong keys, dangling ``depends_on``, missing variables),
and by reading it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_program
from tests.support.deploy import COMPOSE, REPO, compose

ENV_EXAMPLE = REPO / ".env.example"
# One-shot helpers that exit; everything else is long-running and must report its health.
ONE_SHOT = {"probe", "load"}
# x.y.z, never `latest` or a bare major; PostgreSQL releases are numbered x.y.
IMAGE_TAG = re.compile(r"^[\w./-]+:v?\d+\.\d+\.\d+([-.][\w.]+)?$")
POSTGRES_TAG = re.compile(r"^postgres:\d+\.\d+(-[\w.]+)?$")
VAR_REF = re.compile(r"^\$\{[A-Z][A-Z0-9_]*(:?[-?][^}]*)?\}$")


def _services() -> dict[str, dict[str, Any]]:
    return dict(compose()["services"])


def _env_example() -> dict[str, str]:
    pairs = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def test_compose_file_matches_the_compose_spec_schema() -> None:
    # Installed with the dev tools, beside the interpreter running the tests.
    exe = str(Path(sys.executable).with_name("check-jsonschema"))
    if not Path(exe).exists():
        exe = shutil.which("check-jsonschema") or exe
    result = subprocess.run(
        [exe, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _docker_compose_config(compose_file: Path) -> subprocess.CompletedProcess[str]:
    exe = require_program("docker-compose")
    # Only the documented defaults: nothing from the developer's shell or .env leaks in.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "DOCKER_"))}
    return subprocess.run(
        [
            exe,
            "--project-directory",
            str(REPO),
            "--env-file",
            str(ENV_EXAMPLE),
            "-f",
            str(compose_file),
            "config",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=REPO,
    )


def test_docker_compose_accepts_the_file_with_the_example_env() -> None:
    result = _docker_compose_config(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_docker_compose_check_catches_a_dangling_depends_on(tmp_path: Path) -> None:
    """The check above is not vacuous: a depends_on naming no service fails it."""
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(
        COMPOSE.read_text().replace(
            "redis: {condition: service_healthy}", "rediss: {condition: service_healthy}", 1
        )
    )
    result = _docker_compose_config(broken)
    assert result.returncode != 0
    assert "rediss" in result.stdout + result.stderr


def test_every_image_is_pinned_to_a_version() -> None:
    for name, svc in _services().items():
        image = svc.get("image")
        assert image, f"service {name} has no image"
        pinned = IMAGE_TAG.match(image) or POSTGRES_TAG.match(image)
        assert pinned, f"service {name} image {image!r} is not pinned to a release"


def test_every_published_port_binds_loopback() -> None:
    published = 0
    for name, svc in _services().items():
        for port in svc.get("ports", []):
            spec = port if isinstance(port, str) else f"{port.get('host_ip')}:{port['published']}"
            assert re.match(r"^127\.0\.0\.1:\d+:\d+$", spec), f"service {name} publishes {spec!r}"
            published += 1
    assert published >= 8


def test_every_long_running_service_has_a_health_check_and_a_memory_limit() -> None:
    for name, svc in _services().items():
        limit = svc.get("mem_limit") or svc.get("deploy", {}).get("resources", {}).get("limits")
        assert limit, f"service {name} has no memory limit"
        if name not in ONE_SHOT:
            test = svc.get("healthcheck", {}).get("test")
            assert test, f"service {name} has no health check"
            assert test[0] == "CMD", f"service {name}: use the exec form (no shell in some images)"


def test_dependencies_wait_for_health_and_only_on_services_that_report_it() -> None:
    services = _services()
    for name, svc in services.items():
        for dep, cond in svc.get("depends_on", {}).items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            condition = cond["condition"]
            if dep in ONE_SHOT:
                assert condition == "service_completed_successfully", f"{name} → {dep}"
            else:
                assert condition == "service_healthy", f"{name} → {dep}: {condition}"
                assert "healthcheck" in services[dep], f"{name} waits for {dep}, which has none"


def test_a_service_never_depends_on_a_service_of_another_profile() -> None:
    """Otherwise `--profile embedded` alone would fail on a missing dependency."""
    services = _services()
    for name, svc in services.items():
        mine = set(svc.get("profiles", []))
        for dep in svc.get("depends_on", {}):
            theirs = set(services[dep].get("profiles", []))
            assert not theirs or theirs & mine, f"{name} {mine or '{}'} needs {dep} {theirs}"


def test_the_demo_runs_replicated_behind_the_load_balancer_on_shared_backends() -> None:
    services = _services()
    demo = services["demo"]
    assert demo["deploy"]["replicas"] >= 2
    assert "ports" not in demo, "replicas cannot share a host port; the balancer publishes it"
    assert "demo" in services["lb"]["depends_on"]
    assert services["lb"]["ports"] == ["127.0.0.1:8000:8000"]
    assert "redis://redis:6379" in " ".join(demo["command"])
    assert demo["environment"]["NARROWS_DEMO_SHARD_DSN"].endswith(
        "@postgres:5432/narrows_shard_{i}"
    )
    assert demo["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otlp:4318"
    # Loki gets a line for every request, so Grafana's trace → logs link has something to show.
    assert demo["environment"]["NARROWS_ACCESS_LOG"] == "true"


def test_profiles_switch_between_the_otel_collector_and_the_embedded_collector() -> None:
    services = _services()
    scaled = {n for n, s in services.items() if "scaled" in s.get("profiles", [])}
    embedded = {n for n, s in services.items() if "embedded" in s.get("profiles", [])}
    assert scaled == {"otelcol", "jaeger", "prometheus", "loki", "grafana", "dashboard"}
    assert embedded == {"narrows-collector", "dashboard-embedded"}
    assert services["load"]["profiles"] == ["load"]
    for name in ("otelcol", "narrows-collector"):
        assert services[name]["networks"]["default"]["aliases"] == ["otlp"]
    assert services["dashboard"]["environment"]["NARROWS_SOURCE"] == "prometheus+jaeger+loki"
    assert services["dashboard-embedded"]["environment"]["NARROWS_SOURCE"] == "narrows"
    assert _env_example()["COMPOSE_PROFILES"] == "scaled"


def test_no_secret_is_written_in_the_compose_file() -> None:
    for name, svc in _services().items():
        env = svc.get("environment", {})
        assert isinstance(env, dict), f"{name}: use the mapping form for environment"
        for key, value in env.items():
            if re.search(r"PASSWORD|SECRET|TOKEN|API_KEY", key):
                assert VAR_REF.match(str(value)), f"{name}.{key} is not taken from the env file"
    text = COMPOSE.read_text()
    for key, value in _env_example().items():
        if "PASSWORD" in key:
            assert value == "change-me"
            assert f"{key}=" not in text


def test_required_variables_are_documented_in_the_env_example() -> None:
    required = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*):\?", COMPOSE.read_text()))
    assert {"GRAFANA_ADMIN_PASSWORD", "POSTGRES_PASSWORD"} <= required
    assert required <= set(_env_example())
    assert ".env" in (REPO / ".gitignore").read_text().splitlines()


def test_grafana_is_not_anonymous_and_refuses_the_placeholder_password() -> None:
    grafana = _services()["grafana"]
    env = grafana["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert env["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")
    # Run the entrypoint's guard as the container would ($$ is compose's escaped $).
    script = grafana["entrypoint"][2].replace("$$", "$").replace("exec /run.sh", "exit 0")
    for password, code in (("change-me", 1), ("a-real-secret", 0)):
        result = subprocess.run(
            ["sh", "-c", script],
            env={"GF_SECURITY_ADMIN_PASSWORD": password, "PATH": os.environ["PATH"]},
            capture_output=True,
            text=True,
            timeout=10,
        )
        assert result.returncode == code, (password, result.stderr)


def test_every_bind_mounted_file_is_in_the_repository() -> None:
    mounts = 0
    for name, svc in _services().items():
        for volume in svc.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), f"{name} mounts missing {source}"
                mounts += 1
    assert mounts >= 8


@pytest.mark.parametrize(
    ("service", "port"),
    [("lb", 8000), ("otelcol", 13133), ("jaeger", 13133), ("prometheus", 9090), ("loki", 3100)],
)
def test_distroless_health_checks_use_the_probe_busybox(service: str, port: int) -> None:
    svc = _services()[service]
    test = svc["healthcheck"]["test"]
    assert test[1:3] == ["/probe/busybox", "wget"]
    assert f"http://127.0.0.1:{port}/" in test[-1]
    assert "probe:/probe:ro" in svc["volumes"]
    assert svc["depends_on"]["probe"]["condition"] == "service_completed_successfully"
