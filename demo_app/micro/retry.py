"""When a failed upstream call is tried again, after how long, and how many retries are allowed.

Three rules keep retries from hurting (the retry_storm fault switches all three off):

* only what is safe: a connection that was never made (the request never left) is retried
  for any method; a timeout, a dropped connection or a 502/503/504 only for idempotent
  calls (GET, PUT, DELETE) — a POST may have been applied already;
* exponential backoff with full jitter (``uniform(0, min(cap, base·2^(n-1)))``), so the
  retries of many callers spread out instead of arriving together;
* a budget (Finagle's, Envoy's): retries may add at most ``ratio`` of the calls made, plus
  a small floor per second, so an upstream that is down does not get three times the load.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

__all__ = ["IDEMPOTENT_METHODS", "Outcome", "RetryBudget", "RetryPolicy", "is_idempotent"]

#: How one attempt ended. ``connect``: no connection (the request was not sent);
#: ``transport``: the connection broke mid-call; ``error``: a 5xx answer; ``cancelled``:
#: abandoned by our side (never retried).
Outcome = Literal["ok", "error", "timeout", "connect", "transport", "cancelled"]

IDEMPOTENT_METHODS = frozenset(("GET", "HEAD", "OPTIONS", "PUT", "DELETE"))
_RETRYABLE_STATUS = frozenset((502, 503, 504))


def is_idempotent(method: str) -> bool:
    return method.upper() in IDEMPOTENT_METHODS


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 2
    base_backoff_s: float = 0.025
    max_backoff_s: float = 0.5
    #: retry_storm: every failure, every method, no budget
    retry_all: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.max_retries <= 20:
            raise ValueError(f"max_retries must be 0 … 20, got {self.max_retries}")
        if self.base_backoff_s < 0 or self.max_backoff_s < self.base_backoff_s:
            raise ValueError("backoff: need 0 <= base_backoff_s <= max_backoff_s")

    def retryable(self, outcome: Outcome, status: int | None, *, idempotent: bool) -> bool:
        """Whether an attempt that ended this way may be tried again (budget aside)."""
        if outcome in ("ok", "cancelled"):
            return False
        if self.retry_all or outcome == "connect":
            return True
        if not idempotent:
            return False
        if outcome == "error":
            return status in _RETRYABLE_STATUS
        return outcome in ("timeout", "transport")

    def backoff_s(self, retry: int, rng: random.Random) -> float:
        """The pause before retry number ``retry`` (1, 2, …): full jitter."""
        if self.base_backoff_s <= 0:
            return 0.0
        ceiling = min(self.max_backoff_s, self.base_backoff_s * 2 ** max(0, retry - 1))
        return rng.uniform(0.0, ceiling)


class RetryBudget:
    """A token bucket: each call adds ``ratio`` tokens, time adds ``min_per_s`` tokens a
    second, a retry takes one. Bounded at ``cap`` so a quiet spell cannot bank a storm."""

    def __init__(
        self,
        ratio: float = 0.2,
        min_per_s: float = 1.0,
        cap: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= ratio <= 1 or min_per_s < 0 or cap < 1:
            raise ValueError("retry budget: need 0 <= ratio <= 1, min_per_s >= 0, cap >= 1")
        self._ratio, self._min_per_s, self._cap = ratio, min_per_s, cap
        self._clock = clock
        self._tokens = cap
        self._at = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._cap, self._tokens + (now - self._at) * self._min_per_s)
        self._at = now

    def record_call(self) -> None:
        self._refill()
        self._tokens = min(self._cap, self._tokens + self._ratio)

    def try_spend(self) -> bool:
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    @property
    def tokens(self) -> float:
        self._refill()
        return self._tokens
