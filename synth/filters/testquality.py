"""XCoder's unit-test quality: the LLM writes tests, the sandbox runs them against the solution.

For each (instruction, Python solution) the LLM writes ``num_tests`` (12, as in XCoder) test
functions (template ``xcoder_tests``). One sandbox box per sample runs a small harness that loads
the solution once, then runs each test in its own forked child with its own time limit, so a
test that hangs, exits or corrupts global state does not touch the others. The solution's own
asserts (module-level or under ``if __name__ == "__main__"``) are run first, also in a child.

Reads ``instruction``/``input``/``response``/``lang``; writes ``scores["test_quality"]`` =
passed / tests run, ``meta["unit_tests"]`` (per-test status and reason, the solution's own
check, the box's outcome) and, when no score can be computed, NaN with a counted reason
(``no_python_code``, ``syntax_error``, ``no_tests_parsed``, ``no_runtime:LANG``, ``llm_error``).
Only Python is run; samples in other languages get ``no_runtime:LANG``.
"""

from __future__ import annotations

import ast
import json
import math
import sys
from dataclasses import dataclass
from typing import Any

from synth.filters.heuristics import code_blocks, python_code
from synth.llm.client import LLMClient, LLMRequestFailed, SamplingParams
from synth.pipeline import AsyncStage
from synth.prompts import Prompts
from synth.records import Record
from synth.sandbox import ExecResult, ExecStatus, Program, Sandbox

TEMPLATE = "xcoder_tests"
MARK = "@@synth-test@@ "
PYTHON_LANGS = {"", "python", "py", "python3"}

# Runs inside the box. Loads solution.py, defines the tests, runs each in a forked child.
HARNESS = r'''
import json, os, runpy, select, signal, sys, time

MARK = "@@synth-test@@ "
spec = json.load(open("_tests.json"))


def report(**fields):
    sys.stdout.write(MARK + json.dumps(fields) + "\n")
    sys.stdout.flush()


def in_child(fn, timeout):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
        try:
            fn()
            out = {"status": "passed", "reason": ""}
        except AssertionError as exc:
            out = {"status": "failed", "reason": ("AssertionError: " + str(exc))[:300]}
        except MemoryError:
            out = {"status": "memory", "reason": "MemoryError"}
        except BaseException as exc:
            out = {"status": "error", "reason": (type(exc).__name__ + ": " + str(exc))[:300]}
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    deadline = time.monotonic() + timeout
    data = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(r)
            return {"status": "timeout", "reason": "test timeout %gs" % timeout}
        ready, _, _ = select.select([r], [], [], left)
        if ready:
            chunk = os.read(r, 65536)
            if not chunk:
                break
            data += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    if data:
        return json.loads(data)
    if os.WIFSIGNALED(status):
        return {"status": "killed", "reason": "signal %d" % os.WTERMSIG(status)}
    return {"status": "error", "reason": "test process exited %d" % os.WEXITSTATUS(status)}


if spec["self_check"]:
    res = in_child(lambda: runpy.run_path("solution.py", run_name="__main__"), spec["timeout"])
    report(kind="self_check", **res)
try:
    ns = runpy.run_path("solution.py", run_name="solution")
    exec(compile(open("tests.py").read(), "tests.py", "exec"), ns)
except BaseException as exc:
    report(kind="load_error", status="error", reason=(type(exc).__name__ + ": " + str(exc))[:300])
    sys.exit(0)
for name in spec["tests"]:
    report(kind="test", name=name, **in_child(ns[name], spec["timeout"]))
'''


@dataclass(frozen=True)
class TestSuite:
    """Test code ready to run: ``code`` defines each function named in ``names``."""

    __test__ = False  # not a pytest class

    code: str
    names: list[str]


def parse_tests(text: str, limit: int) -> TestSuite | None:
    """The test functions in an LLM reply, at most ``limit``.

    Takes the first fenced Python block that parses (or the whole reply). Test functions are
    top-level ``def test*()``; a reply made of bare top-level asserts instead gets each assert
    wrapped into its own test function, after the other statements as shared set-up.
    """
    candidates = [code for tag, code in code_blocks(text) if tag in PYTHON_LANGS] or [text]
    for code in candidates:
        try:
            tree = ast.parse(code)
        except (SyntaxError, ValueError):
            continue
        names: list[str] = []
        for node in tree.body:
            if (isinstance(node, ast.FunctionDef) and node.name.startswith("test")
                    and node.name not in names):
                names.append(node.name)
        if names:
            return TestSuite(code, names[:limit])
        asserts = [n for n in tree.body if isinstance(n, ast.Assert)]
        if asserts:
            setup = [n for n in tree.body if not isinstance(n, ast.Assert)]
            funcs: list[ast.stmt] = []
            for i, stmt in enumerate(asserts[:limit]):
                func = ast.parse(f"def test_assert_{i + 1}():\n    pass").body[0]
                assert isinstance(func, ast.FunctionDef)
                func.body = [stmt]
                funcs.append(func)
            module = ast.fix_missing_locations(ast.Module(body=setup + funcs, type_ignores=[]))
            return TestSuite(ast.unparse(module),
                             [f.name for f in funcs if isinstance(f, ast.FunctionDef)])
    return None


def has_asserts(code: str) -> bool:
    return any(isinstance(n, ast.Assert) for n in ast.walk(ast.parse(code)))


def harness_program(solution: str, suite: TestSuite, test_timeout_s: float) -> Program:
    """The box's files and command for one sample."""
    self_check = has_asserts(solution)
    spec = {"tests": suite.names, "timeout": test_timeout_s, "self_check": self_check}
    budget = test_timeout_s * (len(suite.names) + int(self_check) + 1) + 5.0
    return Program(files={"solution.py": solution, "tests.py": suite.code,
                          "_harness.py": HARNESS, "_tests.json": json.dumps(spec)},
                   argv=(sys.executable, "-s", "_harness.py"), timeout_s=budget)


def read_harness(result: ExecResult, suite: TestSuite) -> dict[str, Any]:
    """Per-test results from the harness output; tests it never reached get the box's status."""
    tests: dict[str, dict[str, str]] = {}
    self_check: dict[str, str] | None = None
    load_error = None
    for line in result.stdout.splitlines():
        if not line.startswith(MARK):
            continue
        try:
            item = json.loads(line[len(MARK):])
        except json.JSONDecodeError:
            continue
        kind = item.pop("kind", "")
        if kind == "test" and item.get("name") in suite.names:
            tests[item.pop("name")] = item
        elif kind == "self_check":
            self_check = item
        elif kind == "load_error":
            load_error = item
    missing = load_error or {"status": str(result.status),
                             "reason": result.reason or "the harness did not reach this test"}
    rows = [{"name": n, **tests.get(n, missing)} for n in suite.names]
    return {"tests": rows, "self_check": self_check, "box": str(result.status),
            "box_reason": result.reason,
            "passed": sum(r["status"] == ExecStatus.PASSED for r in rows), "total": len(rows)}


class TestQuality(AsyncStage):
    """XCoder-style unit-test quality for every record; drops nothing.

    Args:
        client: the LLM client that writes the tests.
        prompts: templates (``xcoder_tests``).
        sandbox: where the tests run.
        num_tests: tests asked for per sample.
        test_timeout_s: limit per test (and for loading the solution).
        max_tokens: reply length for the tests.
    """

    name = "test_quality"
    __test__ = False  # not a pytest class

    def __init__(self, client: LLMClient, prompts: Prompts, sandbox: Sandbox,
                 num_tests: int = 12, test_timeout_s: float = 5.0, max_tokens: int = 2048,
                 window: int | None = None) -> None:
        super().__init__(window or max(2 * client.config.concurrency, sandbox.parallel, 1))
        self.client = client
        self.prompts = prompts
        self.sandbox = sandbox
        self.num_tests = num_tests
        self.test_timeout_s = test_timeout_s
        self.params = SamplingParams(temperature=0.0, max_tokens=max_tokens)
        self.template_hash = prompts.template_hash(TEMPLATE)
        self.writes = ("scores.test_quality", "unit_tests")

    def _nan(self, record: Record, reason: str) -> Record:
        record.scores["test_quality"] = math.nan
        record.meta.setdefault("score_errors", {})["test_quality"] = reason
        self.ctx.stats.stages[self.name].counts[f"nan:test_quality:{reason}"] += 1
        return record

    async def process(self, record: Record) -> Record | None:
        lang = record.lang.lower()
        if lang not in PYTHON_LANGS:
            return self._nan(record, f"no_runtime:{lang}")
        solution, why = python_code(record.response, record.lang)
        if solution is None:
            return self._nan(record, why)
        messages = self.prompts.messages(
            TEMPLATE, instruction=record.instruction + ("\n\n" + record.input
                                                        if record.input else ""),
            solution=solution, num_tests=self.num_tests)
        try:
            completion = await self.client.complete(messages, self.params)
        except LLMRequestFailed as exc:
            return self._nan(record, exc.reason)
        suite = parse_tests(completion.text, self.num_tests)
        if suite is None:
            record.meta["unit_tests"] = {"raw": completion.text}
            return self._nan(record, "no_tests_parsed")
        result = await self.sandbox.run(harness_program(solution, suite, self.test_timeout_s))
        report = read_harness(result, suite)
        report["template_hash"] = self.template_hash
        record.meta["unit_tests"] = report
        counts = self.ctx.stats.stages[self.name].counts
        for row in report["tests"]:
            counts[f"test:{row['status']}"] += 1
        if report["self_check"] is not None:
            counts[f"self_check:{report['self_check']['status']}"] += 1
        record.scores["test_quality"] = report["passed"] / report["total"]
        return record
