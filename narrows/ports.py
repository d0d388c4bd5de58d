"""Default ports and the checks that turn a taken port into a one-line error."""

from __future__ import annotations

import socket
from dataclasses import dataclass

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


def free_port(host: str = "127.0.0.1", avoid: set[int] | None = None) -> int:
    """A port the kernel says is free now (small race: the caller binds it soon after)."""
    avoid = avoid or set()
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
