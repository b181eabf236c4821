"""The test harness's script arguments: on the command line, or handed later to a pre-started process."""

from __future__ import annotations

import io

import pytest

from tests.support.processes import arguments


def test_arguments_from_the_command_line() -> None:
    assert arguments(["script", "mlp", "model.ait", "expected.pt"]) == ["mlp", "model.ait", "expected.pt"]


def test_arguments_from_stdin_keep_the_flags_of_the_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO('["mlp", "model.ait", "expected.pt"]\n'))
    argv = ["script", "--args-from-stdin", "--no-import"]
    assert arguments(argv) == ["mlp", "model.ait", "expected.pt", "--no-import"]
