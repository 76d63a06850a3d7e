"""XCoder unit-test quality: LLM-written tests (mocked endpoint) run in the real sandbox."""

from __future__ import annotations

import json
import math

import httpx
import pytest
from conftest import chat_response, mock_client

from synth.config import SandboxConfig
from synth.filters.testquality import TestQuality, parse_tests
from synth.pipeline import RunContext
from synth.prompts import Prompts
from synth.records import Record
from synth.sandbox import Sandbox, detect_isolation
from synth.store import RunStore

TESTS_REPLY = """Here are the tests:
```python
def test_1():
    assert add(1, 2) == 3

def test_2():
    assert add(-1, 1) == 0

def test_3():
    assert add(2, 2) == 5, "wrong on purpose"

def test_4():
    while True:
        pass
```
"""


@pytest.mark.parametrize(("reply", "names"), [
    (TESTS_REPLY, ["test_1", "test_2", "test_3", "test_4"]),
    ("```python\nassert add(1, 1) == 2\nassert add(0, 0) == 0\n```", ["test_assert_1",
                                                                    "test_assert_2"]),
    ("def test_a():\n    assert True\ndef helper():\n    pass\ndef test_b():\n    pass",
     ["test_a", "test_b"]),
    ("```python\ndef test_(:\n```\nno code here", None),
    ("I will not write tests.", None),
])
def test_parse_tests(reply: str, names: list[str] | None) -> None:
    suite = parse_tests(reply, limit=12)
    assert (suite.names if suite else None) == names


def test_parse_tests_keeps_at_most_the_limit() -> None:
    reply = "\n".join(f"def test_{i}():\n    assert True" for i in range(20))
    assert parse_tests(reply, limit=12).names == [f"test_{i}" for i in range(12)]


@pytest.mark.skipif(detect_isolation()[0] is None, reason="no namespace isolation")
def test_quality_is_passed_over_total_with_per_test_results(store: RunStore) -> None:
    prompts_seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        prompts_seen.append(json.loads(request.content)["messages"][-1]["content"])
        return httpx.Response(200, json=chat_response(TESTS_REPLY))

    recs = [
        Record(id="a", instruction="Add two numbers.", lang="python", meta={"index": 0},
               response="```python\ndef add(a, b):\n    return a + b\n\nassert add(2, 3) == 5\n"
                        "```"),
        Record(id="b", instruction="Add two numbers.", lang="python", meta={"index": 1},
               response="```python\ndef add(a, b):\n    return a - b\n```"),
        Record(id="c", instruction="Add in Rust.", lang="rust", meta={"index": 2},
               response="```rust\nfn add(a: i32, b: i32) -> i32 { a + b }\n```"),
        Record(id="d", instruction="Explain addition.", meta={"index": 3},
               response="Addition combines two numbers."),
    ]
    ctx = RunContext(store)
    with Sandbox(SandboxConfig(parallel=2)) as box:
        stage = TestQuality(mock_client(handler, store), Prompts(), box, num_tests=12,
                            test_timeout_s=1.0)
        stage.bind(ctx)
        try:
            out = {r.id: r for r in stage.run(iter(recs))}
        finally:
            ctx.close()
    assert "Write 12 independent unit tests" in prompts_seen[0]
    a, b = out["a"], out["b"]
    assert a.scores["test_quality"] == 0.5  # test_3 fails, test_4 times out
    statuses = [t["status"] for t in a.meta["unit_tests"]["tests"]]
    assert statuses == ["passed", "passed", "failed", "timeout"]
    assert a.meta["unit_tests"]["self_check"]["status"] == "passed"
    assert b.scores["test_quality"] == 0.0
    assert b.meta["unit_tests"]["self_check"] is None
    assert math.isnan(out["c"].scores["test_quality"])
    assert out["c"].meta["score_errors"]["test_quality"] == "no_runtime:rust"
    assert out["d"].meta["score_errors"]["test_quality"] == "no_python_code"
    counts = ctx.stats.stages["test_quality"].counts
    assert counts["test:passed"] == 2 and counts["test:timeout"] == 2
    assert counts["nan:test_quality:no_runtime:rust"] == 1
    assert len(prompts_seen) == 2  # no LLM call for samples that cannot be run
