"""Default ports and the checks that turn a taken port into a one-line error."""

from __future__ import annotations

import random
import socket
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEFAULT_PORTS", "PortInUse", "PortPlan", "ensure_free", "free_port", "is_free"]

#: Defaults from DESIGN.md; the key is the service, the value (flag, port).
DEFAULT_PORTS: dict[str, tuple[str, int]] = {
    "demo": ("--demo-port", 8000),
    "otlp": ("--otlp-port", 4318),
    "zipkin": ("--zipkin-port", 9411),
    "query": ("--query-port", 16686),
    "dashboard": ("--dashboard-port", 8501),
}


class PortInUse(Exception):
    """A port we were told to use is taken; the message names the flag that changes it."""


def is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on ``host:port`` (we can bind it ourselves)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port(host: str = "127.0.0.1", avoid: set[int] | None = None) -> int:
    """A port that is free now, chosen OUTSIDE the kernel's ephemeral range.

    Ports from ``bind(0)`` come from the ephemeral range, which outgoing connections also
    draw from: a server restarted on such a port can find it taken by some client's
    connection. Picking below the range avoids that race (small race left: the caller
    binds it soon after).
    """
    avoid = avoid or set()
    low, _ = _ephemeral_range()
    candidates = list(range(max(1024, low - 12_000), low))
    random.SystemRandom().shuffle(candidates)
    for port in candidates[:200]:
        if port not in avoid and is_free(port, host):
            return port
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port not in avoid:
            return port
    raise RuntimeError("could not find a free port")


def ensure_free(port: int, flag: str, host: str = "127.0.0.1") -> None:
    """Raise PortInUse with a message naming ``flag`` when ``port`` is taken."""
    if not is_free(port, host):
        raise PortInUse(f"port {port} on {host} is already in use (choose another with {flag})")


@dataclass(frozen=True)
class PortPlan:
    """The ports one ``narrows up`` run will use."""

    demo: int
    otlp: int
    zipkin: int
    query: int
    dashboard: int

    @classmethod
    def resolve(cls, requested: dict[str, int | None], free: bool, host: str) -> PortPlan:
        """Fill unset ports with defaults (or free ports) and check each is bindable."""
        chosen: dict[str, int] = {}
        for name, (flag, default) in DEFAULT_PORTS.items():
            port = requested.get(name)
            if port is None and free:
                port = free_port(host, set(chosen.values()))
            else:
                port = default if port is None else port
                ensure_free(port, flag, host)
            chosen[name] = port
        return cls(**chosen)
