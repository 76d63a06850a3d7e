"""The codegen parser over messy, real-looking LLM replies."""

from __future__ import annotations

import pytest

from synth.generators.codegen import parse_codegen
from synth.generators.parsing import Reject

CODE = "```python\ndef add(a, b):\n    return a + b\n```"

GOOD = [
    # (name, reply, answer_format, problem, solution starts with)
    ("clean sections", f"[Problem Description]\nAdd two numbers.\n\n[Solution]\n{CODE}",
     "sections", "Add two numbers.", "```python"),
    ("sections out of order", f"[Solution]\n{CODE}\n[Problem Description]\nAdd two numbers.",
     "sections", "Add two numbers.", "```python"),
    ("prose before and bold headers",
     f"Sure! Here is a problem.\n\n**[Problem Description]**\nAdd two numbers.\n\n"
     f"**[Solution]**\n{CODE}", "sections", "Add two numbers.", "```python"),
    ("markdown headings without brackets",
     f"## Problem Description\nAdd two numbers.\n## Solution\n{CODE}",
     "sections", "Add two numbers.", "```python"),
    ("header with text on the same line",
     f"[Problem Description]: Add two numbers.\n[Solution]: {CODE}",
     "sections", "Add two numbers.", "```python"),
    ("lower case headers", f"[problem description]\nAdd two numbers.\n[solution]\n{CODE}",
     "sections", "Add two numbers.", "```python"),
    ("header-like comment inside code is not a header",
     "[Problem Description]\nAdd two numbers.\n[Solution]\n```python\n# Solution\n"
     "def add(a, b):\n    return a + b\n```", "sections", "Add two numbers.", "```python"),
    ("clean json", '{"problem": "Add two numbers.", "solution": "def add(a, b): ..."}',
     "json", "Add two numbers.", "def add"),
    ("fenced json with prose",
     'Here you go:\n```json\n{"problem": "Add two numbers.", "solution": "x"}\n```\nEnjoy!',
     "json", "Add two numbers.", "x"),
    ("json with literal newlines in strings",
     '{"problem": "Add two\nnumbers.", "solution": "def add(a, b):\n    return a + b"}',
     "json", "Add two\nnumbers.", "def add"),
    ("json keys in other case",
     '{"Problem Description": "Add two numbers.", "Solution": "y"}', "json",
     "Add two numbers.", "y"),
    ("json asked, sections given", f"[Problem Description]\nAdd two numbers.\n[Solution]\n{CODE}",
     "json", "Add two numbers.", "```python"),
    ("sections asked, json given", '{"problem": "Add two numbers.", "solution": "z"}',
     "sections", "Add two numbers.", "z"),
]


@pytest.mark.parametrize(("reply", "fmt", "problem", "solution"),
                         [g[1:] for g in GOOD], ids=[g[0] for g in GOOD])
def test_parses(reply: str, fmt: str, problem: str, solution: str) -> None:
    result = parse_codegen(reply, fmt)
    assert not isinstance(result, Reject), result
    assert result[0] == problem
    assert result[1].startswith(solution)


BAD = [
    ("no sections at all", "I cannot help with that.", "sections", "parse_no_sections"),
    ("missing solution", "[Problem Description]\nAdd two numbers.", "sections",
     "parse_missing_solution"),
    ("missing problem", f"[Solution]\n{CODE}", "sections", "parse_missing_problem"),
    ("empty solution", "[Problem Description]\nAdd.\n[Solution]\n   \n", "sections",
     "parse_empty_solution"),
    ("truncated json", '{"problem": "Add two numbers.", "solution": "def ad', "json",
     "parse_invalid_json"),
    ("json missing field", '{"problem": "Add two numbers."}', "json", "parse_missing_solution"),
    ("json wrong type", '{"problem": "Add.", "solution": 3}', "json", "parse_wrong_type"),
    ("json array", '["problem", "solution"]', "json", "parse_invalid_json"),
    ("empty reply", "", "json", "parse_invalid_json"),
]


@pytest.mark.parametrize(("reply", "fmt", "reason"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_rejects_with_reason(reply: str, fmt: str, reason: str) -> None:
    result = parse_codegen(reply, fmt)
    assert isinstance(result, Reject)
    assert result.reason == reason
