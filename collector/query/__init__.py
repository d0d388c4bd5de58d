"""Query API: the Jaeger API v3 for traces and the Narrows aggregates."""
