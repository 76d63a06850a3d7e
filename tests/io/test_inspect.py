"""``synth inspect``: the requested samples, filtered by task, language and reason."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from run_factory import make_run  # noqa: F401 (the fixture)
from typer.testing import CliRunner

import synth.report
from synth.cli import app
from synth.io.formats import OutputConfig


@pytest.fixture(autouse=True)
def no_card(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(synth.report, "build_report", lambda run_dir: {})


def inspect(*args: str) -> str:
    result = CliRunner().invoke(app, ["inspect", *args], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    return result.output


def ids(output: str) -> list[str]:
    return [word for line in output.splitlines() for word in line.split()
            if word.startswith("r0") and len(word) == 5]


@pytest.mark.parametrize("fmt", ["raw", "messages"])
def test_filters_by_task_and_lang(make_run: Callable[..., Path], fmt: str) -> None:
    run = str(make_run(OutputConfig(format=fmt), n=12, rejected=4))
    out = inspect(run, "-n", "3")
    assert ids(out) == ["r0000", "r0001", "r0002"]
    assert "instruction" in out and "response" in out and "seed" in out
    assert "Write a python function number 0." in out
    assert ids(inspect(run, "--task", "summarize", "-n", "10")) == [
        "r0001", "r0003", "r0005", "r0007", "r0009", "r0011"]
    assert ids(inspect(run, "--lang", "rust", "-n", "10")) == [
        "r0001", "r0004", "r0007", "r0010"]
    assert ids(inspect(run, "--lang", "rust", "--task", "codegen", "-n", "10")) == [
        "r0004", "r0010"]


def test_rejects_show_raw_output_and_filter_by_reason(make_run: Callable[..., Path]) -> None:
    run = str(make_run(n=4, rejected=4))
    out = inspect(run, "--rejects")
    assert ids(out) == ["r0004", "r0005", "r0006", "r0007"]
    assert "RAW OUTPUT 0" in out and "raw LLM output" in out
    out = inspect(run, "--reason", "too_similar")
    assert ids(out) == ["r0005", "r0007"]
    assert "RAW OUTPUT 1" in out and "RAW OUTPUT 0" not in out
    assert ids(inspect(run, "--rejects", "--reason", "parse_error", "--task", "codegen")) == [
        "r0004", "r0006"]


def test_nothing_matches(make_run: Callable[..., Path]) -> None:
    run = str(make_run(n=3, rejected=0))
    result = CliRunner().invoke(app, ["inspect", run, "--lang", "cobol"])
    assert result.exit_code == 0
    assert "no matching samples" in result.output
