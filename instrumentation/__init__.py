"""Drop-in telemetry for Python web apps: ``instrument(app)`` wires traces, metrics and logs."""

from instrumentation.helpers import CacheLookup, ShardQuery, cache_lookup, shard_span
from instrumentation.settings import InstrumentationSettings
from instrumentation.setup import Telemetry, configure, instrument

__all__ = [
    "CacheLookup",
    "InstrumentationSettings",
    "ShardQuery",
    "Telemetry",
    "cache_lookup",
    "configure",
    "instrument",
    "shard_span",
]
