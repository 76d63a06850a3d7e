"""The Job: one data path through every command, chains checked before the first request,
SIGTERM stopping a run like Ctrl-C."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from conftest import FakeEndpoint

from synth import jobs
from synth.config import GenerateConfig, LLMConfig, ScoreConfig, SelectConfig
from synth.errors import ConfigError
from synth.filters.benchmarks import load_benchmark
from synth.io.seeds import write_seeds
from synth.job import Job, Source
from synth.pipeline import Stage
from synth.records import Record

FUNCS = [f"def f{i}(x):\n    '''Add {i}.'''\n    y = x + {i}\n    return y * {i}\n"
         for i in range(6)]


def hash_encode(self: object, texts: Sequence[str]) -> np.ndarray:
    """A cheap deterministic embedder (bag of hashed words) instead of loading a model."""
    out = np.zeros((len(texts), 64), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in text.split():
            out[i, int(hashlib.sha256(word.encode()).hexdigest(), 16) % 64] += 1.0
    return out + 1e-3


@pytest.fixture
def fake_embedder(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr("synth.embed.Embedder.encode", hash_encode)
    return "hash-bag-of-words"


def function_seeds(path: Path) -> Path:
    write_seeds([Record.from_seed(text, "python", {
        "root": "/corpus", "path": f"pkg/m{i}.py", "start_line": 1, "end_line": 4,
        "file_sha256": f"{i:064x}", "name": f"f{i}", "mode": "function"})
        for i, text in enumerate(FUNCS)], path)
    return path


def rows(dataset: Path) -> list[dict[str, object]]:
    lines = (dataset / "jsonl" / "train.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_generated_rows_survive_filter_select_decontam(
        tmp_path: Path, fake_server: Callable[..., FakeEndpoint], fake_embedder: str) -> None:
    fake = fake_server()
    seeds = function_seeds(tmp_path / "seeds.jsonl")
    llm = LLMConfig(base_url=fake.base_url, concurrency=4)
    gen_dir, filt, sel, dec = (tmp_path / d for d in ("gen", "filter", "select", "decontam"))
    jobs.generate(gen_dir, GenerateConfig(), llm, seeds)
    generated = rows(gen_dir / "dataset")
    assert len(generated) == len(FUNCS)
    first = generated[0]
    assert first["provenance"]["name"] == "f0" and first["provenance"]["mode"] == "function"
    for col in ("model", "template", "template_hash", "rounds", "verdict", "seed_id"):
        assert first[col] is not None, col

    jobs.filters(filt, gen_dir / "dataset", "filter", ScoreConfig(),
                 SelectConfig(tau=1.0, embedder=fake_embedder), llm)
    jobs.filters(sel, filt / "dataset", "select", None,
                 SelectConfig(tau=1.0, embedder=fake_embedder))
    jobs.decontam(sel / "dataset", dec, [load_benchmark("humaneval")])
    final = {r["id"]: r for r in rows(dec / "dataset")}
    assert set(final) == {r["id"] for r in generated}
    added = {"scores", "select_rank"}  # what the later steps write
    for row in generated:
        after = final[row["id"]]
        for col, value in row.items():
            if col not in added:
                assert after[col] == value, col
        assert set(after["scores"]) >= {"ast_complexity", "fused"}


class Needs(Stage):
    name = "needs"

    def __init__(self, reads: tuple[str, ...], writes: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.reads, self.writes = reads, writes

    def run(self, records):  # type: ignore[no-untyped-def]
        yield from records


def test_check_walks_the_chain() -> None:
    Job.check({"instruction"}, [Needs(("instruction",), ("scores.x",)), Needs(("scores.x",))])
    with pytest.raises(ConfigError, match="needs reads scores.y"):
        Job.check({"instruction"}, [Needs(("instruction",), ("scores.x",)),
                                    Needs(("scores.y",))])


def test_misconfigured_chain_fails_before_any_request(
        tmp_path: Path, fake_server: Callable[..., FakeEndpoint], fake_embedder: str) -> None:
    fake = fake_server()
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"instruction": "Add two numbers.", "output": "a + b"}) + "\n")
    llm = LLMConfig(base_url=fake.base_url)
    with pytest.raises(ConfigError, match="scores.quality"):
        jobs.filters(tmp_path / "run", data, "filter", ScoreConfig(complexity=True),
                     SelectConfig(quality_key="quality", embedder=fake_embedder), llm)
    assert fake.requests() == []


def test_source_fields_come_from_the_first_record(tmp_path: Path) -> None:
    recs = [Record(id="a", instruction="x", scores={"s": 1.0})]
    with Job(tmp_path, "t") as job:
        stats = job.run(Source(iter(recs)), [Needs(("instruction", "scores.s"))])
    assert stats["kept"] == 1


def test_sigterm_stops_like_ctrl_c(tmp_path: Path,
                                   fake_server: Callable[..., FakeEndpoint]) -> None:
    fake = fake_server(delay=0.2)
    seeds = tmp_path / "seeds.jsonl"
    write_seeds([Record.from_seed(f"x = {i}\ny = x * {i}", "python", {"path": f"{i}.py"})
                 for i in range(40)], seeds)
    run = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_BASE_URL"}
    proc = subprocess.Popen([sys.executable, "-m", "synth", "generate", "--base-url",
                             fake.base_url, "--run-dir", str(run), "--seeds", str(seeds),
                             "--concurrency", "2", "--no-discriminator"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(fake.requests()) < 6 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err  # SIGTERM: like Ctrl-C, but its own exit code
    assert "interrupted" in err
    stats = json.loads((run / "stats.json").read_text())
    assert stats["interrupted"] is True and 0 < stats["kept"] < 40
    assert len(rows(run / "dataset")) == stats["kept"]
