"""`<data-dir>/endpoints.json`: how other commands find a running `narrows up`."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["ENDPOINTS_FILE", "Endpoints", "EndpointsNotFound"]

ENDPOINTS_FILE = "endpoints.json"


class EndpointsNotFound(Exception):
    """No running `narrows up` was found in the data dir (the message says what to do)."""


@dataclass(frozen=True)
class Endpoints:
    """The URLs one `narrows up` serves."""

    demo: str
    otlp: str
    zipkin: str
    query: str
    dashboard: str
    pid: int

    def write(self, data_dir: Path) -> Path:
        """Write atomically, so a reader never sees half a file."""
        data_dir.mkdir(parents=True, exist_ok=True)
        path = data_dir / ENDPOINTS_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        os.replace(tmp, path)
        return path

    @classmethod
    def read(cls, data_dir: Path) -> Endpoints:
        """Read the file `narrows up` wrote, or explain how to start one."""
        path = data_dir / ENDPOINTS_FILE
        try:
            raw = json.loads(path.read_text())
            return cls(**{k: raw[k] for k in cls.__dataclass_fields__})
        except FileNotFoundError:
            raise EndpointsNotFound(
                f"no running `narrows up` found ({path} does not exist); "
                "start one with `make up`, or pass the URL explicitly"
            ) from None
        except (ValueError, KeyError, TypeError) as exc:
            raise EndpointsNotFound(f"{path} is not a valid endpoints file: {exc}") from None
