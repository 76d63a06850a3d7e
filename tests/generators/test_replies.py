"""Generator replies of every task, as small models really write them, parsed into records."""

from __future__ import annotations

import json

import pytest

from synth.generators import get_task
from synth.generators.parsing import Reject
from synth.records import Record

SEED = "def add(a, b):\n    return a + b"


def _record(task: str) -> Record:
    record = Record.from_seed(SEED, "python", {"path": "m.py"}).for_task(task)
    prepared = get_task(task, "rust" if task == "translate" else None).prepare(record, 0)
    assert isinstance(prepared, Record)
    return prepared


def _json(**fields: str) -> str:
    return json.dumps(fields)


SUMMARY_JSON = _json(task_name="code summarization",
                     instruction="Explain what this Python function does.",
                     solution="It returns the sum of its two arguments.")
REPAIR_JSON = _json(task_name="code repair", information="def add(a, b):\n    return a - b",
                    instruction="This Python function should add but subtracts. Fix it.",
                    solution="```python\ndef add(a, b):\n    return a + b\n```\nIt used -.")
TRANSLATE_JSON = _json(task_name="code translation",
                       instruction="Translate this Python function into Rust.",
                       solution="```rust\nfn add(a: i64, b: i64) -> i64 { a + b }\n```")
EVOL_JSON = _json(task_name="code generation", instruction="Add two numbers without using +.",
                  information="", solution="```python\ndef add(a, b): return sum((a, b))\n```")
CODEGEN_JSON = _json(problem="Write a Python function `add(a, b)` returning a + b.",
                     solution="```python\ndef add(a, b):\n    return a + b\n```")

CASES = [
    # (task, answer format, reply, expected reason or None, expected fields)
    pytest.param("summarize", "json", SUMMARY_JSON, None,
                 {"instruction": "Explain what this Python function does.",
                  "input": SEED, "response": "It returns the sum of its two arguments."},
                 id="summarize-clean-json"),
    pytest.param("summarize", "json", f"Sure! Here it is:\n```json\n{SUMMARY_JSON}\n```\nBye.",
                 None, {"input": SEED}, id="summarize-fenced-with-prose"),
    pytest.param("summarize", "json", f"Here you go: {SUMMARY_JSON} Hope it helps!", None,
                 {"response": "It returns the sum of its two arguments."},
                 id="summarize-prose-around"),
    pytest.param("summarize", "sections",
                 "[Task Name]\ncode summarization\n\n[Instruction]\nExplain this Python code.\n\n"
                 "[Solution]\nIt adds two numbers.", None,
                 {"instruction": "Explain this Python code.", "response": "It adds two numbers."},
                 id="summarize-sections"),
    pytest.param("summarize", "sections",
                 "**INSTRUCTION:** Explain this Python code.\n\n### summary\nIt adds numbers.",
                 None, {"instruction": "Explain this Python code.",
                        "response": "It adds numbers."}, id="summarize-wrong-case-headers"),
    pytest.param("summarize", "json", '{"Instruction": "Explain it.", "Summary": "Adds."}', None,
                 {"instruction": "Explain it.", "response": "Adds."},
                 id="summarize-renamed-keys"),
    pytest.param("summarize", "json", '{"task_name": "code summarization", "instruction": "Exp',
                 "parse_invalid_json", {}, id="summarize-truncated"),
    pytest.param("summarize", "json", _json(instruction="Explain it."),
                 "parse_missing_solution", {}, id="summarize-missing-solution"),
    pytest.param("summarize", "json", _json(instruction="Explain it.", solution=SEED),
                 "parse_copied_code", {}, id="summarize-copies-code"),
    pytest.param("summarize", "json", '{"instruction": ["a"], "solution": "b"}',
                 "parse_wrong_type", {}, id="summarize-wrong-type"),
    pytest.param("translate", "json", TRANSLATE_JSON, None,
                 {"input": SEED, "instruction": "Translate this Python function into Rust."},
                 id="translate-clean"),
    pytest.param("translate", "json",
                 _json(instruction="Translate to Rust.",
                       solution="```python\ndef add(a, b): return a + b\n```"),
                 "parse_wrong_language", {}, id="translate-wrong-language"),
    pytest.param("repair", "json", REPAIR_JSON, None,
                 {"input": "def add(a, b):\n    return a - b"}, id="repair-clean"),
    pytest.param("repair", "json",
                 _json(information="```python\ndef add(a, b):\n    return a + b\n```",
                       instruction="Fix the bug.",
                       solution="```python\ndef add(a, b):\n    return a + b\n```"),
                 "parse_no_bug", {}, id="repair-no-bug"),
    pytest.param("repair", "json", _json(instruction="Fix it.", solution="x"),
                 "parse_missing_information", {}, id="repair-missing-buggy-code"),
    pytest.param("repair", "sections",
                 "[Information]\n```python\ndef add(a, b):\n    return a * b\n```\n"
                 "[Instruction]\nadd multiplies; fix it.\n[Solution]\n```\nreturn a + b\n```\n"
                 "Use +.", None,
                 {"input": "def add(a, b):\n    return a * b"}, id="repair-sections-unfenced"),
    pytest.param("repair", "json",
                 _json(information="x = 1", instruction="Fix it.", solution="Use 2 instead."),
                 "parse_no_code_block", {}, id="repair-fix-without-code"),
    pytest.param("translate", "json",
                 _json(instruction="Translate to Rust.", solution="The complete translation."),
                 "parse_no_code_block", {}, id="translate-prose-only"),
    pytest.param("evol", "json", EVOL_JSON, None,
                 {"instruction": "Add two numbers without using +."}, id="evol-clean"),
    pytest.param("evol", "json",
                 _json(instruction="  write a function that ADDS two numbers ", solution="x"),
                 "parse_not_evolved", {}, id="evol-unchanged"),
    pytest.param("codegen", "json", CODEGEN_JSON, None,
                 {"instruction": "Write a Python function `add(a, b)` returning a + b."},
                 id="codegen-clean"),
    pytest.param("codegen", "sections",
                 "[Problem Description]\nWrite add.\n\n[Solution]\n```python\n# Solution\n```",
                 None, {"instruction": "Write add.", "response": "```python\n# Solution\n```"},
                 id="codegen-sections-header-in-code"),
    pytest.param("codegen", "json", "I cannot help with that.", "parse_invalid_json", {},
                 id="codegen-refusal"),
]


@pytest.mark.parametrize(("task", "answer_format", "reply", "reason", "expected"), CASES)
def test_generator_replies(task: str, answer_format: str, reply: str, reason: str | None,
                           expected: dict[str, str]) -> None:
    record = _record(task)
    if task == "evol":
        record.meta["evol"]["original"]["instruction"] = "Write a function that adds two numbers."
    result = get_task(task, "rust" if task == "translate" else None).parse(
        reply, record, answer_format)
    if reason is None:
        assert isinstance(result, Record), result
        for name, value in expected.items():
            assert getattr(result, name) == value
        assert result.meta["instance"]
    else:
        assert isinstance(result, Reject)
        assert result.reason == reason
        assert result.detail


@pytest.mark.parametrize("task", ["codegen", "summarize", "translate", "repair", "evol"])
@pytest.mark.parametrize("answer_format", ["json", "sections"])
def test_format_instance_round_trips(task: str, answer_format: str) -> None:
    """A few-shot case is written exactly the way the parser reads replies."""
    t = get_task(task)
    instance = {f.key: f"value of {f.key}" for f in t.fields}
    instance["solution"] = "The fix:\n```rust\nfn main() {}\n```"
    record = _record(task)
    if task == "evol":
        record.meta["evol"]["original"]["instruction"] = "something else"
    parsed = t.parse(t.format_instance(instance, answer_format), record, answer_format)
    assert isinstance(parsed, Record), parsed
    assert parsed.meta["instance"] == instance
    assert t.instance(parsed) == instance
