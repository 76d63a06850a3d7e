"""Progress lines tell the truth: done/total, rates, cost, window, rejects; JSON for jobs."""

from __future__ import annotations

import json

import pytest

from synth.pipeline import LogProgress, Stats


def test_json_progress_lines(capsys: pytest.CaptureFixture[str]) -> None:
    stats = Stats()
    stats.llm["requests"] = 10
    stats.llm["tokens_in"] = 100
    stats.stages["generate"].rejected["parse_error"] = 2
    stats.extra["admission"] = lambda: {"window": 3, "window_max": 8, "cost": {"usd": 0.25}}
    progress = LogProgress(every=0.0, fmt="json")
    progress.start(4)
    for _ in range(4):
        progress.advance(stats)
    lines = [json.loads(x) for x in capsys.readouterr().err.splitlines()]
    assert len(lines) == 4 and lines[-1]["done"] == lines[-1]["total"] == 4
    last = lines[-1]
    assert last["window"] == 3 and last["window_max"] == 8 and last["cost_usd"] == 0.25
    assert last["rejects"] == {"parse_error": 2} and last["tokens_in"] == 100
    assert lines[1]["eta_s"] is not None and last["eta_s"] == 0.0
