"""TLI: ours against a straightforward transcription of XCoder's calculate_similarity."""

from __future__ import annotations

import heapq
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from nltk.util import ngrams as nltk_ngrams

from synth.errors import ConfigError, InputError
from synth.filters.benchmarks import BenchItem, Benchmark
from synth.filters.tli import compute_tli, tli_markdown
from synth.io.rows import read_records, row_to_record
from synth.records import Record


def xcoder_tli(train_texts: list[str], test_texts: list[str], k: int = 1,
               sizes: tuple[int, ...] = (4, 5)) -> tuple[float, float, list[float]]:
    """XCoder's definition, pair by pair: top-k heap per test item, then mean and max."""
    def grams(text: str) -> set[tuple[str, ...]]:
        out: set[tuple[str, ...]] = set()
        for n in sizes:
            out.update(nltk_ngrams(text.split(), n, pad_left=True, pad_right=True,
                                   left_pad_symbol="<start>", right_pad_symbol="<end>"))
        return out

    train = [grams(t) for t in train_texts]
    leakage = []
    for test in (grams(t) for t in test_texts):
        heap: list[tuple[float, int]] = []
        for i, g in enumerate(train):
            sim = len(g & test) / len(test)
            if len(heap) < k:
                heapq.heappush(heap, (sim, i))
            else:
                heapq.heappushpop(heap, (sim, i))
        leakage.append(float(np.mean([s for s, _ in heap])))
    return float(np.mean(leakage)), float(np.max(leakage)), leakage


def bench_of(texts: list[str]) -> Benchmark:
    items = tuple(BenchItem(f"T/{i}", {"prompt": t}) for i, t in enumerate(texts))
    return Benchmark("toy", items, ("prompt",), ("prompt",), ("prompt",), "test")


def records_of(texts: list[str]) -> list[Record]:
    return [row_to_record({"instruction": t}, i, "test") for i, t in enumerate(texts)]


@pytest.mark.parametrize("k", [1, 2, 5])
@pytest.mark.parametrize("seed", [0, 1])
def test_tli_equals_xcoder_on_random_texts(k: int, seed: int) -> None:
    rng = random.Random(seed)
    vocab = ["def", "f", "(x):", "return", "x", "the", "list", "<start>", "<end>"]
    def text() -> str:
        return " ".join(rng.choice(vocab) for _ in range(rng.randint(0, 25)))
    tests = [text() for _ in range(12)]
    trains = [text() for _ in range(80)]
    report = compute_tli(records_of(trains), bench_of(tests), k=k, batch_size=7)
    mean, mx, leakage = xcoder_tli(trains, tests, k)
    assert report["tli_mean"] == pytest.approx(mean, rel=1e-12, abs=0)
    assert report["tli_max"] == pytest.approx(mx, rel=1e-12, abs=0)
    assert [p["leakage"] for p in report["per_test"]] == pytest.approx(leakage, rel=1e-12)


@pytest.mark.parametrize("k", [1, 3])
def test_tli_equals_xcoder_on_code_alpaca(code_alpaca_rows: list[dict[str, Any]],
                                          he: Benchmark, k: int) -> None:
    rows = random.Random(k).sample(code_alpaca_rows, 800)
    # Default fields: instruction + " " + input vs the HumanEval prompt.
    trains = [r["instruction"] + " " + r["input"] for r in rows]
    recs = [row_to_record(r, i, "ca") for i, r in enumerate(rows)]
    report = compute_tli(recs, he, k=k, batch_size=300)
    mean, mx, leakage = xcoder_tli(trains, he.texts(["prompt"]), k)
    assert mean > 0.005  # real overlap, so equality is not 0 == 0
    assert report["tli_mean"] == pytest.approx(mean, rel=1e-12)
    assert report["tli_max"] == pytest.approx(mx, rel=1e-12)
    assert [p["leakage"] for p in report["per_test"]] == pytest.approx(leakage, rel=1e-12)


def test_tli_report_pairs_and_planted_leak(code_alpaca_rows: list[dict[str, Any]],
                                           he: Benchmark) -> None:
    rows = [dict(r) for r in code_alpaca_rows[:300]]
    rows[123]["instruction"] = "Solve this: " + he.items[7].fields["prompt"]
    recs = [row_to_record(r, i, "ca") for i, r in enumerate(rows)]
    report = compute_tli(recs, he, top_pairs=3)
    top = report["top_pairs"][0]
    assert (top["test_id"], top["train_index"], top["train_id"]) == (
        he.items[7].id, 123, recs[123].id)
    assert top["score"] > 0.8  # all but the padding grams at both ends are shared
    assert top["n_shared"] >= len(top["shared_ngrams"]) > 0
    assert report["tli_max"] == top["score"]
    per = {p["test_id"]: p for p in report["per_test"]}
    assert per[he.items[7].id]["top"][0]["train_index"] == 123
    md = tli_markdown(report)
    assert "TLI-mean@1" in md and he.items[7].id in md
    json.dumps(report)  # the report is JSON-serialisable


def test_tli_with_more_k_than_training_samples() -> None:
    # XCoder's heap then holds every training sample: the mean is over n_train values.
    tests, trains = ["a b c d e"], ["a b c d e", "a b c d"]
    report = compute_tli(records_of(trains), bench_of(tests), k=5)
    assert report["tli_mean"] == pytest.approx(xcoder_tli(trains, tests, k=5)[0])


def test_tli_chat_data_uses_user_turns(tmp_path: Path, he: Benchmark) -> None:
    prompt = he.items[3].fields["prompt"]
    data = tmp_path / "chat.jsonl"
    data.write_text(json.dumps({"messages": [
        {"role": "system", "content": "be helpful"},
        {"role": "user", "content": prompt},
        {"role": "assistant", "content": "sure"}]}) + "\n")
    report = compute_tli(read_records(data), he)
    assert report["per_test"][3]["leakage"] == pytest.approx(
        xcoder_tli([prompt], [prompt])[0])
    assert report["tli_max"] > 0.99


def test_tli_errors() -> None:
    with pytest.raises(InputError):
        compute_tli([], bench_of(["a b c"]))
    with pytest.raises(ConfigError, match="no field"):
        compute_tli(records_of(["x"]), bench_of(["a b c"]), train_fields=("nope",))
    with pytest.raises(ConfigError):
        compute_tli(records_of(["x"]), bench_of(["a b c"]), k=0)
    with pytest.raises(ConfigError, match="available"):
        compute_tli(records_of(["x"]), bench_of(["a b c"]), test_fields=("solution",))
