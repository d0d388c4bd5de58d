"""`narrows diagnose`: findings from the analysis (filled in by the analysis issue)."""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print findings as JSON")


def run(args: argparse.Namespace) -> int:
    print("narrows diagnose: not yet implemented (the analysis issue adds it)", file=sys.stderr)
    return 2
