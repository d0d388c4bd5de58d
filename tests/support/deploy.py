"""Reads the scaled shape's files: compose, Grafana provisioning, Prometheus rules.

Gives every PromQL expression the deployment runs (dashboard panels, template variables,
alert rules, recording rules, the Jaeger → Prometheus correlation), each with where it comes
from, and Grafana's variable interpolation, so the tests can run them against a real
Prometheus exactly as Grafana would send them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "COMPOSE",
    "DASHBOARDS",
    "DEPLOY",
    "GRAFANA",
    "PROMETHEUS_UID",
    "REPO",
    "Query",
    "Variable",
    "alert_queries",
    "alert_rules",
    "compose",
    "correlation_queries",
    "dashboard_queries",
    "dashboard_variables",
    "dashboards",
    "datasources",
    "interpolate",
    "iter_panels",
    "recording_rule_queries",
    "target_datasource_uid",
]

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
DEPLOY = REPO / "deploy"
GRAFANA = REPO / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
PROMETHEUS_UID = "narrows-prometheus"


@dataclass(frozen=True)
class Query:
    """One PromQL expression and where it lives (for the failure message)."""

    where: str
    expr: str
    exemplar: bool = False


@dataclass(frozen=True)
class Variable:
    """A Grafana template variable backed by a Prometheus query (``label_values(...)``)."""

    dashboard: str
    name: str
    query: str
    multi: bool
    include_all: bool


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


def dashboards() -> dict[str, dict[str, Any]]:
    """File name → dashboard JSON."""
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}


def iter_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in (collapsed) rows."""
    for panel in panels:
        yield panel
        yield from iter_panels(panel.get("panels", []))


def target_datasource_uid(panel: dict[str, Any], target: dict[str, Any]) -> str | None:
    """A target's datasource overrides its panel's, as in Grafana."""
    for ds in (target.get("datasource"), panel.get("datasource")):
        if isinstance(ds, dict) and ds.get("uid"):
            return str(ds["uid"])
    return None


def dashboard_queries() -> list[Query]:
    out = []
    for name, dash in dashboards().items():
        for panel in iter_panels(dash.get("panels", [])):
            for target in panel.get("targets", []):
                if target_datasource_uid(panel, target) != PROMETHEUS_UID:
                    continue
                where = f"{name} panel {panel.get('title')!r} target {target.get('refId')}"
                out.append(Query(where, target["expr"], bool(target.get("exemplar"))))
    return out


def dashboard_variables() -> list[Variable]:
    out = []
    for name, dash in dashboards().items():
        for var in dash.get("templating", {}).get("list", []):
            if var.get("type") != "query":
                continue
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            out.append(
                Variable(
                    name,
                    var["name"],
                    query,
                    bool(var.get("multi")),
                    bool(var.get("includeAll")),
                )
            )
    return out


def alert_rules() -> list[dict[str, Any]]:
    rules = []
    for path in sorted((GRAFANA / "provisioning" / "alerting").glob("*.yaml")):
        for group in yaml.safe_load(path.read_text()).get("groups", []):
            rules.extend(group.get("rules", []))
    return rules


def alert_queries() -> list[Query]:
    out = []
    for rule in alert_rules():
        for node in rule["data"]:
            if node.get("datasourceUid") == PROMETHEUS_UID:
                out.append(
                    Query(f"alert {rule['uid']} query {node['refId']}", node["model"]["expr"])
                )
    return out


def recording_rule_queries() -> list[Query]:
    out = []
    for path in sorted((DEPLOY / "prometheus" / "rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                name = rule.get("record") or rule.get("alert")
                out.append(Query(f"{path.name} rule {name}", rule["expr"]))
    return out


def datasources() -> list[dict[str, Any]]:
    """Provisioned datasources as Grafana sees them (``$$`` unescaped to ``$``)."""
    out = []
    for path in sorted((GRAFANA / "provisioning" / "datasources").glob("*.yaml")):
        text = path.read_text().replace("$$", "$")
        out.extend(yaml.safe_load(text).get("datasources", []))
    return out


def correlation_queries() -> list[Query]:
    """The trace → metrics queries Grafana offers on a Jaeger span (``$__tags`` inside)."""
    out = []
    for ds in datasources():
        for q in ds.get("jsonData", {}).get("tracesToMetrics", {}).get("queries", []):
            out.append(Query(f"datasource {ds['uid']} tracesToMetrics {q['name']!r}", q["query"]))
    return out


_VAR = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


def _regular_escape(value: str) -> str:
    # Grafana's prometheusRegularEscape (single-value variables).
    return value.replace("\\", "\\\\").replace("'", "\\\\'")


def _regex_escape(value: str) -> str:
    # Grafana's prometheusSpecialRegexEscape (multi-value / All variables, used with =~).
    value = value.replace("\\", "\\\\\\\\")
    return re.sub(r"[$^*{}\[\]'+?.()|]", lambda m: "\\\\" + m.group(0), value)


def interpolate(
    expr: str,
    values: Mapping[str, str],
    *,
    regex_vars: frozenset[str] = frozenset(),
) -> str:
    """Replace ``$var``, ``${var}``, ``[[var]]`` as Grafana's Prometheus datasource does.

    Variables in ``regex_vars`` (multi-value or with an All option) are regex-escaped; a name
    not in ``values`` raises ``KeyError``, so an undefined variable fails the test.
    """

    def one(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        value = values[name]
        if name.startswith("__"):
            return value
        return _regex_escape(value) if name in regex_vars else _regular_escape(value)

    return _VAR.sub(one, expr)
