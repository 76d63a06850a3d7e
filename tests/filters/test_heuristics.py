"""Heuristic scores: lengths, code blocks, cyclomatic-style complexity."""

from __future__ import annotations

import math

import pytest

from synth.filters.heuristics import (
    code_blocks,
    cyclomatic_complexity,
    heuristic_scores,
    python_code,
)
from synth.records import Record


@pytest.mark.parametrize(("code", "expected"), [
    ("x = 1", 1),
    ("def f(x):\n    if x:\n        return 1\n    elif x > 2:\n        return 2\n    return 3", 3),
    ("for i in range(3):\n    while i:\n        i -= 1", 3),
    ("try:\n    pass\nexcept ValueError:\n    pass\nexcept KeyError:\n    pass", 3),
    ("y = [a for a in b if a if a > 1]", 4),
    ("z = a and b and c or d", 4),
    ("v = 1 if a else 2", 2),
    ("match p:\n    case 1:\n        pass\n    case _:\n        pass", 3),
])
def test_cyclomatic_complexity(code: str, expected: int) -> None:
    assert cyclomatic_complexity(code) == expected


@pytest.mark.parametrize(("response", "lang", "code", "why"), [
    ("Here:\n```python\ndef f():\n    return 1\n```\nDone.", "", "def f():\n    return 1\n", ""),
    ("```py\na = 1\n```\ntext\n```\nb = 2\n```", "", "a = 1\n\n\nb = 2\n", ""),
    ("```rust\nfn main() {}\n```", "", None, "no_python_code"),
    ("```python\ndef broken(:\n```", "", None, "syntax_error"),
    ("```\nSome prose, not code.\n```\n```python\nx = 1\n```", "", "x = 1\n", ""),
    ("def f():\n    return 2", "python", "def f():\n    return 2", ""),
    ("Just an explanation in words.", "", None, "no_python_code"),
    ("int main() { return 0; }", "c", None, "no_python_code"),
    ("", "", None, "no_python_code"),
])
def test_python_code_extraction(response: str, lang: str, code: str | None, why: str) -> None:
    assert python_code(response, lang) == (code, why)


def test_heuristic_scores_of_a_record() -> None:
    rec = Record(id="r", instruction="Write f.", input="ctx",
                 response="```python\ndef f(x):\n    return x if x else 0\n```\n```text\nout\n```")
    scores, errors = heuristic_scores(rec)
    assert scores == {"instruction_len": len("Write f.\nctx"), "response_len": len(rec.response),
                      "code_blocks": 2.0, "ast_complexity": 2.0}
    assert errors == {}
    scores, errors = heuristic_scores(Record(id="s", instruction="Explain", response="words"))
    assert math.isnan(scores["ast_complexity"]) and errors == {"ast_complexity": "no_python_code"}


def test_code_blocks_only_counts_closed_fences() -> None:
    assert len(code_blocks("```a\nx\n```\n```b\ny")) == 1
