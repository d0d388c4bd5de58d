"""Multi-process servers: gunicorn hooks for prometheus-client's multiprocess mode.

Traces and logs need nothing here: each worker exports its own, and the export threads
restart in a forked worker with an empty queue (no span is sent twice). Metrics do: each
worker has its own registry, so a scrape would see one random worker. With
``PROMETHEUS_MULTIPROC_DIR`` set (to a directory of its own, in the server's environment
before it starts) the workers write their values to files there and ``/metrics``
aggregates all of them — without exemplars, which prometheus-client's multiprocess mode
does not keep. In a gunicorn config file::

    from instrumentation.multiprocess import child_exit, on_starting

``on_starting`` empties the directory (stale files from the last run would be added in),
``child_exit`` marks a dead worker's live gauges as gone.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from instrumentation.metrics import multiprocess_dir

__all__ = ["child_exit", "on_starting"]

_log = logging.getLogger("instrumentation.multiprocess")


def on_starting(server: Any = None) -> None:
    """gunicorn ``on_starting`` hook: empty ``PROMETHEUS_MULTIPROC_DIR`` (create it if needed)."""
    directory = multiprocess_dir()
    if directory is None:
        return
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink(missing_ok=True)


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn ``child_exit`` hook: drop the dead worker from live gauges."""
    if multiprocess_dir() is None:
        return
    from prometheus_client import multiprocess

    try:
        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
    except OSError:
        _log.debug("could not mark worker %s dead", worker.pid, exc_info=True)
