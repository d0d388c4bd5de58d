"""endpoints.json: how `narrows fault`/`diagnose` find a running `narrows up`."""

from __future__ import annotations

from pathlib import Path

import pytest

from narrows.endpoints import Endpoints, EndpointsNotFound


def test_round_trip(tmp_path: Path) -> None:
    e = Endpoints("http://d", "http://o", "http://z", "http://q", "http://b", 42)
    path = e.write(tmp_path / "dir")
    assert path.name == "endpoints.json"
    assert Endpoints.read(tmp_path / "dir") == e


def test_missing_file_says_how_to_start_one(tmp_path: Path) -> None:
    with pytest.raises(EndpointsNotFound, match="make up"):
        Endpoints.read(tmp_path)


def test_corrupt_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "endpoints.json").write_text("{not json")
    with pytest.raises(EndpointsNotFound, match="not a valid endpoints file"):
        Endpoints.read(tmp_path)
