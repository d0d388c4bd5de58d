"""docker-compose.yml is valid, pins every image and publishes ports on 127.0.0.1 only."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[3]
COMPOSE = REPO / "docker-compose.yml"


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


def test_compose_file_matches_the_compose_spec_schema() -> None:
    exe = shutil.which("check-jsonschema") or str(REPO / ".venv/bin/check-jsonschema")
    result = subprocess.run(
        [exe, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_image_is_pinned_to_a_version() -> None:
    for name, svc in _compose()["services"].items():
        image = svc.get("image")
        assert image, f"service {name} has no image"
        tag = image.rsplit(":", 1)[1] if ":" in image.split("/")[-1] else ""
        assert tag not in ("", "latest"), f"service {name} image {image!r} is not pinned"


def test_every_published_port_binds_loopback() -> None:
    for name, svc in _compose()["services"].items():
        for port in svc.get("ports", []):
            spec = port if isinstance(port, str) else f"{port.get('host_ip')}:{port['published']}"
            assert re.match(r"^127\.0\.0\.1:", spec), f"service {name} publishes {spec!r}"
