"""Execution verification in the loop, against a scripted endpoint and the real sandbox: a
failure's output is the next round's critique, K responses picked by tests, the seed oracle
for translate and repair, the execution cache, languages without a runtime."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import chat_response, mock_client

from synth.config import SandboxConfig
from synth.generators import CodegenTask, RepairTask, TranslateTask
from synth.generators.base import Task
from synth.generators.loop import TaskStage
from synth.generators.verify import Verifier, difficulty, extract_code, extract_tests
from synth.generators.verifystep import VerifyStep, name_variants, parse_inputs, seed_function
from synth.llm.client import SamplingParams
from synth.pipeline import RunContext, run_stages
from synth.prompts import Prompts
from synth.records import Record
from synth.sandbox import Sandbox, runner
from synth.store import RunStore

pytestmark = pytest.mark.skipif(runner.detect_isolation()[0] is None,
                                reason="no namespace isolation on this machine")
needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")

GOOD = "```python\ndef add(a, b):\n    return a + b\n```\nAdds the numbers."
BAD = "```python\ndef add(a, b):\n    return a - b\n```\nAdds the numbers."
TESTS = "```python\nassert add(2, 3) == 5\nassert add(0, 0) == 0\nassert add(-1, 1) == 0\n```"


def codegen(solution: str, tests: str = TESTS) -> str:
    return json.dumps({"problem": "Write add(a, b) in Python that returns a + b.",
                       "solution": solution, "tests": tests})


class Endpoint:
    """Scripted replies by request kind: generator (by round), extra responses, oracle
    inputs, discriminator (always yes)."""

    def __init__(self, generator: Callable[[dict[str, Any], int], str],
                 respond: Callable[[dict[str, Any], int], str] | None = None,
                 inputs: str = '{"inputs": [[1, 2], [3, 4], [0, 0]]}') -> None:
        self.generator = generator
        self.respond = respond
        self.inputs = inputs
        self.requests: list[dict[str, Any]] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.requests.append(body)
        user = body["messages"][1]["content"]
        last = body["messages"][-1]["content"]
        if "\nRules:\n" in user:
            rules = [r.split(":")[0] for r in _rule_lines(user)]
            text = json.dumps({**{r: {"reason": "ok", "answer": "yes"} for r in rules},
                               "verdict": "yes"})
        elif "different calls of" in user:
            text = self.inputs
        elif user.startswith("Solve this programming task."):
            assert self.respond is not None
            text = self.respond(body, len(self.requests))
        else:
            rnd = 1 + sum(m["role"] == "assistant" for m in body["messages"])
            text = self.generator(body, rnd)
            del last
        return httpx.Response(200, json=chat_response(text))


def _rule_lines(prompt: str) -> list[str]:
    import re
    return re.findall(r"^\d+\. (\w+): ", prompt, re.MULTILINE)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(SandboxConfig(timeout_s=10.0)) as box:
        yield box


def seed_record(code: str, name: str | None = "add", task: str = "codegen",
                lang: str = "python") -> Record:
    seed = Record.from_seed(code, lang, {"path": "m.py", "name": name, "mode": "function"})
    seed.meta["index"] = 0
    return seed.for_task(task)


def run(store: RunStore, endpoint: Endpoint, sandbox: Sandbox, recs: list[Record], task: Task,
        mode: str = "require", responses: int = 1, discriminate: bool = True,
        **kw: Any) -> tuple[RunContext, TaskStage]:
    ctx = RunContext(store, seed=7)
    client = mock_client(endpoint.handler, store, concurrency=2)
    step = VerifyStep(Verifier(sandbox, store, test_timeout_s=3.0), mode, responses,
                      mutants=kw.pop("mutants", 4), seed=7)
    stage = TaskStage(task, client, Prompts(), SamplingParams(max_tokens=256),
                      answer_format="json", seed=7, verify=step, discriminate=discriminate, **kw)
    try:
        run_stages(iter(recs), [stage], ctx, len(recs))
    finally:
        ctx.close()
    return ctx, stage


def results(store: RunStore, status: str) -> list[tuple[str | None, Record]]:
    return [(reason, rec) for _, reason, rec in store.iter_results(status)]


def test_a_failing_sample_is_fixed_by_the_execution_critique(store: RunStore,
                                                             sandbox: Sandbox) -> None:
    ep = Endpoint(lambda body, rnd: codegen(BAD if rnd == 1 else GOOD))
    ctx, stage = run(store, ep, sandbox, [seed_record("def add(a, b):\n    return a + b")],
                     CodegenTask())
    kept = results(store, "kept")
    assert len(kept) == 1
    rec = kept[0][1]
    assert [e["outcome"] for e in rec.meta["rounds"]] == ["verify_failed", "accepted"]
    assert rec.meta["verified"] is True and rec.scores["pass_rate"] == 1.0
    assert rec.meta["execution"]["status"] == "passed" and rec.meta["execution"]["total"] == 3
    assert rec.meta["tests"].startswith("```python")
    # the second generator request carried the real failure output as its critique
    revise = [b for b in ep.requests if len(b["messages"]) > 2 and "Rules:" not in
              b["messages"][1]["content"]][0]["messages"][-1]["content"]
    assert "run against your tests" in revise
    assert "AssertionError: got -1, expected 5" in revise and "assert add(2, 3) == 5" in revise
    verify = ctx.stats.to_dict()["verify"]
    assert verify["critiqued"] == 1 and verify["fixed_next_round"] == 1
    assert verify["per_task_lang"]["codegen:python"]["verified"] == 1
    assert 0.0 <= rec.scores["mutation_score"] <= 1.0 and rec.meta["mutation"]["total"] >= 1


def test_require_rejects_after_the_last_round_and_score_keeps(tmp_path: Path,
                                                              sandbox: Sandbox) -> None:
    for mode, status in (("require", "rejected"), ("score", "kept")):
        with RunStore(tmp_path / mode) as store:
            store.begin("test")
            run(store, Endpoint(lambda body, rnd: codegen(BAD)), sandbox,
                [seed_record("def add(a, b):\n    return a + b")], CodegenTask(), mode=mode)
            (reason, rec), = results(store, status)
            assert rec.meta["verified"] is False and rec.scores["pass_rate"] == 0.0
            assert rec.meta["execution"]["tests"][0]["status"] == "failed"
            if mode == "require":
                assert reason == "tests_failed"
            else:
                assert math.isnan(rec.scores["mutation_score"])


def test_three_responses_keep_the_passing_one(store: RunStore, sandbox: Sandbox) -> None:
    extras = iter([BAD, GOOD])

    def respond(body: dict[str, Any], _: int) -> str:
        return json.dumps({"solution": next(extras), "tests": TESTS})

    ep = Endpoint(lambda body, rnd: codegen(BAD), respond)
    run(store, ep, sandbox, [seed_record("def add(a, b):\n    return a + b")], CodegenTask(),
        responses=3, max_rounds=1)
    (_, rec), = results(store, "kept")
    assert rec.response == GOOD and rec.meta["verified"] is True
    assert rec.scores["pass_rate"] == pytest.approx(1 / 3)
    assert rec.meta["difficulty"] == "medium" and rec.meta["responses"]["chosen"] in (1, 2)
    assert rec.meta["instance"]["solution"] == GOOD
    # each extra response was its own request (own sample index, own cache entry)
    assert sum(b["messages"][1]["content"].startswith("Solve this") for b in ep.requests) == 2


def test_cross_validation_prefers_the_response_passing_the_others_tests() -> None:
    from synth.generators.verify import pick_best
    assert pick_best([0, 2], {0: 1, 2: 3}, [10, 50, 90]) == 2
    assert pick_best([0, 2], {0: 3, 2: 3}, [80, 50, 40]) == 2  # tie: the shortest
    assert [difficulty(r) for r in (1.0, 2 / 3, 0.5, 1 / 3, 0.1, 0.0)] == [
        "easy", "easy", "medium", "medium", "hard", "hard"]


@needs_node
def test_a_translation_that_differs_from_the_seed_is_an_oracle_mismatch(
        store: RunStore, sandbox: Sandbox) -> None:
    wrong = "```javascript\nfunction add(a, b) {\n  return a - b;\n}\n```"
    right = "```javascript\nfunction add(a, b) {\n  return a + b;\n}\n```"
    # the wrong translation's own tests agree with it: only the seed can tell
    tests = {wrong: "const assert = require('assert');\nassert.strictEqual(add(3, 1), 2);",
             right: "const assert = require('assert');\nassert.strictEqual(add(3, 1), 4);"}

    def generator(body: dict[str, Any], rnd: int) -> str:
        seed = body["messages"][1]["content"]
        solution = wrong if "return a + b" in seed and "# wrong" in seed else right
        return json.dumps({"task_name": "code translation",
                           "instruction": "Translate this Python function to JavaScript.",
                           "solution": solution, "tests": tests[solution]})

    recs = [seed_record("def add(a, b):\n    # wrong\n    return a + b", task="translate"),
            seed_record("def add(a, b):\n    return a + b", task="translate")]
    ctx, _ = run(store, Endpoint(generator), sandbox, recs, TranslateTask(("javascript",)),
                 max_rounds=2)
    (reason, bad), = results(store, "rejected")
    assert reason == "oracle_mismatch" and bad.meta["oracle"]["status"] == "mismatch"
    assert "the original returns 3, the translation returned -1" in bad.meta["reject_detail"]
    (_, good), = results(store, "kept")
    assert good.meta["verified"] is True and good.meta["oracle"]["status"] == "confirmed"
    assert [p["out"] for p in good.meta["oracle_pairs"]] == [3, 7, 0]
    oracle = ctx.stats.to_dict()["verify"]["oracle"]
    assert oracle == {"translate:confirmed": 1, "translate:mismatch": 1}


def test_repair_is_confirmed_when_the_seed_passes_the_test_that_catches_the_bug(
        store: RunStore, sandbox: Sandbox) -> None:
    def generator(body: dict[str, Any], rnd: int) -> str:
        return json.dumps({"task_name": "code repair",
                           "information": "def add(a, b):\n    return a - b",
                           "instruction": "add(2, 3) returns -1 instead of 5. Fix it.",
                           "solution": GOOD, "tests": TESTS})

    ctx, _ = run(store, Endpoint(generator), sandbox,
                 [seed_record("def add(a, b):\n    return a + b", task="repair")], RepairTask())
    (_, rec), = results(store, "kept")
    assert rec.meta["verified"] is True and rec.meta["oracle"]["status"] == "confirmed"


def test_repair_whose_tests_miss_the_bug_is_critiqued(store: RunStore,
                                                      sandbox: Sandbox) -> None:
    def generator(body: dict[str, Any], rnd: int) -> str:
        return json.dumps({"task_name": "code repair",
                           "information": "def add(a, b):\n    return a - b",
                           "instruction": "add is wrong. Fix it.", "solution": GOOD,
                           "tests": "assert add(0, 0) == 0"})

    run(store, Endpoint(generator), sandbox,
        [seed_record("def add(a, b):\n    return a + b", task="repair")], RepairTask())
    (reason, rec), = results(store, "rejected")
    assert reason == "bug_not_caught" and "fails on the buggy code" in rec.meta["reject_detail"]


def test_a_rerun_executes_nothing(tmp_path: Path, sandbox: Sandbox) -> None:
    ep = Endpoint(lambda body, rnd: codegen(BAD if rnd == 1 else GOOD))
    executed = []
    for _ in range(2):
        with RunStore(tmp_path / "run") as store:
            store.begin("test")
            ctx, stage = run(store, ep, sandbox, [seed_record("def add(a, b):\n    return a+b")],
                             CodegenTask())
            assert stage.verify is not None
            executed.append(stage.verify.verifier.counters.executed)
            assert len(results(store, "kept")) == 1
    assert executed[0] >= 3 and executed[1] == 0


def test_a_language_without_runtime_is_never_passed(tmp_path: Path, sandbox: Sandbox) -> None:
    ruby = "```ruby\ndef add(a, b)\n  a + b\nend\n```"
    for mode, status in (("require", "rejected"), ("score", "kept")):
        with RunStore(tmp_path / mode) as store:
            store.begin("test")
            ep = Endpoint(lambda body, rnd: codegen(ruby, "raise unless add(1, 2) == 3"))
            ctx, _ = run(store, ep,
                         sandbox, [seed_record("def add(a, b)\n  a + b\nend", lang="ruby")],
                         CodegenTask(), mode=mode, max_rounds=1)
            (reason, rec), = results(store, status)
            assert rec.meta["verified"] is False and math.isnan(rec.scores["pass_rate"])
            assert rec.meta["execution"]["reason"] == "no_runtime:ruby"
            if mode == "require":
                assert reason == "no_runtime:ruby"
            per = ctx.stats.to_dict()["verify"]["per_task_lang"]["codegen:ruby"]
            assert per["verified"] == 0


@pytest.mark.parametrize(("text", "fmt"), [
    (json.dumps({"problem": "P", "solution": GOOD, "tests": TESTS}), "json"),
    (f"[Problem Description]\nP\n\n[Solution]\n{GOOD}\n\n[Tests]\n{TESTS}\n", "sections"),
    (f"**Problem:**\nP\n\n## Solution\n{GOOD}\n\n### Test Cases:\n{TESTS}\n", "sections"),
])
def test_tests_are_parsed_into_their_own_field(text: str, fmt: str) -> None:
    rec = CodegenTask().parse(text, seed_record("x = 1"), fmt)
    assert isinstance(rec, Record)
    assert extract_tests(rec.meta["tests"], "python").startswith("assert add(2, 3) == 5")
    assert extract_code(rec.response, "python").strip() == "def add(a, b):\n    return a + b"


def test_oracle_helpers() -> None:
    assert seed_function(seed_record("def add(a, b):\n    return a + b")) == "add"
    assert seed_function(seed_record("def m(self, a):\n    return a", name="C.m")) is None
    assert seed_function(seed_record("x = 1", name=None)) is None
    assert name_variants("sum_of_list") == ["sum_of_list", "sumOfList", "SumOfList"]
    assert parse_inputs('{"inputs": [[1, 2], [1, 2], "x", [3]]}') == [[1, 2], [3]]
    assert parse_inputs("Here: [[1], [2]]") == [[1], [2]]
    assert not isinstance(parse_inputs("none"), list)
