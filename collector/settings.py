"""Collector settings, read once from flags and ``NARROWS_*`` variables into a frozen object."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CollectorSettings"]


@dataclass(frozen=True)
class CollectorSettings:
    data_dir: Path = Path(".narrows")
    listen: str = "127.0.0.1"
    otlp_port: int = 4318
    zipkin_port: int = 9411
    query_port: int = 16686
    queue_capacity: int = 64
    """Batches waiting for the writer; beyond this, receivers answer 503 + Retry-After."""
    token: str | None = None

    @property
    def db_path(self) -> Path:
        return self.data_dir / "narrows.duckdb"

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] = os.environ, **values: object
    ) -> CollectorSettings:
        token = environ.get("NARROWS_TOKEN", "").strip() or None
        return cls(token=token, **values)  # type: ignore[arg-type]
