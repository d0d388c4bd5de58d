"""Dashboard settings, read once from ``NARROWS_*`` variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["DashboardSettings"]


@dataclass(frozen=True)
class DashboardSettings:
    source: str = "narrows"
    query_url: str = "http://127.0.0.1:16686"
    token: str | None = None
    timeout_s: float = 5.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> DashboardSettings:
        return cls(
            source=environ.get("NARROWS_SOURCE", "").strip() or "narrows",
            query_url=(environ.get("NARROWS_QUERY_URL", "").strip() or cls.query_url).rstrip("/"),
            token=environ.get("NARROWS_TOKEN", "").strip() or None,
        )
