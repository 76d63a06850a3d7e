"""`synth filter` / `synth select` as a user runs them, with the real packaged embedder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from synth.cli import app
from synth.config import SelectConfig
from synth.embed import Embedder, EmbeddingCache, embed_texts
from synth.filters.diversity import normalize_rows
from synth.filters.select import resolve_keys
from synth.jobs import filters as run_filters
from synth.records import Record

ADD = "```python\ndef add(a, b):\n    if a is None:\n        return b\n    return a + b\n```"
DATE = "```python\nfrom datetime import datetime\nx = datetime.fromisoformat('2020-01-01')\n```"
REV = ("```python\ndef rev(h):\n    p = None\n    while h:\n        h.next, p, h = p, h, h.next\n"
       "    return p\n```")
ROWS = [
    {"instruction": "Write a Python function that adds two numbers.", "output": ADD},
    {"instruction": "Write a Python function that adds two numbers!",
     "output": "```python\ndef add(a, b):\n    return a + b\n```"},
    {"instruction": "Parse an ISO date string into a datetime object.",
     "output": DATE},
    {"instruction": "Explain what a mutex is.", "output": "A lock that one thread holds."},
    {"instruction": "Reverse a linked list in place.", "output": REV},
]


def synth(*args: str) -> Result:
    """The CLI in this process, so the embedding model is loaded once for all tests."""
    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return path


def test_filter_keeps_diverse_best_scored_within_budget(data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = synth("filter", "--input", str(data), "--run-dir", str(run), "--budget", "3",
                 "--tau", "0.9")
    assert proc.exit_code == 0, proc.output
    kept = [json.loads(x) for x in (run / "dataset/jsonl/train.jsonl").read_text().splitlines()]
    # Ranked by ast_complexity (offline default): the two "add" prompts are near-duplicates,
    # so only the higher-scored one survives; the budget then stops at 3.
    assert [r["instruction"] for r in kept] == [ROWS[0]["instruction"], ROWS[2]["instruction"],
                                                ROWS[4]["instruction"]]
    assert all(r["scores"]["fused"] == r["scores"]["ast_complexity"] for r in kept)
    stats = json.loads((run / "stats.json").read_text())
    assert stats["stages"]["select"]["rejected"] == {"too_similar": 1, "over_budget": 1}
    assert stats["stages"]["heuristics"]["counts"] == {"nan:ast_complexity:no_python_code": 1}
    rejects = [json.loads(x) for x in (run / "rejects.jsonl").read_text().splitlines()]
    assert {r["reason"] for r in rejects} == {"too_similar", "over_budget"}
    assert (run / "embeddings.sqlite").exists()

    # select again on the run's own output (scores read back from the dataset): with tau 0.5
    # and the budget off, the diverse three stay and nothing is over budget.
    stats = run_filters(run, None, "select", select=SelectConfig(tau=0.5))
    assert stats["kept"] + stats["rejected"] == 3
    assert "over_budget" not in stats["stages"]["select"]["rejected"]


def test_select_refuses_a_bad_tau(data: Path, tmp_path: Path) -> None:
    proc = synth("select", "--input", str(data), "--run-dir", str(tmp_path), "--tau", "1.5")
    assert proc.exit_code == 1
    assert "--tau is a cosine similarity" in proc.output


def test_embedder_cache_and_similarity(tmp_path: Path) -> None:
    texts = ["sort a list of numbers", "sort a list of integers", "bake bread at home"]
    with EmbeddingCache(tmp_path) as cache:
        first = normalize_rows(embed_texts(texts, Embedder(), cache))
        assert cache.count(Embedder().name) == 3
    assert first.shape == (3, 384) and first.dtype == np.float32
    assert first[0] @ first[1] > 0.8 > first[0] @ first[2]

    class NoModel(Embedder):
        def encode(self, texts):  # noqa: ANN001, ANN202 - the cache must answer everything
            raise AssertionError("embedded again")

    with EmbeddingCache(tmp_path) as cache:
        again = normalize_rows(embed_texts(texts + texts[:1], NoModel(), cache))
    np.testing.assert_array_equal(again, np.vstack([first, first[:1]]))


def test_resolve_keys_prefers_llm_scores() -> None:
    offline = [Record(id="a", scores={"ast_complexity": 1.0})]
    llm = [Record(id="a", scores={"complexity": 2.0, "quality": 3.0})]
    assert resolve_keys(offline, SelectConfig()) == ("ast_complexity", None)
    assert resolve_keys(llm, SelectConfig()) == ("complexity", "quality")
    assert resolve_keys(llm, SelectConfig(quality_key="")) == ("complexity", None)
