"""The generator–discriminator loop end to end on the embedded real server (SmolLM2-135M).

Asserts structure, not quality: a 135M model writes poor samples and judges them poorly. Few
seeds and small token limits keep the whole file near two minutes on two shared cores.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from synth.config import GenerateConfig, LLMConfig
from synth.io.seeds import write_seeds
from synth.jobs import generate
from synth.records import Record
from synth.store import RunStore

pytestmark = pytest.mark.e2e

SNIPPETS = [
    "def mean(values):\n    total = sum(values)\n    return total / len(values)",
    "def is_even(n):\n    return n % 2 == 0",
]
OUTCOMES = {"accepted", "rejected", "invalid", "judge_error", "verify_failed"}


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("seeds") / "seeds.jsonl"
    write_seeds([Record.from_seed(s, "python", {"path": f"m{i}.py", "start_line": 1})
                 for i, s in enumerate(SNIPPETS)], path)
    return path


@pytest.fixture(scope="module")
def alpaca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("alpaca") / "train.jsonl"
    path.write_text(json.dumps({"instruction": "Write a Python function that reverses a string.",
                                "input": "", "output": "def rev(s):\n    return s[::-1]"}) + "\n")
    return path


def _run(run: Path, url: str, **gen: Any) -> dict[str, Any]:
    # the session's embedded server is passed as a URL, which would make code tasks default to
    # --verify require; the 135M model rarely writes passing tests, so score as `make run` does
    gen.setdefault("verify", "score")
    config = GenerateConfig(max_tokens=128, **gen)
    config.validate()
    return generate(run, config, LLMConfig(base_url=url, concurrency=1))


def _check_run(run: Path, stats: dict[str, Any], tasks: set[str], n: int,
               max_rounds: int) -> list[Record]:
    assert stats["kept"] + stats["rejected"] == n
    loop = stats["discriminator"]
    assert set(loop) == tasks
    assert sum(t["records"] for t in loop.values()) == n
    for t in loop.values():
        assert t["accepted"] + t["rejected"] == t["records"]
        assert t["calls"]["generator"] >= t["records"]
        assert sum(t["round_outcomes"].values()) <= t["records"] * max_rounds
    rows = [json.loads(line) for line in (run / "dataset" / "jsonl" / "train.jsonl").open()]
    assert len(rows) == stats["kept"]
    for row in rows:
        assert row["task"] in tasks and row["instruction"].strip() and row["response"].strip()
    with RunStore(run) as store:
        store.gen = store.db.execute("SELECT MAX(gen) FROM runs").fetchone()[0]
        records = [r for status in ("kept", "rejected") for _, _, r in store.iter_results(status)]
    assert len(records) == n
    for rec in records:
        rounds = rec.meta["rounds"]
        assert 1 <= len(rounds) <= max_rounds
        for entry in rounds:
            assert entry["outcome"] in OUTCOMES
            for side in ("generator", "judge"):
                if side in entry:  # every round's raw I/O
                    assert entry[side]["messages"] and entry[side]["output"] is not None
        if rec.meta.get("rejected", {}).get("reason") == "discriminator_rejected":
            assert rec.meta["failed_rules"]
    rejects = [json.loads(line) for line in (run / "rejects.jsonl").open()]
    assert len(rejects) == stats["rejected"] and all(r["reason"] for r in rejects)
    config = json.loads((run / "config.json").read_text())
    for task in tasks:
        assert config["answer_dialect"][task]["generator"] in ("json_object", "sections")
    return records


# One task goes through two rounds (a revise round when the first is not accepted); the others
# stop after one to keep the file's time down.
@pytest.mark.parametrize(("task", "max_rounds"),
                         [("summarize", 2), ("codegen", 1), ("translate", 1), ("repair", 1)])
def test_seed_task(task: str, max_rounds: int, tmp_path: Path, seeds: Path,
                   embedded_url: str) -> None:
    run = tmp_path / task
    extra = {"to": "rust"} if task == "translate" else {}
    stats = _generate_from_seeds(run, embedded_url, seeds, task, max_rounds=max_rounds, **extra)
    records = _check_run(run, stats, {task}, 1, max_rounds)
    if task == "translate":
        assert records[0].meta["target_lang"] == "rust"
    assert stats["memory"]["block"] == 2


def _generate_from_seeds(run: Path, url: str, seeds: Path, task: str,
                         **gen: Any) -> dict[str, Any]:
    config = GenerateConfig(task=task, num=1, max_tokens=128, **gen)
    config.validate()
    return generate(run, config, LLMConfig(base_url=url, concurrency=1), seeds)


def test_evol(tmp_path: Path, alpaca: Path, embedded_url: str) -> None:
    run = tmp_path / "evol"
    stats = _run(run, embedded_url, task="evol", input=str(alpaca), max_rounds=1)
    records = _check_run(run, stats, {"evol"}, 1, 1)
    assert records[0].meta["evol"]["original"]["instruction"].startswith("Write a Python")
    assert records[0].meta["evol"]["method"]


def test_mix_without_discriminator(tmp_path: Path, seeds: Path, embedded_url: str) -> None:
    run = tmp_path / "mix"
    config = GenerateConfig(task="mix", weights="summarize=1,repair=1", num=2, max_tokens=128,
                            discriminator=False, verify="score")
    stats = generate(run, config, LLMConfig(base_url=embedded_url, concurrency=1), seeds)
    assert stats["kept"] + stats["rejected"] == 2
    assert stats["llm"].get("cache_hits", 0) == 0
    loop = stats["discriminator"]
    assert set(loop) <= {"summarize", "repair"}
    assert all(t["calls"]["judge"] == 0 and t["calls"]["generator"] == t["records"]
               for t in loop.values())
