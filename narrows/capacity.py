"""`narrows capacity`: load sweep and capacity recommendation (filled in by the analysis issue)."""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target-rps", type=float, help="the request rate to plan for")


def run(args: argparse.Namespace) -> int:
    print("narrows capacity: not yet implemented (the analysis issue adds it)", file=sys.stderr)
    return 2
