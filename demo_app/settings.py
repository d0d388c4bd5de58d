"""Demo service settings, read once from the command line / environment."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["DemoSettings"]


@dataclass(frozen=True)
class DemoSettings:
    data_dir: Path = Path(".narrows")
    seed_items: int = 10_000
    service_name: str = "narrows-demo"
