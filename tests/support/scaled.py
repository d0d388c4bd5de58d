"""Pieces of the scaled shape run without Docker: the compose init script against a private
PostgreSQL, deploy/prometheus's scrape jobs pointed at local targets, and the running stack's
handle (tests/integration/deploy/conftest.py starts it)."""

from __future__ import annotations

import os
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.conftest import require_program
from tests.support.deploy import DEPLOY
from tests.support.procs import OwnedProcess
from tests.support.servers import PostgresServer, PrometheusServer
from tests.support.stack import CollectorProc

INIT_SCRIPT = DEPLOY / "postgres" / "initdb" / "10-narrows-shards.sh"
SHARDS = 4
SEED_ITEMS = 2000
LOAD_SECONDS = 120  # an upper bound: the load is stopped when the module's tests are done


def run_init_script(
    pg: PostgresServer, prefix: str, shards: int | str
) -> subprocess.CompletedProcess[str]:
    """Run the compose init script against ``pg`` as the postgres image would (as a superuser)."""
    psql = require_program("psql")
    env = {
        "PATH": f"{Path(psql).parent}:{os.environ['PATH']}",
        "PGHOST": "127.0.0.1",
        "PGPORT": str(pg.port),
        "POSTGRES_USER": "postgres",
        "POSTGRES_DB": "postgres",
        "NARROWS_SHARDS": str(shards),
        "NARROWS_SHARD_DB_PREFIX": prefix,
    }
    return subprocess.run(
        ["sh", str(INIT_SCRIPT)], env=env, capture_output=True, text=True, timeout=60
    )


def unique_prefix() -> str:
    """Shard database names of our own: the session's PostgreSQL is shared with other tests."""
    return f"scaled_{secrets.token_hex(4)}_shard_"


def scrape_jobs(targets: dict[str, str]) -> list[dict[str, Any]]:
    """deploy/prometheus/prometheus.yml's jobs, each pointed at a local target instead of a
    compose service (job names, paths and labels unchanged); jobs without a target are left out."""
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = []
    for job in config["scrape_configs"]:
        target = targets.get(job["job_name"])
        if target is None:
            continue
        job = {k: v for k, v in job.items() if not k.endswith("_sd_configs")}
        job["static_configs"] = [{"targets": [target]}]
        jobs.append(job)
    return jobs


def prometheus_extra_config(jobs: list[dict[str, Any]]) -> str:
    scrape = "".join("  " + line + "\n" for line in yaml.safe_dump(jobs).splitlines())
    rules = (DEPLOY / "prometheus" / "rules").resolve()
    return scrape + f"rule_files:\n  - '{rules}/*.yml'\n"


@dataclass(eq=False)  # hashable by identity: per-stack caches key on it
class ScaledStack:
    prometheus: PrometheusServer
    collector: CollectorProc
    demo_url: str
    load: OwnedProcess

    def query(self, promql: str) -> dict[str, Any]:
        """The raw answer of an instant query (status, data or error)."""
        resp = httpx.post(f"{self.prometheus.url}/api/v1/query", data={"query": promql}, timeout=10)
        body: dict[str, Any] = resp.json()
        return body
