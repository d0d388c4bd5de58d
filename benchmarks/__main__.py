"""Run every benchmark (or the ones named): ``python -m benchmarks [name ...]``.

Each benchmark module in this folder exposes ``main(argv: list[str]) -> int`` and prints
ratios measured side by side in one run (these machines are shared and noisy).
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
from pathlib import Path


def _names() -> list[str]:
    here = Path(__file__).parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_"))


def main(argv: list[str]) -> int:
    wanted = argv or _names()
    unknown = sorted(set(wanted) - set(_names()))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(_names())}")
        return 2
    status = 0
    for name in wanted:
        print(f"=== benchmarks/{name}.py", flush=True)
        started = time.monotonic()
        module = importlib.import_module(f"benchmarks.{name}")
        status |= int(module.main([]))
        print(f"=== {name}: {time.monotonic() - started:.0f}s\n", flush=True)
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
