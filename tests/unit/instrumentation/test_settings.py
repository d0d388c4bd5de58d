"""Settings: a dict as the environment; spec fallbacks for bad values; overrides validated."""

from __future__ import annotations

import logging

import pytest

from instrumentation.settings import InstrumentationSettings as S


def test_defaults_from_an_empty_environment() -> None:
    s = S.from_env({})
    assert s.service_name == "unknown_service"
    assert s.otlp_protocol == "http/protobuf"  # not the Python exporter's gRPC default
    assert s.traces_exporter == ("otlp",)
    assert s.traces_url == "http://localhost:4318/v1/traces"
    assert s.logs_url == "http://localhost:4318/v1/logs"
    assert s.sampler == "parentbased_always_on"
    assert s.propagators == ("tracecontext", "baggage")
    assert (s.span_queue_size, s.span_batch_size, s.span_schedule_delay_s) == (2048, 512, 5.0)
    assert s.cardinality_limit == 2000
    assert s.access_log is False
    assert s.shutdown_timeout_s == 5.0
    assert s.metrics_path == "/metrics"


def test_service_name_wins_over_resource_attributes() -> None:
    s = S.from_env(
        {
            "OTEL_SERVICE_NAME": "checkout",
            "OTEL_RESOURCE_ATTRIBUTES": "service.name=ignored,deployment.environment=prod,"
            "service.version=1.2.3,team=a%20b",
        }
    )
    assert s.service_name == "checkout"
    assert s.service_version == "1.2.3"
    assert dict(s.resource_attributes) == {"deployment.environment": "prod", "team": "a b"}


def test_resource_service_name_is_used_without_otel_service_name() -> None:
    assert S.from_env({"OTEL_RESOURCE_ATTRIBUTES": "service.name=cart"}).service_name == "cart"


def test_endpoints_base_gets_signal_paths_per_signal_is_used_as_is() -> None:
    s = S.from_env(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/",
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://logs:9000/custom",
        }
    )
    assert s.traces_url == "http://collector:4318/v1/traces"
    assert s.logs_url == "http://logs:9000/custom"


def test_headers_are_url_decoded_and_malformed_entries_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    s = S.from_env({"OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20T0K,broken,x-a=1"})
    assert dict(s.otlp_headers) == {"authorization": "Bearer T0K", "x-a": "1"}
    assert "broken" in caplog.text


def test_empty_values_mean_unset() -> None:
    s = S.from_env(
        {"OTEL_SERVICE_NAME": "  ", "OTEL_TRACES_SAMPLER": "", "OTEL_BSP_MAX_QUEUE_SIZE": ""}
    )
    assert s == S.from_env({})


def test_exporters_samplers_and_propagators_are_read() -> None:
    s = S.from_env(
        {
            "OTEL_TRACES_EXPORTER": "zipkin_json,console",
            "OTEL_EXPORTER_ZIPKIN_ENDPOINT": "http://zipkin:9411/api/v2/spans",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.25",
            "OTEL_PROPAGATORS": "tracecontext,baggage,b3multi",
            "OTEL_LOGS_EXPORTER": "none",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
            "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "OTEL_PYTHON_EXCLUDED_URLS": "healthz,ready",
            "OTEL_PYTHON_FASTAPI_EXCLUDED_URLS": "metrics",
            "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "redis, sqlite3",
        }
    )
    assert s.traces_exporter == ("zipkin_json", "console")
    assert s.zipkin_endpoint == "http://zipkin:9411/api/v2/spans"
    assert (s.sampler, s.sampler_ratio) == ("parentbased_traceidratio", 0.25)
    assert s.propagators == ("tracecontext", "baggage", "b3multi")
    assert s.logs_exporter == "none"
    assert s.otlp_timeout_s == 2.5  # the spec's milliseconds
    assert s.otlp_compression == "gzip"
    assert s.span_schedule_delay_s == 0.2
    assert s.excluded_urls == ("healthz", "ready", "metrics")
    assert s.disabled_instrumentations == ("redis", "sqlite3")


def test_narrows_variables() -> None:
    s = S.from_env(
        {
            "NARROWS_ACCESS_LOG": "TRUE",
            "NARROWS_METRIC_CARDINALITY_LIMIT": "50",
            "NARROWS_METRICS_PATH": "/internal/metrics/",
            "NARROWS_LOG_LEVEL": "debug",
            "NARROWS_REDACT_KEYS": "ssn,IBAN",
            "NARROWS_SHUTDOWN_TIMEOUT": "1.5",
            "NARROWS_CONFIGURE_LOGGING": "false",
            "NARROWS_LOG_STREAM": "stderr",
        }
    )
    assert s.log_stream == "stderr"
    assert s.access_log is True
    assert s.cardinality_limit == 50
    assert s.metrics_path == "/internal/metrics"
    assert s.log_level == "DEBUG"
    assert s.redact_keys == ("ssn", "iban")
    assert s.shutdown_timeout_s == 1.5
    assert s.configure_logging is False


@pytest.mark.parametrize(
    ("name", "value", "field", "default"),
    [
        ("OTEL_TRACES_SAMPLER_ARG", "abc", "sampler_ratio", 1.0),
        ("OTEL_TRACES_SAMPLER_ARG", "1.5", "sampler_ratio", 1.0),
        ("OTEL_TRACES_SAMPLER_ARG", "nan", "sampler_ratio", 1.0),
        ("OTEL_TRACES_SAMPLER", "sometimes", "sampler", "parentbased_always_on"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "-1", "span_queue_size", 2048),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "lots", "span_queue_size", 2048),
        ("OTEL_BSP_SCHEDULE_DELAY", "inf", "span_schedule_delay_s", 5.0),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", "otlp_protocol", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", "otlp_protocol", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318", "otlp_endpoint", "http://localhost:4318"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli", "otlp_compression", "none"),
        ("OTEL_TRACES_EXPORTER", "jaeger", "traces_exporter", ("otlp",)),
        ("OTEL_LOGS_EXPORTER", "syslog", "logs_exporter", "otlp"),
        ("OTEL_SDK_DISABLED", "yes", "sdk_disabled", False),
        ("NARROWS_ACCESS_LOG", "1", "access_log", False),
        ("NARROWS_METRIC_CARDINALITY_LIMIT", "1", "cardinality_limit", 2000),
        ("NARROWS_METRICS_PATH", "metrics", "metrics_path", "/metrics"),
        ("NARROWS_LOG_LEVEL", "loud", "log_level", "INFO"),
        ("NARROWS_LOG_STREAM", "syslog", "log_stream", "stdout"),
        ("NARROWS_SHUTDOWN_TIMEOUT", "-3", "shutdown_timeout_s", 5.0),
    ],
)
def test_bad_value_warns_and_falls_back_to_the_default(
    caplog: pytest.LogCaptureFixture, name: str, value: str, field: str, default: object
) -> None:
    with caplog.at_level(logging.WARNING):
        s = S.from_env({name: value})
    assert getattr(s, field) == default
    assert name in caplog.text


def test_unknown_list_entries_are_dropped_others_kept(caplog: pytest.LogCaptureFixture) -> None:
    s = S.from_env(
        {"OTEL_PROPAGATORS": "tracecontext,xray,b3", "OTEL_TRACES_EXPORTER": "jaeger,otlp"}
    )
    assert s.propagators == ("tracecontext", "b3")
    assert s.traces_exporter == ("otlp",)
    assert "xray" in caplog.text
    assert "jaeger" in caplog.text


def test_none_disables_a_list() -> None:
    assert S.from_env({"OTEL_TRACES_EXPORTER": "none"}).traces_exporter == ("none",)
    assert S.from_env({"OTEL_PROPAGATORS": "none"}).propagators == ("none",)


def test_sdk_disabled_is_true_only_for_true() -> None:
    assert S.from_env({"OTEL_SDK_DISABLED": "True"}).sdk_disabled is True
    assert S.from_env({"OTEL_SDK_DISABLED": "false"}).sdk_disabled is False


def test_keyword_overrides_win_over_the_environment() -> None:
    s = S.from_env({"OTEL_SERVICE_NAME": "env"}, service_name="code", traces_exporter="zipkin_json")
    assert s.service_name == "code"
    assert s.traces_exporter == ("zipkin_json",)


@pytest.mark.parametrize(
    "overrides",
    [
        {"sampler_ratio": 2.0},
        {"traces_exporter": "jaeger"},
        {"cardinality_limit": 0},
        {"metrics_path": "metrics"},
        {"service_name": ""},
        {"otlp_protocol": "grpc"},
    ],
)
def test_bad_override_raises_value_error_naming_the_valid_range(
    overrides: dict[str, object],
) -> None:
    with pytest.raises(ValueError, match="valid"):
        S.from_env({}, **overrides)


def test_unknown_override_raises_value_error() -> None:
    with pytest.raises(ValueError, match="unknown setting"):
        S.from_env({}, servce_name="typo")
