"""The `narrows` command line: one parser, each subcommand's options owned by its part.

A subcommand is a module exposing ``add_arguments(parser)`` and ``run(args) -> int``; only
the chosen one is imported, so ``narrows --help`` stays fast and a broken part cannot break
the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Protocol, cast

from narrows import __version__

__all__ = ["COMMANDS", "build_parser", "main"]


class _Command(Protocol):
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...
    def run(self, args: argparse.Namespace) -> int: ...


#: name -> (module implementing it, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "up": ("narrows.supervisor", "run the demo app, collector and dashboard together"),
    "demo": ("demo_app.cli", "run the sharded, cached demo service"),
    "service": (
        "demo_app.micro.cli",
        "run one service of the micro topology (gateway, catalog or orders)",
    ),
    "collector": ("collector.cli", "receive OTLP/Zipkin, store in DuckDB, answer queries"),
    "dashboard": ("dashboard.cli", "run the Streamlit dashboard"),
    "load": ("demo_app.load_cli", "send load to the demo service"),
    "fault": ("narrows.fault", "list, set or clear the demo service's fault switches"),
    "diagnose": ("narrows.diagnose", "print the bottlenecks and scaling needs found in telemetry"),
    "capacity": ("narrows.capacity", "run a load sweep and recommend capacity for a target rate"),
}


def _load(name: str) -> _Command:
    module: ModuleType = importlib.import_module(COMMANDS[name][0])
    return cast(_Command, module)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser; with ``only``, just that subcommand's options are loaded."""
    parser = argparse.ArgumentParser(
        prog="narrows",
        description="Narrows: where the time goes, and when you run out of room.",
    )
    parser.add_argument("--version", action="version", version=f"narrows {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:])
        if only == name:
            _load(name).add_arguments(sp)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, dispatch, and turn expected failures into one line and an exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in args_list if not a.startswith("-")), None)
    only = chosen if chosen in COMMANDS else None
    parser = build_parser(only)
    args = parser.parse_args(args_list)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return _load(args.command).run(args)
    except KeyboardInterrupt:
        return 130
