"""Execution verification: run a sample's solution against its own tests, cached by content.

Every code task asks the generator for a solution *and* its tests (``tests`` reply field).
:class:`Verifier` runs them in the sandbox and returns an :class:`Execution`: the box's
outcome, a verdict per test, and a critique the loop sends back to the generator when the
sample fails. Results are cached in the run store's ``executions`` table under
``sha256(harness version, language, solution, tests, limits)``, so a rerun (or the same code
met twice) never executes anything again.

How a (language, solution, tests) triple becomes a program is :func:`_build`: Python runs
XCoder's per-test harness (each test in its own forked child, plain asserts rewritten to say
what each side was, so a critique shows the wrong value); every other language goes through
the sandbox's ``languages.test_program`` (per-test verdicts where the language's runner reports
them); a language without a runtime is ``no_runtime:LANG`` (counted, never passed).
"""

from __future__ import annotations

import ast
import asyncio
import hashlib
import json
import math
import re
import shutil
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from synth.filters.heuristics import code_blocks, python_code
from synth.filters.testquality import HARNESS, TestSuite, parse_tests, read_harness
from synth.records import Record
from synth.sandbox import ExecResult, Program, Sandbox
from synth.sandbox.languages import test_program

VERIFY_MODES = ("require", "score", "off")
#: Part of every cache key: bump it when the harness or how results are read changes.
HARNESS_VERSION = "verify-1"
MAX_TESTS = 20
STDERR_TAIL = 600

PYTHON = ("python", "py", "python3")
JAVASCRIPT = ("javascript", "js", "node")
FENCE_LANGS = {"py": "python", "python3": "python", "js": "javascript", "ts": "typescript",
               "rs": "rust", "c++": "cpp", "golang": "go", "sh": "shell", "bash": "shell"}

#: How each language's tests are asked for (templates); the sandbox's harness must accept them.
TEST_STYLES = {
    "python": "plain `assert` statements (or functions named `test_...` holding asserts) that "
              "call the solution's functions directly; do not import or redefine them; "
              "standard library only",
    "javascript": "statements using Node's assert module (`const assert = require('assert');` "
                  "then `assert.strictEqual(...)` / `assert.deepStrictEqual(...)`) that call "
                  "the solution's functions directly; do not redefine them",
    "typescript": "statements using Node's assert module that call the solution's functions "
                  "directly",
    "go": "a `func TestXxx(t *testing.T)` per case for `go test`, calling the solution's "
          "functions directly",
    "java": "a class `Tests` with a `main` method that checks each case and throws "
            "`AssertionError` on a wrong result",
    "c": "an `int main(void)` that checks each case with `assert` from <assert.h>",
    "cpp": "an `int main()` that checks each case with `assert` from <cassert>",
    "rust": "`#[test]` functions with `assert_eq!` in a `#[cfg(test)] mod tests`",
    "shell": "commands that call the script's functions and `exit 1` on a wrong result",
}


def norm_lang(lang: str) -> str:
    lang = (lang or "").strip().lower()
    return FENCE_LANGS.get(lang, lang)


def fence_lang_of(text: str) -> str | None:
    """The language named by the first code fence of ``text`` (normalised), if any."""
    m = re.search(r"^[ \t]*(?:`{3,}|~{3,})[ \t]*([\w+#.-]+)", text, re.MULTILINE)
    return norm_lang(m.group(1)) if m else None


def test_style(lang: str) -> str:
    """The tests the templates ask for in ``lang``."""
    return TEST_STYLES.get(norm_lang(lang), "the language's usual unit-test harness, in one "
                           "file, calling the solution directly")


def extract_code(text: str, lang: str) -> str | None:
    """The code of a solution in ``lang``: its fenced blocks in that language (Python: every
    block that parses), else the first fenced block, else the whole text when it has no fence."""
    lang = norm_lang(lang)
    if lang in PYTHON:
        code, _ = python_code(text, "python")
        if code is not None:
            return code
        return None
    blocks = code_blocks(text)
    if not blocks:
        return text.strip() or None
    same = [code for tag, code in blocks if norm_lang(tag) == lang]
    return "\n\n".join(same) if same else blocks[0][1]


def extract_tests(text: str, lang: str) -> str:
    """The test code in a ``tests`` field: its fenced blocks, else the whole text."""
    blocks = code_blocks(text)
    if not blocks:
        return text.strip()
    lang = norm_lang(lang)
    same = [code for tag, code in blocks if norm_lang(tag) in (lang, "")]
    return "\n\n".join(same or [code for _, code in blocks])


# -- results ------------------------------------------------------------------------------

@dataclass
class Execution:
    """One run of a solution against tests.

    Attributes:
        status: ``passed`` (every test passed), ``failed`` (a test failed), ``error`` (the
            solution or tests did not load or compile), ``timeout``, ``memory``, ``killed``,
            ``forbidden`` (the box refused something), ``no_tests`` (nothing to run),
            ``no_code`` (no code in the solution) or ``no_runtime`` (no runtime for the
            language; ``reason`` is ``no_runtime:LANG``).
        reason: the short cause (first failing test's message, the load error...).
        tests: one verdict per test: ``{"name", "status", "reason"}`` (+ ``"source"``).
        stderr: the tail of the box's stderr.
        wall_s: seconds the box ran (0 when served from the cache or never run).
        cached: served from the run store.
    """

    status: str
    reason: str = ""
    tests: list[dict[str, str]] = field(default_factory=list)
    stderr: str = ""
    wall_s: float = 0.0
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.status == "passed" and bool(self.tests)

    @property
    def passed(self) -> int:
        return sum(t["status"] == "passed" for t in self.tests)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Execution:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def summary(self) -> dict[str, Any]:
        """What a row keeps: the verdict, the counts and the per-test verdicts."""
        return {"status": self.status, "reason": self.reason, "passed": self.passed,
                "total": len(self.tests),
                "tests": [{k: t[k] for k in ("name", "status", "reason") if k in t}
                          for t in self.tests]}

    def critique(self) -> str:
        """The failure as the generator sees it in the next round's revise prompt."""
        if self.status == "no_runtime":
            return f"the code cannot be run here ({self.reason})"
        if self.status == "no_code":
            return "the solution has no code block to run"
        if self.status == "no_tests":
            return ("the tests field holds no runnable tests; write " + self.reason
                    if self.reason else "the tests field holds no runnable tests")
        lines = []
        failing = [t for t in self.tests if t["status"] != "passed"]
        if self.status in ("error",) and not failing:
            lines.append(f"the code does not run: {self.reason}")
        elif self.status in ("timeout", "memory", "killed", "forbidden") and not failing:
            lines.append(f"running the tests ended with {self.status}: {self.reason}")
        else:
            lines.append(f"{len(failing)} of {len(self.tests)} tests failed when the tests were "
                         "run against the solution:")
        for t in failing[:5]:
            src = t.get("source", "").strip()
            where = f"\n    {src[:400]}" if src else ""
            lines.append(f"- {t['name']}: {t['status']}: {t['reason'] or '(no message)'}{where}")
        if self.stderr.strip() and self.status != "passed":
            lines.append("stderr (last lines):\n" + self.stderr.strip()[-STDERR_TAIL:])
        lines.append("Fix the solution (or a test that is wrong) so that every test passes.")
        return "\n".join(lines)


def no_runtime(lang: str) -> Execution:
    return Execution("no_runtime", f"no_runtime:{norm_lang(lang) or 'unknown'}")


# -- the seam with the sandbox's language support -----------------------------------------

class _AssertMessages(ast.NodeTransformer):
    """``assert a == b`` without a message → one that says what each side was, so a failure's
    critique shows the wrong value (plain asserts only say ``AssertionError``)."""

    def visit_Assert(self, node: ast.Assert) -> ast.AST:
        test = node.test
        if (node.msg is None and isinstance(test, ast.Compare) and len(test.ops) == 1
                and isinstance(test.ops[0], ast.Eq | ast.NotEq | ast.Is | ast.IsNot)):
            got = ast.NamedExpr(ast.Name("_synth_got", ast.Store()), test.left)
            want = ast.NamedExpr(ast.Name("_synth_want", ast.Store()), test.comparators[0])
            node.test = ast.Compare(got, test.ops, [want])
            node.msg = ast.JoinedStr([
                ast.Constant("got "), ast.FormattedValue(ast.Name("_synth_got", ast.Load()), 114),
                ast.Constant(", expected "),
                ast.FormattedValue(ast.Name("_synth_want", ast.Load()), 114)])
        return node


@dataclass(frozen=True)
class _Suite:
    run: TestSuite  # what the harness runs (asserts that say what each side was)
    sources: dict[str, str]  # each test's source as written (for the critique)


def _python_suite(tests: str) -> _Suite | None:
    suite = parse_tests(tests, MAX_TESTS)
    if suite is None:
        return None
    tree = ast.parse(suite.code)
    sources = {node.name: "\n".join(ast.unparse(s) for s in node.body) for node in tree.body
               if isinstance(node, ast.FunctionDef) and node.name in suite.names}
    tree = _AssertMessages().visit(tree)
    return _Suite(TestSuite(ast.unparse(ast.fix_missing_locations(tree)), suite.names), sources)


def _build(lang: str, solution: str, tests: str,
           timeout_s: float) -> tuple[Program, Any] | Execution:
    """The program that runs ``tests`` against ``solution`` in ``lang``, and what
    :func:`_read` needs to read its result; or the Execution that says why nothing runs."""
    lang = norm_lang(lang)
    if lang in PYTHON:
        try:
            ast.parse(solution)
        except SyntaxError as exc:  # the compiler's verdict, without a box
            return Execution("error", f"SyntaxError: {exc.msg} (line {exc.lineno})",
                             [{"name": "compile", "status": "error",
                               "reason": f"SyntaxError: {exc.msg} (line {exc.lineno})",
                               "source": (exc.text or "").strip()}])
        except ValueError as exc:
            return Execution("error", f"ValueError: {exc}")
        suite = _python_suite(tests)
        if suite is None:
            return Execution("no_tests", test_style("python"))
        return _harness(solution, suite.run, timeout_s), suite
    # every other language: the sandbox's own harness for it (per-test verdicts where the
    # language's test runner reports them), or no_runtime:LANG
    program = test_program(lang, solution, tests, timeout_s=timeout_s * 2 + 5.0)
    if program.unavailable:
        return Execution("no_runtime", program.unavailable)
    if not tests.strip():
        return Execution("no_tests", test_style(lang))
    return program, None


def _harness(solution: str, suite: TestSuite, timeout_s: float) -> Program:
    """XCoder's per-test harness (each test in its own forked child), without running the
    solution as ``__main__`` (a main block may wait for input)."""
    spec = {"tests": suite.names, "timeout": timeout_s, "self_check": False}
    return Program(files={"solution.py": solution, "tests.py": suite.code,
                          "_harness.py": HARNESS, "_tests.json": json.dumps(spec)},
                   argv=(sys.executable, "-s", "_harness.py"),
                   timeout_s=timeout_s * (len(suite.names) + 1) + 5.0)


def _read(lang: str, result: ExecResult, extra: Any) -> Execution:
    tail = result.stderr[-STDERR_TAIL:]
    if isinstance(extra, _Suite):
        report = read_harness(result, extra.run)
        sources = extra.sources
        rows = [{"name": r["name"], "status": r["status"], "reason": r.get("reason", ""),
                 "source": sources.get(r["name"], "")} for r in report["tests"]]
        failing = [r for r in rows if r["status"] != "passed"]
        if not failing:
            return Execution("passed", "", rows, "", result.wall_s)
        box = str(result.status)
        # a load error (the solution or the tests do not run at all) is an error of the code
        status = failing[0]["status"] if box in ("passed", "failed") else box
        return Execution(status, failing[0]["reason"] or result.reason, rows, tail,
                         result.wall_s)
    status = str(result.status)
    message = (result.message or _js_error(result.stderr) or result.reason)[:400]
    if status == "no_runtime":
        return Execution(status, result.reason)
    rows = [{"name": t.name, "status": "passed" if t.passed else "failed",
             "reason": t.message[:300]} for t in result.tests]
    if not rows:  # the program's verdict is the whole verdict
        rows = [{"name": result.failed_test or "tests", "status": status,
                 "reason": "" if status == "passed" else message}]
    if status == "passed" and any(r["status"] != "passed" for r in rows):
        status = "failed"
    return Execution(status, "" if status == "passed" else message, rows,
                     "" if status == "passed" else tail, result.wall_s)


def _js_error(stderr: str) -> str:
    for line in stderr.splitlines():
        if re.match(r"^\s*\w*(Error|Exception)\b", line):
            return line.strip()[:300]
    return ""


# -- the verifier -------------------------------------------------------------------------

@dataclass
class VerifyCounters:
    """Executions done and served; written to stats.json under ``verify``."""

    executed: int = 0
    cache_hits: int = 0
    exec_wall_s: float = 0.0
    busy_s: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)


class Verifier:
    """Runs (language, solution, tests) triples in the sandbox, each at most once per store.

    Args:
        sandbox: where the code runs.
        store: the run store holding the execution cache (any object with
            ``get_execution``/``put_execution``).
        test_timeout_s: limit per test (the box's limit grows with the number of tests).
    """

    def __init__(self, sandbox: Sandbox, store: Any, test_timeout_s: float = 5.0) -> None:
        self.sandbox = sandbox
        self.store = store
        self.test_timeout_s = test_timeout_s
        self.counters = VerifyCounters()
        self._inflight: dict[str, asyncio.Future[dict[str, Any]]] = {}

    def key(self, *parts: Any) -> str:
        limits = [self.test_timeout_s, self.sandbox.config.memory_mb,
                  self.sandbox.config.cpu_s]
        blob = json.dumps([HARNESS_VERSION, *parts, limits], ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()

    async def run(self, lang: str, solution: str, tests: str) -> Execution:
        """``tests`` run against ``solution``; from the cache when this triple ran before."""
        built = _build(lang, solution, tests, self.test_timeout_s)
        if isinstance(built, Execution):
            self.counters.statuses[built.reason if built.status == "no_runtime"
                                   else built.status] += 1
            return built
        program, extra = built

        async def execute() -> dict[str, Any]:
            return _read(lang, await self.sandbox.run(program), extra).to_dict()

        data, cached = await self._cached(self.key("tests", norm_lang(lang), solution, tests),
                                          execute)
        result = Execution.from_dict(data)
        result.cached = cached
        self.counters.statuses[result.status] += 1
        return result

    async def call(self, lang: str, code: str, names: Sequence[str],
                   inputs: Sequence[Sequence[Any]]) -> list[dict[str, Any]] | Execution:
        """Call the first function of ``names`` that ``code`` defines on each argument list.

        Returns one ``{"ok": True, "out": value, "args": args after the call}`` or
        ``{"ok": False, "error": type}`` per input (the Case2Code oracle), or the Execution
        that says why nothing ran (no runtime, no such function, the code does not load).
        """
        lang = norm_lang(lang)
        program = _call_program(lang, code, names, inputs, self.test_timeout_s)
        if program is None:
            return no_runtime(lang)

        async def execute() -> dict[str, Any]:
            res = await self.sandbox.run(program)
            rows = []
            for line in res.stdout.splitlines():
                if line.startswith(CALL_MARK):
                    try:
                        rows.append(json.loads(line[len(CALL_MARK):]))
                    except json.JSONDecodeError:  # the program printed the mark itself
                        rows.append({"ok": False, "error": "unreadable output"})
            return {"status": str(res.status), "reason": res.reason, "rows": rows,
                    "stderr": res.stderr[-STDERR_TAIL:]}

        data, _ = await self._cached(self.key("call", lang, code, list(names), inputs), execute)
        rows = data["rows"]
        if rows and rows[0].get("missing"):
            return Execution("error", "defines none of " + ", ".join(names))
        rows = rows[:len(inputs)]  # a program that prints the mark itself gets no extra rows
        if len(rows) < len(inputs):
            return Execution(data["status"] if data["status"] != "passed" else "error",
                             data["reason"] or "the program stopped early",
                             stderr=data["stderr"])
        return rows

    async def _cached(self, key: str, execute: Any) -> tuple[dict[str, Any], bool]:
        hit = self.store.get_execution(key)
        if hit is not None:
            self.counters.cache_hits += 1
            return hit, True
        running = self._inflight.get(key)
        if running is not None:  # the same code is already running for another sample
            self.counters.cache_hits += 1
            return await asyncio.shield(running), True
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        started = time.monotonic()
        try:
            data = await execute()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody logs it twice
            raise
        finally:
            self._inflight.pop(key, None)
        self.counters.executed += 1
        self.counters.busy_s += time.monotonic() - started
        self.counters.exec_wall_s += float(data.get("wall_s", 0.0) or 0.0)
        self.store.put_execution(key, data)
        future.set_result(data)
        return data, False


# -- calling one function on inputs (the oracle) ------------------------------------------

CALL_MARK = "@@synth-call@@ "

_PY_CALL = r'''
import copy, json, sys
MARK = "@@synth-call@@ "
spec = json.load(open("_calls.json"))
ns = {"__name__": "solution"}
try:
    exec(compile(open("solution.py").read(), "solution.py", "exec"), ns)
except BaseException as exc:
    print("load error: %s: %s" % (type(exc).__name__, exc), file=sys.stderr)
    sys.exit(1)
fn = next((ns[n] for n in spec["names"] if callable(ns.get(n))), None)
if fn is None:
    print(MARK + json.dumps({"missing": True}))
    sys.exit(0)
for args in spec["inputs"]:
    args = copy.deepcopy(args)
    try:
        out = fn(*args)
        row = json.dumps({"ok": True, "out": out, "args": args})
    except BaseException as exc:
        row = json.dumps({"ok": False, "error": type(exc).__name__})
    print(MARK + row, flush=True)
'''

_JS_CALL = r'''
;(() => {
  const MARK = "@@synth-call@@ ";
  const spec = __SPEC__;
  const scope = {__SCOPE__};
  const exported = (typeof module !== "undefined" && module.exports) || {};
  let fn;
  for (const n of spec.names) {
    if (typeof scope[n] === "function") { fn = scope[n]; break; }
    if (typeof exported[n] === "function") { fn = exported[n]; break; }
  }
  if (!fn) { console.log(MARK + JSON.stringify({missing: true})); return; }
  for (const args of spec.inputs) {
    let row;
    try {
      const out = fn(...args);
      row = {ok: true, out: out === undefined ? null : out, args: args};
    } catch (e) {
      row = {ok: false, error: (e && e.name) || "Error"};
    }
    console.log(MARK + JSON.stringify(row));
  }
})();
'''


def _call_program(lang: str, code: str, names: Sequence[str], inputs: Sequence[Sequence[Any]],
                  timeout_s: float) -> Program | None:
    spec = {"names": list(names), "inputs": [list(a) for a in inputs]}
    budget = timeout_s * 2 + 5.0
    if lang in PYTHON:
        from synth.sandbox import python_program
        return python_program(_PY_CALL, filename="_call.py", timeout_s=budget,
                              files={"solution.py": code, "_calls.json": json.dumps(spec)})
    if lang == "javascript" and shutil.which("node"):
        scope = ", ".join(f"{n}: (typeof {n} !== 'undefined' ? {n} : undefined)"
                          for n in names if re.fullmatch(r"[A-Za-z_$][\w$]*", n))
        code = re.sub(r"^export\s+(default\s+)?", "", code, flags=re.MULTILINE)
        driver = _JS_CALL.replace("__SPEC__", json.dumps(spec)).replace("__SCOPE__", scope)
        return Program(files={"main.js": code + "\n" + driver},
                       argv=(str(shutil.which("node")), "main.js"), timeout_s=budget)
    return None


def same_value(a: Any, b: Any) -> bool:
    """JSON values equal across languages: numbers within 1e-9 (1 == 1.0), lists by item."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or (isinstance(a, bool) and isinstance(b, bool) and a == b)
    if isinstance(a, int | float) and isinstance(b, int | float):
        if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
            return True
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    return bool(a == b)


# -- difficulty and picking among K responses ---------------------------------------------

#: KodCode-style difficulty from the pass rate over K responses: at least EASY pass → easy,
#: at least MEDIUM → medium, else (some or none pass) hard.
EASY, MEDIUM = 2 / 3, 1 / 3


def difficulty(pass_rate: float) -> str:
    if pass_rate >= EASY:
        return "easy"
    if pass_rate >= MEDIUM:
        return "medium"
    return "hard"


def pick_best(passing: Sequence[int], cross: dict[int, int], lengths: Sequence[int]) -> int:
    """The response to keep among ``passing`` ones: the most other responses' tests passed
    (rStar-Coder's mutual agreement), then the shortest solution, then the first."""
    return min(passing, key=lambda i: (-cross.get(i, 0), lengths[i], i))


def record_execution(record: Record, lang: str, execution: Execution, tests: str) -> None:
    """Write an execution's verdict into the record's columns."""
    record.meta["tests"] = tests
    record.meta["test_lang"] = norm_lang(lang)
    record.meta["execution"] = execution.summary()
    record.meta["verified"] = execution.ok
