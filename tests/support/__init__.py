"""Test helpers: free ports, our own processes, and private Redis/PostgreSQL/Prometheus servers."""
