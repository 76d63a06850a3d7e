"""``synth generate`` for the new tasks against the fake endpoint: a mix, and evol run on synth's
own output (real subprocesses, real files)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from conftest import FakeEndpoint

from synth.io.seeds import write_seeds
from synth.records import Record


def synth(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_BASE_URL"}
    return subprocess.run([sys.executable, "-m", "synth", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def rows(run: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (run / "dataset" / "jsonl" / "train.jsonl").open()]


def test_mix_then_evol_of_the_output(tmp_path: Path,
                                     fake_server: Callable[..., FakeEndpoint]) -> None:
    fake = fake_server()
    seeds = tmp_path / "seeds.jsonl"
    write_seeds([Record.from_seed(f"def f{i}(x):\n    return x + {i}", "python",
                                  {"path": f"m{i}.py"}) for i in range(12)], seeds)
    mixed = tmp_path / "mixed"
    proc = synth("generate", "--base-url", fake.base_url, "--seeds", str(seeds), "--run-dir",
                 str(mixed), "--task", "mix", "--weights", "codegen=1,summarize=1,repair=1")
    assert proc.returncode == 0, proc.stderr
    out = rows(mixed)
    assert len(out) == 12 and {r["task"] for r in out} == {"codegen", "summarize", "repair"}
    stats = json.loads((mixed / "stats.json").read_text())
    assert set(stats["discriminator"]) == {"codegen", "summarize", "repair"}
    assert stats["llm"]["requests"] == 24  # one generator and one discriminator call each
    card = (mixed / "dataset" / "README.md").read_text()
    assert "## Generator–discriminator loop" in card and "| repair |" in card
    config = json.loads((mixed / "config.json").read_text())
    assert set(config["mix"]) == {"codegen", "summarize", "repair"}

    evolved = tmp_path / "evolved"
    proc = synth("generate", "--base-url", fake.base_url, "--task", "evol", "--input",
                 str(mixed / "dataset"), "--num", "5", "--run-dir", str(evolved))
    assert proc.returncode == 0, proc.stderr
    out_evol = rows(evolved)
    originals = {r["instruction"] for r in out}
    assert len(out_evol) == 5 and all(r["task"] == "evol" for r in out_evol)
    for r in out_evol:  # the seed of an evolved sample is the original instruction (+ input)
        assert any(str(r["seed"]).startswith(str(o)) for o in originals)
        assert r["instruction"] not in originals
