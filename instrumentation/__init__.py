"""Drop-in telemetry for Python web apps: ``instrument(app)`` wires traces, metrics and logs."""

from instrumentation.settings import InstrumentationSettings
from instrumentation.setup import Telemetry, configure, instrument

__all__ = ["InstrumentationSettings", "Telemetry", "configure", "instrument"]
