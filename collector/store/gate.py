"""The memory bound on accepted-but-not-yet-stored data.

Every request reserves its body size while it is read and decoded, and its decoded batch
size until the batch is committed to DuckDB. A reservation that would pass the capacity is
refused, and the receiver answers 503 with ``Retry-After`` — the released Python exporters
retry 503 (not 429), so senders back off instead of losing data, and the collector's memory
stays under the bound however fast they send.
"""

from __future__ import annotations

import threading

__all__ = ["MemoryGate"]


class MemoryGate:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._used = 0
        self._lock = threading.Lock()

    def reserve(self, n: int) -> bool:
        with self._lock:
            if self._used + n > self.capacity and self._used > 0:
                return False
            self._used += n
            return True

    def release(self, n: int) -> None:
        with self._lock:
            self._used = max(0, self._used - n)

    @property
    def used(self) -> int:
        return self._used
