"""The benchmark registry: built-in HumanEval, files, hub names offline."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synth.errors import ConfigError, InputError
from synth.filters.benchmarks import Benchmark, extract_docstring, load_benchmark


def test_humaneval_is_built_in(he: Benchmark) -> None:
    assert he.name == "humaneval" and len(he.items) == 164
    first = he.items[0]
    assert first.id == "HumanEval/0"
    assert first.fields["prompt"].startswith("from typing import List")
    assert first.fields["docstring"].startswith("Check if in given list of numbers")
    assert "return False" in first.fields["solution"]
    assert he.prompt_fields == ("prompt",)
    assert he.string_fields == ("docstring", "solution")
    assert all(item.fields["docstring"] for item in he.items)
    assert load_benchmark("HumanEval").items == he.items


def test_extract_docstring_takes_the_target_function() -> None:
    prompt = 'def helper():\n    """help"""\n\n\ndef f(x):\n    \'\'\' Do X.\n    \'\'\'\n'
    assert extract_docstring(prompt) == "Do X."
    assert extract_docstring("no docstring here ") == "no docstring here"


def test_humaneval_with_chosen_fields() -> None:
    bench = load_benchmark("humaneval", ["solution"])
    assert bench.prompt_fields == ("solution",) and bench.string_fields == ("solution",)
    with pytest.raises(ConfigError, match="available"):
        load_benchmark("humaneval", ["nope"])


def test_jsonl_benchmark_with_fields(tmp_path: Path) -> None:
    path = tmp_path / "mbpp_test.jsonl"
    path.write_text("\n".join(json.dumps({"task_id": 11 + i, "text": f"Write f{i}.",
                                          "code": f"def f{i}(): pass", "test_list": ["x"]})
                              for i in range(3)) + "\n")
    bench = load_benchmark(f"mbpp={path}", ["text", "code"])
    assert bench.name == "mbpp" and [i.id for i in bench.items] == ["11", "12", "13"]
    assert bench.texts(["text", "code"])[0] == "Write f0. def f0(): pass"
    assert bench.prompt_fields == ("text",) and bench.string_fields == ("text", "code")
    # Without --fields the usual column names are found.
    assert load_benchmark(f"mbpp={path}").text_fields == ("text", "code")
    with pytest.raises(InputError, match="no column"):
        load_benchmark(f"mbpp={path}", ["question"])


def test_parquet_benchmark(tmp_path: Path) -> None:
    path = tmp_path / "lcb.parquet"
    pq.write_table(pa.table({"question_content": ["Given n, print n.", "Sum a list."],
                             "question_id": ["q1", "q2"]}), path)
    bench = load_benchmark(f"lcb={path}", ["question_content"])
    assert [i.id for i in bench.items] == ["q1", "q2"]
    assert bench.texts(["question_content"]) == ["Given n, print n.", "Sum a list."]
    with pytest.raises(InputError, match="--fields"):
        load_benchmark(f"lcb={path}")


def test_hub_benchmark_offline_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError, match="offline.*NAME=path"):
        load_benchmark("google-research-datasets/mbpp:test")


@pytest.mark.parametrize("spec", ["", "nosuchbench", "a=", "=b"])
def test_bad_specs(spec: str) -> None:
    with pytest.raises(ConfigError):
        load_benchmark(spec)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        load_benchmark(f"x={tmp_path / 'missing.jsonl'}")
