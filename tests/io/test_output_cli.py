"""The output flags on a real command: score an existing dataset into alpaca jsonl, MIT only."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from synth.cli import app


def test_score_writes_alpaca_jsonl_and_keeps_allowed_licences(tmp_path: Path) -> None:
    import datasets

    data = tmp_path / "in.jsonl"
    rows = [{"id": f"x{i}", "instruction": f"Write f{i}.", "input": "",
             "response": f"```python\ndef f{i}():\n    return {i}\n```",
             "license": ["MIT", "GPL-3.0"][i % 2]} for i in range(6)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "score", "-i", str(data), "--run-dir", str(run), "--format", "alpaca",
        "--output-format", "jsonl", "--license-allow", "MIT"])
    assert result.exit_code == 0, result.output
    ds = datasets.load_dataset(str(run / "dataset"), split="train")
    assert ds["id"] == ["x0", "x2", "x4"] and set(ds["license"]) == {"MIT"}
    assert ds.column_names[:3] == ["instruction", "input", "output"]
    stats = json.loads((run / "stats.json").read_text())
    assert stats["stages"]["license"]["rejected"] == {"license:GPL-3.0": 3}
    config = json.loads((run / "config.json").read_text())
    assert config["output"]["format"] == "alpaca" and config["output"]["license_allow"] == ["MIT"]
    assert "| license: license:GPL-3.0 | 3 |" in (run / "dataset" / "README.md").read_text()


def test_bad_format_is_one_red_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["score", "-i", str(tmp_path / "x.jsonl"), "--run-dir",
                                      str(tmp_path), "--format", "sharegpt"])
    assert result.exit_code == 1 and "--format" in result.output
