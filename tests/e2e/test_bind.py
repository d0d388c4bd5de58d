"""Scenario 8: every Narrows server binds 127.0.0.1 by default.

``narrows up`` (collector: OTLP, Zipkin and query ports; demo; dashboard) runs with its
defaults, and every listening socket of every process it started is read from /proc: all
are on the loopback address, none on 0.0.0.0 or a public interface. And each server
command's ``--listen`` defaults to 127.0.0.1 on its own.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
from pathlib import Path

import pytest

from collector.settings import CollectorSettings
from tests.support.procs import descendants
from tests.support.stack import narrows_up

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

_LISTEN = "0A"


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        pass
    return inodes


def _address(hex_addr: str) -> str:
    raw = bytes.fromhex(hex_addr)
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw[::-1]))
    # /proc/net/tcp6: four 32-bit words, each in host (little-endian) order
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return str(ipaddress.IPv6Address(words))


def listening(pids: set[int]) -> list[tuple[int, str, int]]:
    """(pid, address, port) of every listening TCP socket the processes hold."""
    by_inode = {inode: pid for pid in pids for inode in _socket_inodes(pid)}
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == _LISTEN and inode in by_inode:
                addr, port = local.split(":")
                out.append((by_inode[inode], _address(addr), int(port, 16)))
    return out


def test_every_server_of_narrows_up_listens_on_loopback_only(tmp_path: Path) -> None:
    with narrows_up(tmp_path / "data") as stack:
        pid = stack.proc.proc.pid
        sockets = listening({pid} | descendants(pid))
        ports = {
            int(url.rsplit(":", 1)[1].split("/")[0])
            for url in stack.endpoints.values()
            if isinstance(url, str) and url.startswith("http")
        }
    print("listening:", sorted(sockets))
    assert len(ports) >= 5, stack.endpoints  # demo, OTLP, Zipkin, query, dashboard
    found = {port for _, _, port in sockets}
    missing = {p for p in ports if p not in found}
    assert not missing, f"endpoints not found among the listening sockets: {missing}"
    public = [(pid, a, p) for pid, a, p in sockets if not ipaddress.ip_address(a).is_loopback]
    assert not public, f"listening beyond loopback: {public}"


def test_each_server_command_defaults_to_loopback() -> None:
    from collector.cli import add_arguments as collector_args
    from dashboard.cli import add_arguments as dashboard_args
    from demo_app.cli import add_arguments as demo_args

    assert CollectorSettings().listen == "127.0.0.1"
    assert CollectorSettings.from_env({}).listen == "127.0.0.1"
    for add in (collector_args, demo_args, dashboard_args):
        parser = argparse.ArgumentParser()
        add(parser)
        assert parser.parse_args([]).listen == "127.0.0.1", add.__module__
