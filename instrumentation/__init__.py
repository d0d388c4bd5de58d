"""Drop-in telemetry for Python web apps: ``instrument(app)`` wires traces, metrics and logs."""

from instrumentation.frameworks.asgi import NarrowsASGIMiddleware
from instrumentation.frameworks.wsgi import NarrowsWSGIMiddleware
from instrumentation.helpers import CacheLookup, ShardQuery, cache_lookup, shard_span
from instrumentation.settings import InstrumentationSettings
from instrumentation.setup import Telemetry, configure, current, instrument

__all__ = [
    "CacheLookup",
    "InstrumentationSettings",
    "NarrowsASGIMiddleware",
    "NarrowsWSGIMiddleware",
    "ShardQuery",
    "Telemetry",
    "cache_lookup",
    "configure",
    "current",
    "instrument",
    "shard_span",
]
