"""`narrows fault list|set|clear`: the demo service's fault switches, over its admin API.

The demo is found by ``--demo-url``, or by the ``endpoints.json`` a running `narrows up`
wrote into ``--data-dir`` (default ``.narrows/``), so next to `make up` it just works.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any
from urllib.parse import quote

from narrows.endpoints import add_data_dir_argument

__all__ = ["add_arguments", "parse_assignments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action",
        choices=["list", "set", "clear"],
        help="list the faults, set one (NAME key=value …), or clear one (NAME) or all",
    )
    parser.add_argument("name", nargs="?", help="fault name, e.g. slow_shard")
    parser.add_argument("params", nargs="*", metavar="key=value", help="fault parameters")
    parser.add_argument("--demo-url", help="the demo's base URL (default: from endpoints.json)")
    add_data_dir_argument(parser)
    parser.add_argument("--json", action="store_true", help="print the service's JSON answer")


def parse_assignments(items: list[str]) -> dict[str, Any]:
    """``["shard=2", "delay_ms=50"]`` → ``{"shard": 2, "delay_ms": 50}`` (numbers parsed)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"expected key=value, got {item!r}")
        out[key] = _value(value)
    return out


def _value(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def _demo_url(args: argparse.Namespace) -> str:
    if args.demo_url:
        return str(args.demo_url).rstrip("/")
    from narrows.endpoints import Endpoints

    return Endpoints.read(args.data_dir).demo.rstrip("/")


def _describe(entry: dict[str, Any]) -> str:
    params = entry.get("params")
    state = ", ".join(f"{k}={v}" for k, v in params.items() if k != "seed") if params else ""
    status = f"ON  {state}" if entry.get("active") else "off"
    return f"{entry['name']:<18} {status}"


def _listing(doc: dict[str, Any]) -> str:
    lines = []
    for entry in doc.get("faults", []):
        lines.append(_describe(entry))
        lines.append(f"{'':<18} {entry.get('help', '')}")
        for p in entry.get("parameters", []):
            default = "required" if p.get("required") else f"default {p.get('default')}"
            bounds = ""
            if p.get("min") is not None or p.get("max") is not None:
                bounds = (
                    f", {p.get('min', '')} … {p.get('max') if p.get('max') is not None else ''}"
                )
            lines.append(
                f"{'':<20} {p['name']} ({p['type']}, {default}{bounds}): {p.get('help', '')}"
            )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import httpx

    from narrows.endpoints import EndpointsNotFound

    try:
        if args.action == "set" and not args.name:
            raise ValueError("set needs a fault name: narrows fault set NAME key=value …")
        if args.action != "set" and args.params:
            raise ValueError(f"{args.action} takes no key=value parameters")
        if args.action == "list" and args.name:
            raise ValueError("list takes no fault name")
        body = parse_assignments(args.params)
        base = _demo_url(args)
    except (ValueError, EndpointsNotFound) as exc:
        print(f"narrows fault: {exc}", file=sys.stderr)
        return 2
    url = f"{base}/admin/faults" + (f"/{quote(args.name, safe='')}" if args.name else "")
    try:
        with httpx.Client(timeout=10.0) as client:
            if args.action == "list":
                resp = client.get(url)
            elif args.action == "set":
                resp = client.put(url, json=body)
            else:
                resp = client.delete(url)
    except httpx.HTTPError as exc:
        print(f"narrows fault: demo unreachable at {base}: {exc}", file=sys.stderr)
        return 1
    try:
        doc = resp.json()
    except ValueError:
        doc = {"error": resp.text[:200]}
    if resp.status_code >= 400:
        print(f"narrows fault: {doc.get('error', resp.reason_phrase)}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(doc, indent=2))
    elif "faults" in doc:
        print(_listing(doc))
    else:
        print(_describe(doc))
    return 0
