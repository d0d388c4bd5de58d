"""The Narrows collector: receive OTLP and Zipkin, keep everything in DuckDB, answer queries."""

__all__: list[str] = []
