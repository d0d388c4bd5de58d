"""`<data-dir>/endpoints.json`: how other commands find a running `narrows up`."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

__all__ = ["ENDPOINTS_FILE", "Endpoints", "EndpointsNotFound", "add_data_dir_argument"]

ENDPOINTS_FILE = "endpoints.json"


def add_data_dir_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--data-dir`` of the commands that find a running `narrows up` (fault, diagnose,
    capacity): one definition, so they agree on the default and the help."""
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".narrows"),
        help="where a running `narrows up` keeps endpoints.json (default .narrows/)",
    )


class EndpointsNotFound(Exception):
    """No running `narrows up` was found in the data dir (the message says what to do)."""


@dataclass(frozen=True)
class Endpoints:
    """The URLs one `narrows up` serves.

    ``demo`` is the public API: the demo app, or the gateway of the micro topology.
    ``processes`` lists every service process: ``name``, ``service`` (service.name),
    ``instance`` (service.instance.id), ``url`` and ``pid`` (rewritten when a replica is
    restarted).
    """

    demo: str
    otlp: str
    zipkin: str
    query: str
    dashboard: str
    pid: int
    topology: str = "single"
    processes: tuple[dict[str, Any], ...] = field(default=())

    def write(self, data_dir: Path) -> Path:
        """Write atomically, so a reader never sees half a file."""
        data_dir.mkdir(parents=True, exist_ok=True)
        path = data_dir / ENDPOINTS_FILE
        tmp = path.with_suffix(".tmp")
        doc = asdict(self)
        doc["processes"] = [dict(p) for p in self.processes]
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
        os.replace(tmp, path)
        return path

    @classmethod
    def read(cls, data_dir: Path) -> Endpoints:
        """Read the file `narrows up` wrote, or explain how to start one."""
        path = data_dir / ENDPOINTS_FILE
        try:
            raw = json.loads(path.read_text())
            values = {
                f.name: raw[f.name]
                for f in fields(cls)
                if f.name in raw or f.default is MISSING  # a missing required key: KeyError
            }
            if "processes" in values:
                values["processes"] = tuple(dict(p) for p in values["processes"])
            return cls(**values)
        except FileNotFoundError:
            raise EndpointsNotFound(
                f"no running `narrows up` found ({path} does not exist); "
                "start one with `make up`, or pass the URL explicitly"
            ) from None
        except (ValueError, KeyError, TypeError) as exc:
            raise EndpointsNotFound(f"{path} is not a valid endpoints file: {exc}") from None
