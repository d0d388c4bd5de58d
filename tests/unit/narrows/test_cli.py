"""The `narrows` command line: help for every subcommand, clear errors, no tracebacks."""

from __future__ import annotations

import subprocess
import sys

import pytest

from narrows.cli import COMMANDS, main


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_subcommand_has_help_listing_its_options(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    usage = out.split("\n\n", 1)[0]
    assert usage.startswith(f"usage: narrows {command}")
    # Something beyond -h: an option or a positional argument.
    assert usage.replace("[-h]", "").split() != ["usage:", "narrows", command]


def test_no_subcommand_prints_usage_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_console_script_runs_as_module() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "narrows", "--version"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert result.stdout.startswith("narrows ")
