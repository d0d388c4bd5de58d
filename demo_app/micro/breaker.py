"""A circuit breaker per upstream service: stop calling what keeps failing, probe, recover.

    CLOSED ──(≥ failure_ratio of the last `window` calls failed, at least min_calls)──► OPEN
    OPEN ──(open_s elapsed)──► HALF_OPEN: up to `probes` calls go through
    HALF_OPEN ──(`probes` successes)──► CLOSED      HALF_OPEN ──(one failure)──► OPEN

It counts whole calls (after retries), not attempts: one dead replica whose attempts are
retried elsewhere does not open the circuit of a service that still answers.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from enum import IntEnum

__all__ = ["BreakerState", "CircuitBreaker"]


class BreakerState(IntEnum):
    """The values of ``app_circuit_state``."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitBreaker:
    def __init__(
        self,
        *,
        window: int = 20,
        min_calls: int = 10,
        failure_ratio: float = 0.5,
        open_s: float = 5.0,
        probes: int = 3,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState], None] | None = None,
    ) -> None:
        if not 1 <= min_calls <= window or not 0 < failure_ratio <= 1 or open_s <= 0 or probes < 1:
            raise ValueError(
                "breaker: need 1 <= min_calls <= window, 0 < failure_ratio <= 1, "
                "open_s > 0, probes >= 1"
            )
        self._window: deque[bool] = deque(maxlen=window)
        self._min_calls, self._ratio = min_calls, failure_ratio
        self._open_s, self._probes = open_s, probes
        self._clock = clock
        self._on_change = on_change
        self._state = BreakerState.CLOSED
        self._opened_at = 0.0
        self._probes_out = 0
        self._probe_successes = 0

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self._open_s:
            self._set(BreakerState.HALF_OPEN)
        return self._state

    def retry_after_s(self) -> float:
        """Seconds until the next probe may go (what a 503's Retry-After says)."""
        if self.state is not BreakerState.OPEN:
            return 1.0
        return max(0.0, self._open_s - (self._clock() - self._opened_at))

    def allow(self) -> bool:
        """May a call go now? In HALF_OPEN each ``True`` is a probe: report it with ``done``."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and self._probes_out < self._probes:
            self._probes_out += 1
            return True
        return False

    def done(self, ok: bool | None) -> None:
        """The outcome of an allowed call (``None``: abandoned, e.g. the client went away)."""
        state = self._state
        if state is BreakerState.HALF_OPEN:
            self._probes_out = max(0, self._probes_out - 1)
            if ok is None:
                return
            if not ok:
                self._trip()
                return
            self._probe_successes += 1
            if self._probe_successes >= self._probes:
                self._window.clear()
                self._set(BreakerState.CLOSED)
            return
        if ok is None or state is BreakerState.OPEN:
            return  # a call started before the circuit opened
        self._window.append(ok)
        failures = self._window.count(False)
        if len(self._window) >= self._min_calls and failures >= self._ratio * len(self._window):
            self._trip()

    def _trip(self) -> None:
        self._opened_at = self._clock()
        self._set(BreakerState.OPEN)

    def _set(self, state: BreakerState) -> None:
        if state is BreakerState.HALF_OPEN or state is BreakerState.CLOSED:
            self._probes_out = 0
            self._probe_successes = 0
        if state is not self._state:
            self._state = state
            if self._on_change is not None:
                self._on_change(state)
