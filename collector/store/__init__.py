"""Storage: the DuckDB schema, the single writer and the readers."""
