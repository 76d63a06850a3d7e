"""DEITA scores and XCoder test quality on the embedded real server (SmolLM2-135M)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from synth.sandbox import detect_isolation

pytestmark = pytest.mark.e2e

ROWS = [
    {"instruction": "Write a Python function add(a, b) that returns the sum of a and b.",
     "output": "```python\ndef add(a, b):\n    return a + b\n```"},
    {"instruction": "Write a Python function is_even(n) that tells whether n is even.",
     "output": "```python\ndef is_even(n):\n    return n % 2 == 0\n```"},
]


def test_score_on_embedded_server(tmp_path: Path, embedded_url: str) -> None:
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    run = tmp_path / "run"
    args = ["score", "--input", str(data), "--run-dir", str(run), "--complexity", "--quality",
            "--base-url", embedded_url]
    tests = detect_isolation()[0] is not None
    if tests:
        args += ["--tests", "--num-tests", "3"]
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_BASE_URL"}
    proc = subprocess.run([sys.executable, "-m", "synth", *args], env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(x) for x in (run / "dataset/jsonl/train.jsonl").read_text().splitlines()]
    assert len(rows) == 2
    stats = json.loads((run / "stats.json").read_text())
    counts = stats["stages"]["score"]["counts"]
    for which in ("complexity", "quality"):
        # Every score is a 1..6 expectation or an explicit, counted NaN; never a silent default.
        done = sum(v for k, v in counts.items() if k.startswith(f"method:{which}:"))
        nan = sum(v for k, v in counts.items() if k.startswith(f"nan:{which}:"))
        assert done + nan == 2
        for row in rows:
            value = row["scores"][which]
            assert value is None or 1.0 <= value <= 6.0
    # llama.cpp's server returns top_logprobs: the DEITA expectation is the method used.
    assert counts.get("method:complexity:logprobs", 0) >= 1
    if tests:
        tq = stats["stages"]["test_quality"]["counts"]
        assert sum(tq.values()) >= 2  # per-test outcomes or NaN reasons, all counted
        for row in rows:
            value = row["scores"]["test_quality"]
            assert value is None or (0.0 <= value <= 1.0 and not math.isnan(value))
