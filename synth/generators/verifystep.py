"""The loop's verify step: tests are the gate, before the discriminator.

For a sample of a code task (``Task.verifiable``), :meth:`VerifyStep.check`:

1. takes the generator's solution and tests, plus ``responses - 1`` more solutions (each with
   its own tests) sampled for the same instruction (SelfCodeAlign's K responses);
2. runs each solution against its own tests in the sandbox (:class:`Verifier`, cached);
3. repair: a fix passes only if its tests also catch the bug (a test fails on the buggy
   variant); with a runnable Python function seed, the oracle then asks the seed to pass a test
   that catches the bug (else ``oracle_mismatch``);
4. translate: with a runnable Python function seed, the seed is executed on LLM-written inputs
   (Case2Code) and the translation must reproduce every output (else ``oracle_mismatch``);
5. keeps the best passing response (most of the other responses' tests passed, rStar-Coder's
   mutual agreement; then the shortest) and records ``scores["pass_rate"]`` over the K
   responses and, for K >= 2, a KodCode difficulty label.

A failure comes back as a :class:`Check` whose ``critique`` (the failing tests with their
messages, the load error, the stderr tail, the timeout/memory verdict, the oracle's
mismatches) the loop sends to the generator as the next round's critique. A kept verified
Python sample gets ``scores["mutation_score"]`` (:mod:`synth.filters.mutation`).
"""

from __future__ import annotations

import ast
import asyncio
import json
import math
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from synth.filters.mutation import DEFAULT_MUTANTS, mutation_score
from synth.generators.base import Task
from synth.generators.parsing import Reject, parse_json_object
from synth.generators.verify import (
    Execution,
    Verifier,
    difficulty,
    extract_code,
    extract_tests,
    norm_lang,
    pick_best,
    record_execution,
    same_value,
)
from synth.records import Record

ORACLE_TEMPLATE = "oracle_inputs"
ORACLE_INPUTS = 8

#: ``(solution, tests)`` of extra responses; None for a reply that could not be read.
Responses = Callable[[int], Awaitable[list[tuple[str, str] | None]]]
#: The raw LLM reply holding oracle inputs for a seed function.
AskInputs = Callable[[str, str], Awaitable[str]]


@dataclass
class Check:
    """The verify step's verdict on a record's current sample."""

    ok: bool
    reason: str = ""  # reject reason when not ok: tests_failed, no_runtime:LANG, oracle_mismatch...
    critique: str = ""
    gate: bool = True  # False: nothing could be checked (evol prose) and the sample goes on

    def to_meta(self) -> dict[str, Any]:
        return {"ok": self.ok, "reason": self.reason}


@dataclass
class _Attempt:
    solution: str
    tests: str
    code: str | None
    execution: Execution
    check: Check
    oracle: str = ""  # confirmed, mismatch, unavailable:REASON, "" (not applied)


@dataclass
class VerifyCounters:
    """Per task and language; written to stats.json under ``verify``."""

    samples: Counter[str] = field(default_factory=Counter)
    verified: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    oracle: Counter[str] = field(default_factory=Counter)
    critiqued: int = 0
    fixed_next_round: int = 0
    mutation: dict[str, list[float]] = field(default_factory=dict)
    pass_rates: list[float] = field(default_factory=list)


def seed_function(record: Record) -> str | None:
    """The name of the runnable top-level Python function a seed is, else None.

    Function-mode seeds carry their name in ``meta['provenance']['name']``; any seed that is a
    single top-level ``def`` counts too. Methods (first parameter ``self``/``cls``) do not run
    on their own.
    """
    if norm_lang(record.lang) != "python" or not record.seed.strip():
        return None
    try:
        tree = ast.parse(record.seed)
    except (SyntaxError, ValueError):
        return None
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    wanted = str(record.meta.get("provenance", {}).get("name") or "").split(".")[-1]
    fn = next((d for d in defs if d.name == wanted), None) if wanted else None
    if fn is None and len(defs) == 1:
        fn = defs[0]
    if fn is None:
        return None
    args = fn.args.posonlyargs + fn.args.args
    if args and args[0].arg in ("self", "cls"):
        return None
    return fn.name


def name_variants(name: str) -> list[str]:
    """``foo_bar`` → foo_bar, fooBar, FooBar: what a translation may call the function."""
    parts = [p for p in name.split("_") if p]
    if not parts:
        return [name]
    camel = parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])
    pascal = "".join(p[:1].upper() + p[1:] for p in parts)
    return list(dict.fromkeys([name, camel, pascal]))


def parse_inputs(text: str, limit: int = ORACLE_INPUTS) -> list[list[Any]] | Reject:
    """Argument lists from an oracle-inputs reply: ``{"inputs": [[...], ...]}`` or a bare list."""
    obj: Any = parse_json_object(text)
    if isinstance(obj, Reject):
        m = re.search(r"\[.*\]", text, re.DOTALL)
        try:
            obj = {"inputs": json.loads(m.group(0))} if m else obj
        except json.JSONDecodeError:
            pass
    if isinstance(obj, Reject):
        return obj
    inputs = obj.get("inputs") if isinstance(obj, dict) else None
    if not isinstance(inputs, list):
        return Reject("oracle_no_inputs", "no inputs list in the reply")
    out = [list(a) for a in inputs if isinstance(a, list)]
    seen: list[str] = []
    unique = []
    for a in out:
        key = json.dumps(a, sort_keys=True)
        if key not in seen:
            seen.append(key)
            unique.append(a)
    return unique[:limit] or Reject("oracle_no_inputs", "the inputs list is empty")


class VerifyStep:
    """Runs a record's sample (and its K responses) against tests and the seed oracle.

    Args:
        verifier: runs code, cached in the run store.
        mode: ``require`` (a failure is a critique, then a reject) or ``score`` (keep, record).
        responses: solutions per instruction (K).
        mutants: mutants per kept sample for the mutation score (0: none).
        oracle: use runnable function seeds as oracles for translate and repair.
        seed: makes the mutant draw deterministic.
    """

    def __init__(self, verifier: Verifier, mode: str = "require", responses: int = 1,
                 mutants: int = DEFAULT_MUTANTS, oracle: bool = True, seed: int = 0) -> None:
        if mode not in ("require", "score"):
            raise ValueError(f"verify mode {mode!r}: the step runs for require or score only")
        if responses < 1:
            raise ValueError("responses must be >= 1")
        self.verifier = verifier
        self.mode = mode
        self.responses = responses
        self.mutants = mutants
        self.oracle = oracle
        self.seed = seed
        self.counters = VerifyCounters()
        # a record's seed I/O pairs (or why there are none), computed once for all its rounds
        self._pairs: dict[str, list[dict[str, Any]] | str] = {}

    @property
    def require(self) -> bool:
        return self.mode == "require"

    # -- the check ------------------------------------------------------------------------

    async def check(self, task: Task, record: Record, responses: Responses,
                    ask_inputs: AskInputs) -> Check:
        """Verify the record's current sample; on success the record holds the best response."""
        lang = task.code_lang(record)
        candidates: list[tuple[str, str] | None] = [
            (record.response, str(record.meta.get("tests") or ""))]
        if self.responses > 1:
            candidates += await responses(self.responses - 1)
        pairs = await self._oracle_pairs(task, record, ask_inputs)
        attempts = list(await asyncio.gather(*(
            self._attempt(task, record, lang, c, pairs) for c in candidates)))
        passing = [i for i, a in enumerate(attempts) if a is not None and a.check.ok]
        chosen = 0
        if passing:
            cross = await self._cross(lang, attempts, passing) if len(passing) > 1 else {}
            lengths = [len(a.code or "") if a is not None else 0 for a in attempts]
            chosen = pick_best(passing, cross, lengths)
        first = attempts[chosen]
        if first is None:  # the generator's own reply always reads; only extras may not
            raise AssertionError("the generator's sample has no attempt")
        if chosen != 0:
            record.response = first.solution
            instance = record.meta.setdefault("instance", {})
            instance["solution"] = first.solution
            instance["tests"] = first.tests
        record_execution(record, lang, first.execution, first.tests)
        if first.oracle:
            record.meta["oracle"] = {"status": first.oracle,
                                     **({"pairs": len(pairs)} if pairs else {})}
        else:
            record.meta.pop("oracle", None)
        if first.check.gate:
            rate = len(passing) / len(candidates)
            runnable = first.execution.status != "no_runtime"
            record.scores["pass_rate"] = rate if runnable else math.nan
            if not runnable:
                record.meta.setdefault("score_errors", {})["pass_rate"] = first.execution.reason
            if len(candidates) > 1:
                record.meta["responses"] = {
                    "k": len(candidates), "passed": len(passing), "chosen": chosen,
                    "statuses": [a.check.reason or "passed" if a is not None else "unreadable"
                                 for a in attempts]}
                if runnable:
                    record.meta["difficulty"] = difficulty(rate)
        record.meta["verified"] = first.check.ok and first.check.gate
        return first.check

    def count(self, task: Task, record: Record, check: Check, *, final: bool) -> None:
        """Count a record's last verification (``final``: it leaves the loop with it)."""
        if not final:
            return
        key = f"{task.name}:{record.meta.get('test_lang') or task.code_lang(record)}"
        self.counters.samples[key] += 1
        if check.ok and check.gate:
            self.counters.verified[key] += 1
        elif check.reason:
            self.counters.reasons[check.reason] += 1
        oracle = record.meta.get("oracle", {}).get("status")
        if oracle:
            self.counters.oracle[f"{task.name}:{oracle}"] += 1
        rate = record.scores.get("pass_rate")
        if rate is not None and not math.isnan(rate):
            self.counters.pass_rates.append(rate)

    async def _attempt(self, task: Task, record: Record, lang: str,
                       candidate: tuple[str, str] | None,
                       pairs: list[dict[str, Any]] | str) -> _Attempt | None:
        if candidate is None:
            return None
        solution, tests_text = candidate
        code = extract_code(solution, lang)
        if code is None:
            execution = Execution("no_code", "no code block")
            if not task.code_required:
                return _Attempt(solution, tests_text, None, execution,
                                Check(False, "no_code", "", gate=False))
            return _Attempt(solution, tests_text, None, execution,
                            Check(False, "no_code", execution.critique()))
        tests = extract_tests(tests_text, lang)
        execution = await self.verifier.run(lang, code, tests)
        if not execution.ok:
            reason = (execution.reason if execution.status == "no_runtime"
                      else f"tests_{execution.status}")
            return _Attempt(solution, tests_text, code, execution,
                            Check(False, reason, execution.critique()))
        attempt = _Attempt(solution, tests_text, code, execution, Check(True))
        if task.name == "repair":
            await self._repair(record, lang, tests, attempt)
        elif task.name == "translate" and isinstance(pairs, list):
            await self._translation(record, lang, code, pairs, attempt)
        elif task.name == "translate" and isinstance(pairs, str) and pairs:
            attempt.oracle = pairs  # unavailable:REASON
        return attempt

    # -- repair: the tests must catch the bug; the seed must agree -----------------------

    async def _repair(self, record: Record, lang: str, tests: str, attempt: _Attempt) -> None:
        buggy = extract_code(record.input, lang)
        if buggy is None:
            attempt.check = Check(False, "no_code", "the information holds no buggy code to run")
            return
        on_buggy = await self.verifier.run(lang, buggy, tests)
        caught = {t["name"] for t in on_buggy.tests if t["status"] != "passed"}
        if on_buggy.status in ("error", "timeout", "memory", "killed") and not on_buggy.tests:
            caught = {t["name"] for t in attempt.execution.tests}
        if not caught:
            attempt.check = Check(False, "bug_not_caught", (
                "every test passes on the buggy code as well, so the tests do not show the bug; "
                "add a test that fails on the buggy code and passes on the fix"))
            return
        name = seed_function(record) if self.oracle else None
        if name is None or norm_lang(lang) != "python":
            if self.oracle:
                attempt.oracle = "unavailable:seed_not_runnable"
            return
        on_seed = await self.verifier.run(lang, record.seed, tests)
        agreed = [t["name"] for t in on_seed.tests if t["name"] in caught
                  and t["status"] == "passed"]
        if agreed:
            attempt.oracle = "confirmed"
            return
        unknown = all(t["status"] != "failed" and re.match(r"(NameError|ImportError|"
                                                           r"ModuleNotFoundError)", t["reason"])
                      for t in on_seed.tests if t["status"] != "passed")
        if unknown or not on_seed.tests:
            attempt.oracle = "unavailable:seed_does_not_run"
            return
        attempt.oracle = "mismatch"
        failing = [t for t in on_seed.tests if t["name"] in caught][:3]
        attempt.check = Check(False, "oracle_mismatch", (
            "the original code (which is correct) fails the tests that catch the bug, so "
            "the fix changes its behaviour: " + "; ".join(
                f"{t['name']}: {t['reason'] or t['status']}" for t in failing)))

    # -- translate: Case2Code I/O pairs from the seed -----------------------------------

    async def _oracle_pairs(self, task: Task, record: Record,
                            ask_inputs: AskInputs) -> list[dict[str, Any]] | str:
        """True input/output pairs of the seed (translate), or ``unavailable:REASON`` / ""."""
        if task.name != "translate" or not self.oracle:
            return ""
        name = seed_function(record)
        if name is None:
            return "unavailable:seed_not_runnable"
        cached = self._pairs.get(record.id)
        if cached is None:
            cached = self._pairs[record.id] = await self._seed_pairs(record, name, ask_inputs)
        if isinstance(cached, list):
            record.meta["oracle_pairs"] = cached
        return cached

    async def _seed_pairs(self, record: Record, name: str,
                          ask_inputs: AskInputs) -> list[dict[str, Any]] | str:
        inputs = parse_inputs(await ask_inputs(record.seed, name))
        if isinstance(inputs, Reject):
            return f"unavailable:{inputs.reason}"
        rows = await self.verifier.call("python", record.seed, [name], inputs)
        if isinstance(rows, Execution):
            return "unavailable:seed_does_not_run"
        pairs = [{"args": a, "out": r["out"], "after": r["args"]}
                 for a, r in zip(inputs, rows, strict=True) if r.get("ok")]
        return pairs or "unavailable:seed_raises_on_every_input"

    async def _translation(self, record: Record, lang: str, code: str,
                           pairs: list[dict[str, Any]], attempt: _Attempt) -> None:
        name = seed_function(record) or ""
        names = name_variants(name)
        rows = await self.verifier.call(lang, code, names, [p["args"] for p in pairs])
        if isinstance(rows, Execution):
            if rows.status == "no_runtime":
                attempt.oracle = f"unavailable:{rows.reason}"
                return
            attempt.oracle = "mismatch"
            attempt.check = Check(False, "oracle_mismatch", (
                f"the translation could not be called as {' or '.join(names)} on the original's "
                f"inputs: {rows.reason}" + (f"\nstderr: {rows.stderr[-300:]}" if rows.stderr
                                             else "")))
            return
        wrong = []
        for pair, row in zip(pairs, rows, strict=True):
            if not row.get("ok"):
                wrong.append(f"for arguments {_short(pair['args'])} the original returns "
                             f"{_short(pair['out'])}, the translation raised {row.get('error')}")
            elif not same_value(pair["out"], row.get("out")):
                wrong.append(f"for arguments {_short(pair['args'])} the original returns "
                             f"{_short(pair['out'])}, the translation returned "
                             f"{_short(row.get('out'))}")
            elif not same_value(pair["after"], row.get("args")):
                wrong.append(f"for arguments {_short(pair['args'])} the original leaves them as "
                             f"{_short(pair['after'])}, the translation as "
                             f"{_short(row.get('args'))}")
        if wrong:
            attempt.oracle = "mismatch"
            attempt.check = Check(False, "oracle_mismatch", (
                f"the translation does not behave like the original on {len(wrong)} of "
                f"{len(pairs)} inputs:\n" + "\n".join(f"- {w}" for w in wrong[:4])))
        else:
            attempt.oracle = "confirmed"

    # -- picking among responses --------------------------------------------------------

    async def _cross(self, lang: str, attempts: Sequence[_Attempt | None],
                     passing: list[int]) -> dict[int, int]:
        """How many of the other passing responses' tests each passing solution passes."""
        jobs = [(i, j) for i in passing for j in passing if i != j]
        runs = await asyncio.gather(*(
            self.verifier.run(lang, attempts[i].code or "",  # type: ignore[union-attr]
                              extract_tests(attempts[j].tests, lang))  # type: ignore[union-attr]
            for i, j in jobs))
        cross: dict[int, int] = dict.fromkeys(passing, 0)
        for (i, _), run in zip(jobs, runs, strict=True):
            cross[i] += run.passed
        return cross

    # -- mutation score -----------------------------------------------------------------

    async def score_mutation(self, task: Task, record: Record) -> None:
        """``scores["mutation_score"]`` of a kept sample (NaN with a counted reason)."""
        if self.mutants <= 0 or not record.meta.get("verified"):
            if self.mutants > 0:
                self._mutation_nan(record, "not_verified")
            return
        lang = str(record.meta.get("test_lang") or task.code_lang(record))
        code = extract_code(record.response, lang)
        if code is None:
            self._mutation_nan(record, "no_code")
            return
        tests = extract_tests(str(record.meta.get("tests") or ""), lang)
        score, detail = await mutation_score(self.verifier, code, tests, lang, self.mutants,
                                             self.seed)
        record.scores["mutation_score"] = score
        record.meta["mutation"] = detail
        if math.isnan(score):
            self._mutation_nan(record, str(detail.get("reason")))
        else:
            self.counters.mutation.setdefault(f"{task.name}:{lang}", []).append(score)

    def _mutation_nan(self, record: Record, reason: str) -> None:
        record.scores["mutation_score"] = math.nan
        record.meta.setdefault("score_errors", {})["mutation_score"] = reason
        self.counters.reasons[f"nan:mutation_score:{reason}"] += 1

    # -- reporting ------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        c = self.counters
        v = self.verifier.counters
        per = {}
        for key in sorted(c.samples):
            n, ok = c.samples[key], c.verified[key]
            scores = c.mutation.get(key, [])
            per[key] = {"samples": n, "verified": ok, "share": round(ok / n, 4) if n else None,
                        "mutation_score_mean": round(sum(scores) / len(scores), 4)
                        if scores else None}
        return {
            "mode": self.mode, "responses": self.responses, "per_task_lang": per,
            "reasons": dict(sorted(c.reasons.items())), "oracle": dict(sorted(c.oracle.items())),
            "critiqued": c.critiqued, "fixed_next_round": c.fixed_next_round,
            "executions": {"executed": v.executed, "cache_hits": v.cache_hits,
                           "exec_wall_s": round(v.exec_wall_s, 3),
                           "busy_s": round(v.busy_s, 3),
                           "statuses": dict(sorted(v.statuses.items()))},
        }

    def card_section(self) -> str:
        """The dataset card's section on execution verification."""
        data = self.to_json()
        lines = ["## Execution verification", "",
                 f"Mode `{self.mode}`, {self.responses} response(s) per instruction. A sample "
                 "is verified when its solution passes its own tests in the sandbox (and, for "
                 "translate and repair from runnable Python function seeds, the seed oracle "
                 "agrees).", "",
                 "| task:language | samples | verified | share | mean mutation score |",
                 "|---|---|---|---|---|"]
        for key, row in data["per_task_lang"].items():
            lines.append(f"| {key} | {row['samples']} | {row['verified']} | "
                         f"{_fmt(row['share'])} | {_fmt(row['mutation_score_mean'])} |")
        oracle = data["oracle"]
        confirmed = sum(n for k, n in oracle.items() if k.endswith(":confirmed"))
        lines += ["", f"Seed oracle (Case2Code): {confirmed} samples confirmed"
                  + (" (" + ", ".join(f"{k}: {n}" for k, n in oracle.items()) + ")"
                     if oracle else "") + ".",
                  f"Failure critiques sent: {data['critiqued']}; fixed in the next round: "
                  f"{data['fixed_next_round']}.",
                  f"Executions: {data['executions']['executed']} run, "
                  f"{data['executions']['cache_hits']} served from the cache."]
        if data["reasons"]:
            lines.append("Failure reasons: " + ", ".join(
                f"{k}: {n}" for k, n in data["reasons"].items()) + ".")
        return "\n".join(lines)


def _short(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + "…"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"
