"""The demo service's exceptions, and the HTTP status each one answers with.

DemoError
├── ConfigError            bad settings or a data dir/database built for another layout
├── InvalidInput     422   a request that passed the schema but makes no sense
├── NotFound         404   an item or order that does not exist
├── InsufficientStock 409  a checkout asking for more than is in stock
├── ShardUnavailable 503   a shard could not answer (down, failing, or no pool connection)
├── Unavailable      503   (micro topology) a service that cannot answer now: try again
├── Forwarded      4xx/5xx (micro topology) another service's error answer, passed on
├── CacheUnavailable       the cache did not answer; never reaches a client (shard read)
└── FaultError             a bad fault switch request
    ├── UnknownFault  404
    └── InvalidFaultParams 422
"""

from __future__ import annotations

__all__ = [
    "CacheUnavailable",
    "ConfigError",
    "DemoError",
    "FaultError",
    "Forwarded",
    "InsufficientStock",
    "InvalidFaultParams",
    "InvalidInput",
    "NotFound",
    "ShardUnavailable",
    "Unavailable",
    "UnknownFault",
]


class DemoError(Exception):
    """Base of every error the demo raises on purpose; ``status`` is the HTTP answer."""

    status = 500


class ConfigError(DemoError, ValueError):
    """Settings that cannot work (the message names the flag and the valid range)."""


class InvalidInput(DemoError):
    status = 422


class NotFound(DemoError):
    status = 404


class InsufficientStock(DemoError):
    status = 409

    def __init__(self, item_id: int, wanted: int, available: int | None = None) -> None:
        have = "fewer" if available is None else str(available)
        super().__init__(f"item {item_id}: {wanted} requested, {have} in stock")
        self.item_id = item_id


class ShardUnavailable(DemoError):
    """A shard did not answer; only requests that need this shard fail."""

    status = 503

    def __init__(self, shard: int, reason: str) -> None:
        super().__init__(f"shard {shard} unavailable: {reason}")
        self.shard = shard
        self.reason = reason


class Unavailable(DemoError):
    """Not now: the answer carries ``Retry-After``."""

    status = 503

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Forwarded(DemoError):
    """An upstream service's 4xx/5xx answer, passed on to our client with its status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class CacheUnavailable(DemoError):
    """The cache did not answer; callers fall back to the shards."""

    status = 503


class FaultError(DemoError):
    status = 422


class UnknownFault(FaultError):
    status = 404


class InvalidFaultParams(FaultError):
    status = 422
