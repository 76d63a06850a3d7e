"""``synth decontam`` and ``synth tli`` through the real command line parser."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from synth.cli import app
from synth.filters.benchmarks import humaneval

runner = CliRunner()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three clean rows and two contaminated ones."""
    he = humaneval()
    rows = [
        {"instruction": "Write a SQL query to count users.", "input": "", "output": "SELECT 1;"},
        {"instruction": "Reverse a string in Go.", "input": "s := \"abc\"", "output": "..."},
        {"instruction": "Sort this list.", "input": "[3, 1, 2]", "output": "sorted(x)"},
        {"instruction": "Solve: " + he.items[12].fields["prompt"], "input": "", "output": "ok"},
        {"instruction": "Fix it", "input": "", "output": he.items[40].fields["solution"]},
    ]
    path = tmp_path_factory.mktemp("cli") / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_decontam_cli(data: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["decontam", "--input", str(data), "--run-dir", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert "kept 3 of 5 records" in result.output
    kept = [json.loads(line) for line in (run_dir / "dataset" / "jsonl" / "train.jsonl").open()]
    assert [r["instruction"][:12] for r in kept] == [
        "Write a SQL ", "Reverse a st", "Sort this li"]
    rejects = [json.loads(line) for line in (run_dir / "rejects.jsonl").open()]
    assert {r["record"]["meta"]["decontam"]["item"] for r in rejects} == {
        "HumanEval/12", "HumanEval/40"}


def test_decontam_cli_ngram_only_with_file_benchmark(data: Path, tmp_path: Path) -> None:
    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps({"id": "B1", "question": "Sort this list.",
                                 "answer": "sorted(x)"}) + "\n")
    result = runner.invoke(app, [
        "decontam", "-i", str(data), "--run-dir", str(tmp_path / "run"), "--method", "ngram",
        "--benchmark", f"mine={bench}", "--fields", "question,answer", "--threshold", "0.5"])
    assert result.exit_code == 0, result.output
    assert "kept 4 of 5" in result.output and "ngram:mine=1" in result.output


def test_tli_cli(data: Path, tmp_path: Path) -> None:
    out, md = tmp_path / "tli.json", tmp_path / "tli.md"
    result = runner.invoke(app, ["tli", "--train", str(data), "--test", "humaneval",
                                 "--out", str(out), "--markdown", str(md), "--k", "2"])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["n_train"] == 5 and report["n_test"] == 164 and report["k"] == 2
    assert report["top_pairs"][0]["test_id"] == "HumanEval/12"
    assert "TLI-mean@2" in result.output and md.read_text() in result.output


@pytest.mark.parametrize("args, message", [
    (["tli", "--train", "nope.jsonl"], "does not exist"),
    (["tli", "--train", "{data}", "--test", "nosuch"], "unknown benchmark"),
    (["tli", "--train", "{data}", "--train-fields", "bogus"], "no field"),
    (["decontam", "-i", "{data}", "--method", "fuzzy"], "--method"),
    (["decontam", "-i", "{data}", "--threshold", "0"], "--threshold"),
    (["decontam", "-i", "{data}", "--ngram", "x"], "n-gram sizes"),
])
def test_cli_errors_are_one_red_line(data: Path, tmp_path: Path, args: list[str],
                                     message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, [a.format(data=data) for a in args])
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
