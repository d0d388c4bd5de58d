"""Settings read once from the standard ``OTEL_*`` (and our ``NARROWS_*``) variables.

Spec rules (OpenTelemetry SDK environment variables): an empty value means unset; a
boolean is true only for case-insensitive ``true``; an unparseable value warns and falls
back to the default. Keyword overrides (``configure(service_name=...)``) are constructor
arguments, so a bad one raises ``ValueError`` naming the valid values instead.

Narrows defaults the OTLP protocol to ``http/protobuf`` (the spec default): the Python
SDK's own ``otlp`` exporter defaults to gRPC, which Narrows neither needs nor installs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from instrumentation._env import Env

__all__ = [
    "LOGS_EXPORTERS",
    "PROPAGATORS",
    "SAMPLERS",
    "TRACES_EXPORTERS",
    "InstrumentationSettings",
]

_log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "http://localhost:4318"
DEFAULT_ZIPKIN_ENDPOINT = "http://localhost:9411/api/v2/spans"
TRACES_EXPORTERS = ("otlp", "zipkin_json", "console", "none")
LOGS_EXPORTERS = ("otlp", "console", "none")
METRICS_EXPORTERS = ("prometheus", "none")
PROTOCOLS = ("http/protobuf",)
SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)
PROPAGATORS = ("tracecontext", "baggage", "b3", "b3multi", "none")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True)
class InstrumentationSettings:
    """Everything ``instrument``/``configure`` need, resolved from the environment."""

    # Resource
    service_name: str = "unknown_service"
    service_version: str | None = None
    resource_attributes: Mapping[str, str] = field(default_factory=dict)
    sdk_disabled: bool = False
    # Traces
    traces_exporter: tuple[str, ...] = ("otlp",)
    otlp_endpoint: str = DEFAULT_ENDPOINT
    otlp_traces_endpoint: str | None = None
    otlp_logs_endpoint: str | None = None
    otlp_protocol: str = "http/protobuf"
    otlp_headers: Mapping[str, str] = field(default_factory=dict)
    otlp_timeout_s: float = 10.0
    otlp_compression: str = "none"
    zipkin_endpoint: str = DEFAULT_ZIPKIN_ENDPOINT
    sampler: str = "parentbased_always_on"
    sampler_ratio: float = 1.0
    propagators: tuple[str, ...] = ("tracecontext", "baggage")
    span_queue_size: int = 2048
    span_batch_size: int = 512
    span_schedule_delay_s: float = 5.0
    excluded_urls: tuple[str, ...] = ()
    #: baggage entries copied onto SERVER spans as attributes of the same name
    baggage_span_attributes: tuple[str, ...] = ("app.tenant",)
    #: longer span/event attribute values are truncated (the SDK's default is no limit,
    #: which lets request-controlled values make every queued span large)
    attribute_value_length_limit: int = 8192
    disabled_instrumentations: tuple[str, ...] = ()
    # Logs
    logs_exporter: str = "otlp"
    log_queue_size: int = 2048
    log_batch_size: int = 512
    log_schedule_delay_s: float = 1.0
    configure_logging: bool = True
    log_level: str = "INFO"
    log_stream: str = "stdout"
    access_log: bool = False
    redact_keys: tuple[str, ...] = ()
    # Metrics
    metrics_exporter: str = "prometheus"
    metrics_path: str = "/metrics"
    cardinality_limit: int = 2000
    # Lifecycle
    shutdown_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def traces_url(self) -> str:
        """The per-signal endpoint is used as-is; the base endpoint gets ``/v1/traces``."""
        return self.otlp_traces_endpoint or self.otlp_endpoint.rstrip("/") + "/v1/traces"

    @property
    def logs_url(self) -> str:
        return self.otlp_logs_endpoint or self.otlp_endpoint.rstrip("/") + "/v1/logs"

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] = os.environ, **overrides: Any
    ) -> InstrumentationSettings:
        """Read the variables once; keyword overrides win over the environment."""
        settings = cls(**_read(Env(environ)))
        if not overrides:
            return settings
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown setting(s) {unknown}; valid settings: {sorted(known)}")
        overrides = {k: _coerce(k, v) for k, v in overrides.items()}
        return replace(settings, **overrides)


def _coerce(name: str, value: Any) -> Any:
    """Accept a comma-separated string where a tuple is stored (``traces_exporter="otlp"``)."""
    if name in ("traces_exporter", "propagators", "excluded_urls", "redact_keys") and isinstance(
        value, str
    ):
        return tuple(v.strip().lower() for v in value.split(",") if v.strip())
    return value


def _read(env: Env) -> dict[str, Any]:
    resource = env.kv("OTEL_RESOURCE_ATTRIBUTES")
    service = env.text("OTEL_SERVICE_NAME") or resource.pop("service.name", None)
    resource.pop("service.name", None)  # OTEL_SERVICE_NAME wins
    excluded = env.items("OTEL_PYTHON_EXCLUDED_URLS")
    for framework in ("FASTAPI", "STARLETTE", "FLASK", "DJANGO"):
        excluded += env.items(f"OTEL_PYTHON_{framework}_EXCLUDED_URLS")
    return {
        "service_name": service or "unknown_service",
        "service_version": resource.pop("service.version", None),
        "resource_attributes": resource,
        "sdk_disabled": env.flag("OTEL_SDK_DISABLED", False),
        "traces_exporter": env.choices("OTEL_TRACES_EXPORTER", TRACES_EXPORTERS, ("otlp",)),
        "otlp_endpoint": env.url("OTEL_EXPORTER_OTLP_ENDPOINT", DEFAULT_ENDPOINT),
        "otlp_traces_endpoint": env.url("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", None),
        "otlp_logs_endpoint": env.url("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", None),
        "otlp_protocol": _protocol(env),
        "otlp_headers": env.kv("OTEL_EXPORTER_OTLP_HEADERS"),
        # The spec says milliseconds (the Python exporter's own reading is seconds).
        "otlp_timeout_s": env.number("OTEL_EXPORTER_OTLP_TIMEOUT", 10_000, minimum=1) / 1000,
        "otlp_compression": env.choice("OTEL_EXPORTER_OTLP_COMPRESSION", ("none", "gzip"), "none"),
        "zipkin_endpoint": env.url("OTEL_EXPORTER_ZIPKIN_ENDPOINT", DEFAULT_ZIPKIN_ENDPOINT),
        "sampler": env.choice("OTEL_TRACES_SAMPLER", SAMPLERS, "parentbased_always_on"),
        "sampler_ratio": env.ratio("OTEL_TRACES_SAMPLER_ARG", 1.0),
        "propagators": env.choices("OTEL_PROPAGATORS", PROPAGATORS, ("tracecontext", "baggage")),
        "span_queue_size": int(env.number("OTEL_BSP_MAX_QUEUE_SIZE", 2048, minimum=1)),
        "span_batch_size": int(env.number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512, minimum=1)),
        "span_schedule_delay_s": env.number("OTEL_BSP_SCHEDULE_DELAY", 5000, minimum=1) / 1000,
        "excluded_urls": tuple(excluded),
        "baggage_span_attributes": _baggage_keys(env.items("NARROWS_BAGGAGE_SPAN_ATTRIBUTES")),
        "attribute_value_length_limit": int(
            env.number(
                "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
                env.number("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", 8192, minimum=1),
                minimum=1,
            )
        ),
        "disabled_instrumentations": tuple(env.items("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS")),
        "logs_exporter": env.choice("OTEL_LOGS_EXPORTER", LOGS_EXPORTERS, "otlp"),
        "log_queue_size": int(env.number("OTEL_BLRP_MAX_QUEUE_SIZE", 2048, minimum=1)),
        "log_batch_size": int(env.number("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", 512, minimum=1)),
        "log_schedule_delay_s": env.number("OTEL_BLRP_SCHEDULE_DELAY", 1000, minimum=1) / 1000,
        "configure_logging": env.flag("NARROWS_CONFIGURE_LOGGING", True),
        "log_level": env.choice("NARROWS_LOG_LEVEL", LOG_LEVELS, "INFO", upper=True),
        "log_stream": env.choice("NARROWS_LOG_STREAM", ("stdout", "stderr"), "stdout"),
        "access_log": env.flag("NARROWS_ACCESS_LOG", False),
        "redact_keys": tuple(k.lower() for k in env.items("NARROWS_REDACT_KEYS")),
        "metrics_exporter": env.choice("OTEL_METRICS_EXPORTER", METRICS_EXPORTERS, "prometheus"),
        "metrics_path": env.path("NARROWS_METRICS_PATH", "/metrics"),
        "cardinality_limit": int(env.number("NARROWS_METRIC_CARDINALITY_LIMIT", 2000, minimum=2)),
        "shutdown_timeout_s": env.number("NARROWS_SHUTDOWN_TIMEOUT", 5.0, minimum=0),
    }


def _baggage_keys(items: list[str]) -> tuple[str, ...]:
    """Unset: ``app.tenant``; ``none``: no baggage on spans; else the keys listed."""
    if not items:
        return ("app.tenant",)
    return tuple(i for i in items if i.lower() != "none")


def _protocol(env: Env) -> str:
    raw = env.text("OTEL_EXPORTER_OTLP_PROTOCOL")
    if raw is None or raw == "http/protobuf":
        return "http/protobuf"
    # grpc and http/json exporters are not installed; the collector takes http/protobuf.
    env.warn("OTEL_EXPORTER_OTLP_PROTOCOL", raw, "http/protobuf (the only protocol installed)")
    return "http/protobuf"


def _validate(s: InstrumentationSettings) -> None:
    def bad(name: str, value: object, valid: str) -> ValueError:
        return ValueError(f"{name}={value!r} is invalid; valid: {valid}")

    for name in s.traces_exporter:
        if name not in TRACES_EXPORTERS:
            raise bad("traces_exporter", name, ", ".join(TRACES_EXPORTERS))
    for name in s.propagators:
        if name not in PROPAGATORS:
            raise bad("propagators", name, ", ".join(PROPAGATORS))
    checks: list[tuple[str, bool, str]] = [
        ("logs_exporter", s.logs_exporter in LOGS_EXPORTERS, ", ".join(LOGS_EXPORTERS)),
        ("metrics_exporter", s.metrics_exporter in METRICS_EXPORTERS, "prometheus, none"),
        ("otlp_protocol", s.otlp_protocol in PROTOCOLS, "http/protobuf"),
        ("otlp_compression", s.otlp_compression in ("none", "gzip"), "none, gzip"),
        ("sampler", s.sampler in SAMPLERS, ", ".join(SAMPLERS)),
        ("sampler_ratio", 0.0 <= s.sampler_ratio <= 1.0, "0.0 to 1.0"),
        ("log_level", s.log_level in LOG_LEVELS, ", ".join(LOG_LEVELS)),
        ("log_stream", s.log_stream in ("stdout", "stderr"), "stdout, stderr"),
        ("cardinality_limit", s.cardinality_limit >= 2, "an integer >= 2"),
        ("shutdown_timeout_s", s.shutdown_timeout_s >= 0, "seconds >= 0"),
        ("otlp_timeout_s", s.otlp_timeout_s > 0, "seconds > 0"),
        ("metrics_path", s.metrics_path.startswith("/"), "a path starting with /"),
        ("service_name", bool(s.service_name), "a non-empty string"),
    ]
    checks.append(
        (
            "attribute_value_length_limit",
            s.attribute_value_length_limit >= 1,
            "an integer >= 1",
        )
    )
    for q in ("span_queue_size", "span_batch_size", "log_queue_size", "log_batch_size"):
        checks.append((q, getattr(s, q) >= 1, "an integer >= 1"))
    for name, ok, valid in checks:
        if not ok:
            raise bad(name, getattr(s, name), valid)
