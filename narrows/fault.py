"""`narrows fault`: the demo service's fault switches (filled in by the demo issue)."""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", nargs="?", choices=["list", "set", "clear"])


def run(args: argparse.Namespace) -> int:
    print(
        "narrows fault: not yet implemented (the demo_app issue adds the fault switches)",
        file=sys.stderr,
    )
    return 2
