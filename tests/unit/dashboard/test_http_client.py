"""A slow or refusing backend becomes a SourceError that names its URL."""

from __future__ import annotations

import socket
import time

import pytest

from dashboard.sources.base import SourceError
from dashboard.sources.http import JsonClient


def test_a_backend_that_never_answers_times_out_with_its_url() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepts the connection, never answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(SourceError, match="timed out") as err:
            JsonClient(url, timeout_s=0.3).get_json("/api/v3/services")
        assert time.monotonic() - started < 3
    assert err.value.url == f"{url}/api/v3/services"


def test_a_closed_port_is_unreachable_with_its_url(free_port: int) -> None:
    url = f"http://127.0.0.1:{free_port}"
    with pytest.raises(SourceError, match="unreachable") as err:
        JsonClient(url, timeout_s=1).get_json("/api/narrows/stats")
    assert url in str(err.value)
