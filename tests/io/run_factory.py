"""A run directory written through the real outputs path, without an LLM (a fixture module,
not a conftest: tests/conftest.py is imported by name elsewhere)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from synth.io.formats import OutputConfig
from synth.pipeline import RunContext, write_outputs
from synth.records import Record
from synth.store import RunStore

LANGS = ["python", "rust", "go"]
TASKS = ["codegen", "summarize"]


def sample(i: int) -> Record:
    lang = LANGS[i % len(LANGS)]
    task = TASKS[i % len(TASKS)]
    rec = Record(
        id=f"r{i:04d}", seed=f"def f{i}(x):\n    return x + {i}\n", task=task, lang=lang,
        instruction=f"Write a {lang} function number {i}.",
        input="Some context." if i % 2 else "",
        response=f"Here it is:\n\n```{lang}\nfn f{i}() {{}}\n```\n",
        scores={"complexity": 1.0 + (i % 5), "quality": 2.0 + (i % 3) / 2,
                "ast_complexity": math.nan if i % 7 == 0 else float(i % 4)},
        meta={"index": i, "model": "fake-model", "template": task,
              "template_hash": f"{task}hash0001",
              "provenance": {"root": "/src", "path": f"m{i}.py", "start_line": 1,
                             "end_line": 2, "file_sha256": "0" * 64,
                             "license": ["MIT", "Apache-2.0", "GPL-3.0"][i % 3]}})
    return rec


def write_run(run_dir: Path, output: OutputConfig | None = None, n: int = 24,
              rejected: int = 6) -> Path:
    """Kept and rejected records, stats with a select stage, a seeds manifest and file."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "seeds.jsonl").write_text('{"id": "s", "seed": "x", "lang": "python"}\n')
    (run_dir / "seeds.manifest.json").write_text(json.dumps({
        "paths": ["/src"], "datasets": [], "counts": {"seeds": n, "files_read": 3},
        "config": {"mode": "window", "per_file": 1, "min_lines": 1, "max_lines": 15,
                   "near_dedup": 0.0, "seed": 0}}))
    with RunStore(run_dir) as store:
        store.begin("generate")
        ctx = RunContext(store)
        for i in range(n):
            store.put_result(sample(i), "kept")
        for j in range(rejected):
            rec = sample(n + j)
            rec.meta["raw"] = {"output": f"RAW OUTPUT {j} ```python\nbroken(\n```",
                               "finish_reason": "stop"}
            stage, reason = ("select", "too_similar") if j % 2 else ("generate:codegen",
                                                                       "parse_error")
            store.put_result(rec, "rejected", stage, reason)
        st = ctx.stats.stages
        st["generate:codegen"].records_in = n + rejected
        st["generate:codegen"].records_out = n + rejected // 2
        st["generate:codegen"].rejected["parse_error"] = rejected - rejected // 2
        st["select"].records_in = n + rejected // 2
        st["select"].records_out = n
        st["select"].rejected["too_similar"] = rejected // 2
        ctx.stats.llm.update({"requests": 60, "tokens_in": 1000, "tokens_out": 2000})
        config: dict[str, Any] = {
            "LLMConfig": {"model": "fake-model", "base_url": "http://127.0.0.1:1/v1"},
            "GenerateConfig": {"temperature": 0.0, "max_tokens": 512, "seed": 0,
                               "discriminator": True, "max_rounds": 2},
            "SelectConfig": {"budget": n, "tau": 0.9, "fusion": "product", "alpha": 0.5},
            "seeds": str(run_dir / "seeds.jsonl"), "run_dir": str(run_dir)}
        write_outputs(ctx, config, "test dataset", output=output or OutputConfig(),
                      card_sections=["## Extra section\n\ntext"], description="A test set.")
        ctx.close()
    return run_dir


@pytest.fixture
def make_run(tmp_path: Path) -> Callable[..., Path]:
    def make(output: OutputConfig | None = None, name: str = "run", **kw: Any) -> Path:
        return write_run(tmp_path / name, output, **kw)

    return make
