"""Decontamination on planted contamination in real Code Alpaca rows."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from nltk.util import ngrams as nltk_ngrams

from synth.errors import ConfigError
from synth.filters.benchmarks import Benchmark
from synth.filters.decontam import ExactDecontam, NgramDecontam
from synth.io.rows import row_to_record
from synth.jobs import decontam as run_decontam
from synth.pipeline import Filter, RunContext, run_stages
from synth.records import Record
from synth.store import RunStore


def run(stages: list[Filter], records: list[Record],
        tmp_path: Path) -> tuple[list[Record], list[Record]]:
    """Kept and rejected records after running ``stages`` on a fresh store."""
    with RunStore(tmp_path / f"run{len(list(tmp_path.iterdir()))}") as store:
        store.begin("test")
        ctx = RunContext(store)
        run_stages(iter(records), stages, ctx)
        kept = [r for _, _, r in store.iter_results("kept")]
        rejected = [r for _, _, r in store.iter_results("rejected")]
    return kept, rejected


def sample_rows(rows: list[dict[str, Any]], n: int, seed: int = 0) -> list[dict[str, Any]]:
    return [dict(r) for r in random.Random(seed).sample(rows, n)]


def to_records(rows: list[dict[str, Any]]) -> list[Record]:
    return [row_to_record(r, i, "code_alpaca") for i, r in enumerate(rows)]


def test_exact_removes_planted_strings_and_keeps_clean(
        code_alpaca_rows: list[dict[str, Any]], he: Benchmark, tmp_path: Path) -> None:
    rows = sample_rows(code_alpaca_rows, 500)
    item, item2 = he.items[10], he.items[42]
    # The docstring re-indented and upper-cased still matches; so does a pasted solution.
    shouted = "\n".join("  " + line.strip() for line in item.fields["docstring"].splitlines())
    rows[5]["instruction"] = "Please do this.\n" + shouted.upper()
    rows[77]["output"] = "def f():\n" + item2.fields["solution"] + "\n# done"
    kept, rejected = run([ExactDecontam([he])], to_records(rows), tmp_path)
    assert sorted(r.meta["index"] for r in rejected) == [5, 77]
    assert len(kept) == 498
    ev = {r.meta["index"]: r.meta["decontam"] for r in rejected}
    assert (ev[5]["item"], ev[5]["field"], ev[5]["method"]) == (item.id, "docstring", "exact")
    assert (ev[77]["item"], ev[77]["field"]) == (item2.id, "solution")
    assert all(r.meta["rejected"]["reason"] == "exact:humaneval" for r in rejected)


def test_exact_allow_list(he: Benchmark, tmp_path: Path) -> None:
    # HumanEval/53's whole solution is "return x + y": generic, allowed by default.
    rows = [{"instruction": "Add two numbers.", "output": "def add(x, y):\n    return x + y"}]
    kept, _ = run([ExactDecontam([he])], to_records(rows), tmp_path)
    assert len(kept) == 1
    _, rejected = run([ExactDecontam([he], allow=())], to_records(rows), tmp_path)
    assert rejected[0].meta["decontam"]["item"] == "HumanEval/53"
    kept, _ = run([ExactDecontam([he], allow=("RETURN  x + y",))], to_records(rows), tmp_path)
    assert len(kept) == 1


def nltk_grams(text: str) -> set[tuple[str, ...]]:
    return {g for n in (4, 5) for g in nltk_ngrams(
        text.split(), n, pad_left=True, pad_right=True, left_pad_symbol="<start>",
        right_pad_symbol="<end>")}


def drop_words(text: str, every: int = 7) -> str:
    """A light paraphrase: every 7th word gone, so no long string survives verbatim."""
    return " ".join(w for i, w in enumerate(text.split()) if i % every != every - 1)


def test_ngram_removes_planted_prompt_and_follows_the_definition(
        code_alpaca_rows: list[dict[str, Any]], he: Benchmark, tmp_path: Path) -> None:
    rows = sample_rows(code_alpaca_rows, 400, seed=1)
    # A lightly paraphrased prompt: exact search misses it, n-grams do not.
    rows[9]["instruction"] = "Complete this: " + drop_words(he.items[30].fields["prompt"])
    rows[9]["output"] = "Here you go."
    records = to_records(rows)
    assert ExactDecontam([he]).keep(records[9]) is True
    kept, rejected = run([NgramDecontam([he])], records, tmp_path)
    by_index = {r.meta["index"]: r for r in rejected}
    assert 9 in by_index
    ev = by_index[9].meta["decontam"]
    assert ev["item"] == he.items[30].id and ev["score"] > 0.1 and ev["shared_ngrams"]
    # Every decision equals max S(test, train) >= 0.05 computed pair by pair.
    tests = [nltk_grams(t) for t in he.texts(["prompt", "solution"])]
    expected = set()
    for i, r in enumerate(rows):
        g = nltk_grams(" ".join([r["instruction"], r["input"], r["output"]]))
        if max(len(g & t) / len(t) for t in tests) >= 0.05:
            expected.add(i)
    assert set(by_index) == expected
    assert len(kept) == len(rows) - len(expected) and len(expected) < 40
    for r in rejected:
        assert r.meta["decontam"]["score"] >= 0.05


def test_ngram_batching_does_not_change_decisions(
        code_alpaca_rows: list[dict[str, Any]], he: Benchmark, tmp_path: Path) -> None:
    rows = sample_rows(code_alpaca_rows, 300, seed=2)
    batched = NgramDecontam([he])
    single = NgramDecontam([he])
    single.batch_size = 1
    kept_b, rej_b = run([batched], to_records(rows), tmp_path)
    kept_s, rej_s = run([single], to_records(rows), tmp_path)
    assert [r.id for r in kept_b] == [r.id for r in kept_s]
    assert [r.meta["decontam"] for r in rej_b] == [r.meta["decontam"] for r in rej_s]


def test_ngram_threshold_and_fields_validation(he: Benchmark) -> None:
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ConfigError):
            NgramDecontam([he], threshold=bad)
    with pytest.raises(ConfigError, match="available"):
        NgramDecontam([he], test_fields=("nope",))


def test_run_decontam_writes_kept_rejects_and_summary(
        code_alpaca_rows: list[dict[str, Any]], he: Benchmark, tmp_path: Path) -> None:
    rows = sample_rows(code_alpaca_rows, 200, seed=3)
    rows[0]["instruction"] = he.items[1].fields["docstring"]
    rows[1]["instruction"] = "Finish: " + drop_words(he.items[2].fields["prompt"])
    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run_dir = tmp_path / "run"
    summary = run_decontam(data, run_dir, [he])
    assert summary["dropped"]["exact:humaneval"] == 1
    assert summary["dropped"]["ngram:humaneval"] >= 1
    table = pq.read_table(next((run_dir / "dataset" / "data").glob("*.parquet"))).to_pylist()
    assert len(table) == summary["kept"] == 200 - sum(summary["dropped"].values())
    assert rows[0]["instruction"] not in {r["instruction"] for r in table}
    assert [r["provenance"]["row"] for r in table] == sorted(r["provenance"]["row"]
                                                             for r in table)
    rejects = [json.loads(line) for line in (run_dir / "rejects.jsonl").open()]
    assert len(rejects) == 200 - summary["kept"]
    first = next(r for r in rejects if r["record"]["meta"]["index"] == 0)
    assert first["stage"] == "decontam_exact"
    assert first["record"]["meta"]["decontam"]["item"] == he.items[1].id
    second = next(r for r in rejects if r["record"]["meta"]["index"] == 1)
    assert second["record"]["meta"]["decontam"]["item"] == he.items[2].id
    stats = json.loads((run_dir / "stats.json").read_text())
    assert stats["stages"]["decontam_exact"]["in"] == 200
    assert json.loads((run_dir / "decontam.json").read_text())["kept"] == len(table)
    card = (run_dir / "dataset" / "README.md").read_text()
    assert "## Decontamination" in card and "exact:humaneval: 1" in card
