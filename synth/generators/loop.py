"""The generator–discriminator loop (WaveCoder / CodeOcean, Yu et al. 2023), as one async stage.

Per record, round ``r`` of at most ``max_rounds``::

    generator(prompt + few-shot cases [+ previous reply + critique]) ─► parse + rule checks
        │ unusable reply (truncated, unparseable, a task's check, parrots the request,
        │ copies an example) ─► critique = what was wrong
        ▼
    verify (code tasks, --verify require|score): solution + its tests in the sandbox
        │ failing test / load error / timeout / oracle mismatch ─► critique = the failure
        │ (require; score records the verdict and goes on)
        ▼
    discriminator(checklist) ─► verdict
        │ unreadable verdict ─► next round asks the discriminator again (the sample stays)
        │ a rule failed      ─► bad case in memory; critique = failed rules with reasons
        ▼ every rule yes
    accepted ─► good case in memory; record goes on

After the last round the record is rejected with the last round's reason
(``discriminator_rejected`` with ``meta['failed_rules']``, a ``parse_*`` reason, or a
``judge_*`` reason). WaveCoder's released loop retried forever and had no revise step; here
rounds are bounded and a revise round shows the generator its own reply and the critique.
Every round's raw I/O is kept in ``meta['rounds']``; each round's messages differ (they carry
the previous reply and the critique), so the request cache never serves a round another
round's answer.

The stage keeps ``window`` records in flight; each record's rounds run as one coroutine, so
a record in its second round never waits for a batch.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from difflib import SequenceMatcher
from functools import lru_cache, partial
from typing import Any

from rapidfuzz import process
from rapidfuzz.distance import Indel

from synth.generators.base import (
    NO_EXAMPLES,
    SOLUTION,
    TESTS,
    Examples,
    FormatState,
    Task,
    response_format,
    schema_of,
)
from synth.generators.judge import Verdict, parse_verdict
from synth.generators.memory import ExampleMemory, Outcome, make_case
from synth.generators.parsing import Reject, parse_reply
from synth.generators.verifystep import ORACLE_TEMPLATE, Check, VerifyStep
from synth.llm.client import Completion, LLMClient, LLMRequestFailed, Message, SamplingParams
from synth.pipeline import AsyncStage
from synth.prompts import Prompts
from synth.records import Record, sorted_json

log = logging.getLogger("synth")

LOOP_TEMPLATES = "_loop"
LOOP_PARTS = ("revise", "reread")  # rendered by the stage itself, not included by a task
RESPOND_TEMPLATE = "respond"  # one more solution + tests for an instruction (--responses K)
RESPOND_FIELDS = (SOLUTION, TESTS)
#: --responses K samples each extra response at least this hot (greedy would give K copies).
RESPONSE_TEMPERATURE = 0.7


def template_hash(prompts: Prompts, task: Task) -> str:
    """The hash of every template a record of ``task`` can be prompted with."""
    extra = tuple(f"{LOOP_TEMPLATES}/{part}.j2" for part in LOOP_PARTS)
    if task.verifiable:  # a verified sample may also be shaped by these
        extra += tuple(f"{t}/{part}.j2" for t in (RESPOND_TEMPLATE, ORACLE_TEMPLATE)
                       for part in ("system", "user"))
    return prompts.template_hash(task.template, extra)


def _rejects_response_format(exc: LLMRequestFailed) -> bool:
    text = exc.detail.lower()
    return exc.reason == "llm_bad_request" and "response_format" in text


@dataclass
class TaskCounters:
    """What the loop did for one task; written to stats.json under ``discriminator``."""

    records: int = 0
    accepted: int = 0
    rejected: int = 0
    generator_calls: int = 0
    judge_calls: int = 0
    accepted_at_round: Counter[str] = field(default_factory=Counter)
    round_outcomes: Counter[str] = field(default_factory=Counter)
    rules: dict[str, Counter[str]] = field(default_factory=dict)
    reject_reasons: Counter[str] = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        calls = self.generator_calls + self.judge_calls
        return {
            "records": self.records, "accepted": self.accepted, "rejected": self.rejected,
            "acceptance_rate": round(self.accepted / self.records, 4) if self.records else None,
            "calls": {"generator": self.generator_calls, "judge": self.judge_calls},
            "calls_per_accepted": round(calls / self.accepted, 3) if self.accepted else None,
            "accepted_at_round": dict(sorted(self.accepted_at_round.items())),
            "round_outcomes": dict(sorted(self.round_outcomes.items())),
            "rules": {rid: {"yes": c["yes"], "no": c["no"],
                            "pass_rate": round(c["yes"] / (c["yes"] + c["no"]), 4)
                            if c["yes"] + c["no"] else None}
                      for rid, c in self.rules.items()},
            "reject_reasons": dict(sorted(self.reject_reasons.items())),
        }


class LoopStats(dict[str, TaskCounters]):
    """Per-task counters; ``Stats.to_dict`` serialises them through :meth:`to_json`."""

    def task(self, name: str) -> TaskCounters:
        return self.setdefault(name, TaskCounters())

    def to_json(self) -> dict[str, Any]:
        return {name: c.to_dict() for name, c in sorted(self.items())}


@dataclass
class _Exchange:
    """One LLM call as the record's meta keeps it."""

    messages: list[Message]
    completion: Completion
    answer_format: str

    def to_meta(self) -> dict[str, Any]:
        return {"messages": self.messages, "output": self.completion.text,
                "finish_reason": self.completion.finish_reason,
                "answer_format": self.answer_format}


class TaskStage(AsyncStage):
    """Runs each record's task: generator, then (unless disabled) the discriminator loop.

    Reads records made for a task (``Record.for_task``; ``record.task`` picks the task from
    ``tasks``, so one stage serves a ``mix``); yields them with ``instruction``/``input``/
    ``response`` filled and ``meta['rounds']``, ``meta['verdict']``, ``meta['instance']``.
    Rejects: ``llm_error``/``llm_bad_request`` (a request failed for good), the task's
    preparation reasons (``no_target_language``...), and after the last round
    ``discriminator_rejected``, ``truncated``/``finish_*``, ``parse_*``, ``judge_*``.

    Args:
        tasks: the task, or the tasks records may name by name.
        client: the LLM client (generator and discriminator share it).
        prompts: the templates.
        params: sampling parameters of every call (``response_format`` is set per call).
        answer_format: ``auto``, ``json`` or ``sections`` (for both generator and judge).
        window: records in flight (default: twice the client's concurrency).
        first_dialect: the JSON dialect ``auto`` tries first.
        memory: the good/bad example memory (None: no few-shot, nothing remembered).
        discriminate: run the discriminator loop; False is one generator call per record.
        max_rounds: generator–discriminator rounds per record.
        seed: seeds per-record choices (translate's target, evol's method).
        verify: the execution step for code tasks (None: ``--verify off``).
    """

    def __init__(self, tasks: Task | Mapping[str, Task], client: LLMClient, prompts: Prompts,
                 params: SamplingParams, answer_format: str = "auto", window: int | None = None,
                 first_dialect: str = "json_schema", memory: ExampleMemory | None = None,
                 discriminate: bool = True, max_rounds: int = 2, seed: int = 0,
                 verify: VerifyStep | None = None) -> None:
        super().__init__(window or max(2 * client.config.concurrency, 1))
        if max_rounds < 1:
            raise ValueError("max_rounds must be >= 1")
        self.tasks = {tasks.name: tasks} if isinstance(tasks, Task) else dict(tasks)
        label = next(iter(self.tasks)) if len(self.tasks) == 1 else "mix"
        self.name = f"generate:{label}"
        self.reads = ("seed",)
        self.writes = ("instruction", "input", "response", "model", "template",
                       "template_hash", "rounds", "verdict")
        self.client = client
        self.prompts = prompts
        self.params = params
        self.memory = memory
        self.discriminate = discriminate
        self.verify = verify
        gating = verify is not None and verify.require
        self.max_rounds = max_rounds if discriminate or gating else 1
        # The request wording a reply is checked against depends only on what task.blank keeps
        # (task, language, target language / evol method) and the answer format: rendered once
        # per distinct one instead of once per reply.
        self._wordings: dict[tuple[str, str, str, str], str] = {}
        # The params of a JSON call, per (params, schema name, dialect): one object each, so
        # its request dict (and the response_format built from the schema) is made once.
        self._json_calls: dict[tuple[int, str, str], tuple[SamplingParams, SamplingParams]] = {}
        self.seed = seed
        self.formats = {name: FormatState.from_option(answer_format, t.schema, first_dialect)
                        for name, t in self.tasks.items()}
        self.judge_formats = {
            name: FormatState.from_option(answer_format, t.judge_schema, first_dialect)
            for name, t in self.tasks.items()}
        self.template_hashes = {name: template_hash(prompts, t) for name, t in self.tasks.items()}
        self.respond_schema = schema_of(RESPOND_FIELDS)
        self.respond_format = FormatState.from_option(answer_format, self.respond_schema,
                                                      first_dialect)
        self.counters = LoopStats()
        self._seqs: dict[int, int] = {}
        if memory is not None:
            memory.block = self.window

    def dialects(self) -> dict[str, dict[str, str]]:
        """The reply dialect each task ended up with (for config.json)."""
        return {name: {"generator": self.formats[name].current,
                       "judge": self.judge_formats[name].current} for name in self.tasks}

    def bind(self, ctx: Any) -> None:
        super().bind(ctx)
        ctx.stats.extra["discriminator"] = self.counters.to_json
        if self.verify is not None:
            ctx.stats.extra["verify"] = self.verify.to_json

    def run(self, records: Iterator[Record]) -> Iterator[Record]:
        return super().run(self._numbered(records))

    def _numbered(self, records: Iterator[Record]) -> Iterator[Record]:
        """Number records in input order: the memory's deterministic snapshots key on it."""
        for seq, record in enumerate(records):
            self._seqs[id(record)] = seq
            yield record

    # -- one record --------------------------------------------------------------------------

    async def process(self, record: Record) -> Record | None:
        seq = self._seqs.pop(id(record), 0)
        outcomes: list[Outcome] = []
        try:
            return await self._process(record, seq, outcomes)
        finally:
            if self.memory is not None and self.discriminate:
                self.memory.finish(seq, outcomes)

    async def _process(self, record: Record, seq: int, outcomes: list[Outcome]) -> Record | None:
        task = self.tasks[record.task]
        counters = self.counters.task(task.name)
        counters.records += 1
        prepared = task.prepare(record, self.seed)
        if isinstance(prepared, Reject):
            self._reject(record, counters, prepared.reason, prepared.detail)
            return None
        examples = NO_EXAMPLES
        if self.memory is not None:
            # without the discriminator nothing is learnt: every record sees the base memory
            examples = await self.memory.examples(task.name, record.id,
                                                  seq if self.discriminate else 0)
        record.meta.update(model=self.client.model, template=task.template,
                           template_hash=self.template_hashes[task.name],
                           few_shot=examples.ids())
        rounds: list[dict[str, Any]] = record.meta.setdefault("rounds", [])
        sample = int(record.meta.get("sample", 0))
        revise: tuple[str, dict[str, Any]] | None = None  # (previous reply, critique)
        reread: tuple[str, str] | None = None  # (unreadable verdict, what was wrong with it)
        rejected: tuple[dict[str, str], Verdict] | None = None  # last rejected instance
        failure = Reject("", "")
        last_check: Check | None = None  # the verify step's verdict on the latest sample
        critiqued = False  # the latest revise prompt carried an execution failure
        try:
            for r in range(1, self.max_rounds + 1):
                entry: dict[str, Any] = {"round": r}
                rounds.append(entry)
                if reread is None:  # a new sample; else the same sample is judged again
                    gen = await self._ask(
                        self.formats[task.name], task.schema, task.name,
                        partial(self._generator_messages, task, record, examples,
                                revise=revise, round_=r), sample)
                    counters.generator_calls += 1
                    entry["generator"] = record.meta["raw"] = gen.to_meta()
                    record.meta["answer_format"] = gen.answer_format
                    parsed = self._parse(task, gen, record, examples)
                    if isinstance(parsed, Reject):
                        entry["parse_error"] = {"reason": parsed.reason, "detail": parsed.detail}
                        self._round_over(counters, entry, "invalid")
                        record.meta["parse_error"] = parsed.detail
                        failure = parsed
                        revise = (gen.completion.text, {"error": parsed.detail or parsed.reason})
                        critiqued = False  # a fix counts only in the round right after
                        continue
                    record.meta.pop("parse_error", None)
                    if self.verify is not None and task.verifiable:
                        check = await self._verify(task, record, sample, entry, critiqued)
                        last_check = check
                        critiqued = False
                        if not check.ok and check.gate and self.verify.require:
                            self._round_over(counters, entry, "verify_failed")
                            # code that fails its own tests is a bad case, the failure its why
                            outcomes.append(Outcome(task.name, "bad", 1.0, make_case(
                                task, record, [{"rule": "tests_pass", "text": "The code passes "
                                                "its own tests.",
                                                "reason": check.critique[:400]}])))
                            failure = Reject(check.reason, check.critique)
                            revise = (gen.completion.text, {"execution": check.critique})
                            critiqued = True
                            continue
                    if not self.discriminate:
                        self._round_over(counters, entry, "accepted")
                        return await self._accept_verified(task, record, counters, r,
                                                           last_check)
                instance = dict(record.meta.get("instance") or {})
                if rejected is not None and rejected[0] == instance:
                    # The generator repeated a sample already rejected: same sample, same
                    # verdict, and no request whose only possible news is sampling noise.
                    entry["repeated"] = True
                    verdict = rejected[1]
                else:
                    judge = await self._ask(
                        self.judge_formats[task.name], task.judge_schema, f"{task.name}_verdict",
                        partial(self._judge_messages, task, record, again=reread, round_=r),
                        sample)
                    counters.judge_calls += 1
                    entry["judge"] = judge.to_meta()
                    read = self._read_verdict(task, judge)
                    if isinstance(read, Reject):
                        entry["judge_error"] = {"reason": read.reason, "detail": read.detail}
                        self._round_over(counters, entry, "judge_error")
                        failure = read
                        reread = (judge.completion.text, read.detail or read.reason)
                        continue
                    verdict = read
                    for rid, (ok, _) in verdict.answers.items():
                        counters.rules.setdefault(rid, Counter())["yes" if ok else "no"] += 1
                reread = None
                entry["verdict"] = record.meta["verdict"] = verdict.to_meta()
                if verdict.accepted:
                    self._round_over(counters, entry, "accepted")
                    outcomes.append(Outcome(task.name, "good", 1.0 / r, make_case(task, record)))
                    return await self._accept_verified(task, record, counters, r, last_check)
                self._round_over(counters, entry, "rejected")
                problems = _problems(task, verdict)
                if not entry.get("repeated"):
                    outcomes.append(Outcome(task.name, "bad",
                                            len(verdict.failed) / max(len(task.rules), 1),
                                            make_case(task, record, problems)))
                rejected = (instance, verdict)
                record.meta["failed_rules"] = list(verdict.failed) or ["verdict"]
                failure = Reject("discriminator_rejected",
                                 "; ".join(f"{p['rule']}: {p['reason']}" for p in problems))
                revise = (gen.completion.text, {"problems": problems})
        except LLMRequestFailed as exc:
            record.meta["llm_error"] = exc.detail
            self._reject(record, counters, exc.reason, exc.detail)
            return None
        if self.verify is not None and last_check is not None:
            self.verify.count(task, record, last_check, final=True)
        self._reject(record, counters, failure.reason, failure.detail)
        return None

    async def _verify(self, task: Task, record: Record, sample: int, entry: dict[str, Any],
                      critiqued: bool) -> Check:
        """The verify step on the record's current sample; counts a critique that worked."""
        assert self.verify is not None
        check = await self.verify.check(
            task, record, partial(self._responses, task, record, sample),
            partial(self._oracle_inputs, sample))
        entry["verify"] = check.to_meta() | {"execution": record.meta.get("execution")}
        if critiqued:
            self.verify.counters.critiqued += 1
            if check.ok:
                self.verify.counters.fixed_next_round += 1
        return check

    async def _accept_verified(self, task: Task, record: Record, counters: TaskCounters,
                               round_: int, check: Check | None) -> Record:
        if self.verify is not None and check is not None:
            self.verify.count(task, record, check, final=True)
            await self.verify.score_mutation(task, record)
        return self._accept(record, counters, round_)

    async def _responses(self, task: Task, record: Record, sample: int,
                         n: int) -> list[tuple[str, str] | None]:
        """``n`` more solutions with tests for the record's instruction (--responses K);
        each request has its own sample index, so each is cached on its own."""
        params = replace(self.params, temperature=max(self.params.temperature,
                                                      RESPONSE_TEMPERATURE))

        async def one(k: int) -> tuple[str, str] | None:
            params_k = replace(params, seed=(params.seed or 0) + k)
            gen = await self._ask(self.respond_format, self.respond_schema, "response",
                                  partial(self._respond_messages, task, record),
                                  sample * 1000 + k, params_k)
            if gen.completion.finish_reason != "stop":
                return None
            values = parse_reply(gen.completion.text, RESPOND_FIELDS, gen.answer_format)
            if isinstance(values, Reject):
                return None
            return values["solution"], values["tests"]

        return list(await asyncio.gather(*(one(k) for k in range(1, n + 1))))

    def _respond_messages(self, task: Task, record: Record,
                          answer_format: str) -> list[Message]:
        variables = task.variables(record, answer_format)
        variables.update(instruction=record.instruction, information=record.input)
        return self.prompts.messages(RESPOND_TEMPLATE, **variables)

    async def _oracle_inputs(self, sample: int, seed: str, name: str) -> str:
        """The LLM's inputs for a seed function (Case2Code); executed on the seed itself."""
        messages = self.prompts.messages(ORACLE_TEMPLATE, seed=seed, name=name, num_inputs=6)
        params = replace(self.params, response_format=None)
        completion = await self.client.complete(messages, params, sample=sample)
        return completion.text

    @staticmethod
    def _round_over(counters: TaskCounters, entry: dict[str, Any], outcome: str) -> None:
        entry["outcome"] = outcome
        counters.round_outcomes[outcome] += 1

    def _parse(self, task: Task, gen: _Exchange, record: Record,
               examples: Examples) -> Record | Reject:
        finish = gen.completion.finish_reason
        if finish != "stop":
            if finish == "length":
                return Reject("truncated", "the reply was cut off at the token limit "
                              f"({self.params.max_tokens} tokens); write a shorter reply")
            return Reject(f"finish_{finish}", f"the reply ended with {finish}")
        parsed = task.parse(gen.completion.text, record, gen.answer_format)
        if isinstance(parsed, Reject):
            return parsed
        instance = parsed.meta.get("instance") or {}
        blank = task.blank(record)
        wkey = (task.name, gen.answer_format, blank.lang, sorted_json(blank.meta, default=str))
        wording = self._wordings.get(wkey)
        if wording is None:
            wording = task.messages(blank, self.prompts, gen.answer_format)[-1]["content"]
            self._wordings[wkey] = wording
        echoed = echoed_field(instance, wording)
        if echoed is not None:
            return Reject("parse_echoed_prompt", f"the {echoed} repeats the wording of the "
                          "request instead of answering it")
        copied = copied_field(instance, examples)
        if copied is not None:
            return Reject("parse_copied_example", f"the {copied} copies one of the examples; "
                          "write a new one for this input")
        return parsed

    def _read_verdict(self, task: Task, judge: _Exchange) -> Verdict | Reject:
        finish = judge.completion.finish_reason
        if finish == "length":
            return Reject("judge_truncated", "the review was cut off at the token limit; keep "
                          "each reason to one short sentence")
        if finish != "stop":
            return Reject(f"judge_finish_{finish}", f"the review ended with {finish}")
        return parse_verdict(judge.completion.text, task.rules, judge.answer_format)

    # -- messages ------------------------------------------------------------------------------

    def _generator_messages(self, task: Task, record: Record, examples: Examples,
                            answer_format: str, *,
                            revise: tuple[str, dict[str, Any]] | None,
                            round_: int) -> list[Message]:
        messages = task.messages(record, self.prompts, answer_format, examples)
        if revise is None:
            return messages
        previous, critique = revise
        text = self.prompts.render(
            LOOP_TEMPLATES, "revise", round=round_, max_rounds=self.max_rounds,
            answer_format=answer_format, problems=critique.get("problems", []),
            error=critique.get("error", ""), execution=critique.get("execution", ""))
        return messages + [{"role": "assistant", "content": previous},
                           {"role": "user", "content": text or ""}]

    def _judge_messages(self, task: Task, record: Record, answer_format: str, *,
                        again: tuple[str, str] | None, round_: int) -> list[Message]:
        messages = task.judge_messages(record, self.prompts, answer_format)
        if again is None:
            return messages
        previous, error = again
        text = self.prompts.render(
            LOOP_TEMPLATES, "reread", round=round_, answer_format=answer_format, error=error,
            rules=[r.id for r in task.rules])
        return messages + [{"role": "assistant", "content": previous},
                           {"role": "user", "content": text or ""}]

    async def _ask(self, fmt: FormatState, schema: dict[str, Any] | None, schema_name: str,
                   build: Callable[[str], list[Message]], sample: int,
                   params: SamplingParams | None = None) -> _Exchange:
        """One call in the dialect in use, moving down the dialects when the endpoint refuses
        a ``response_format``. Raises LLMRequestFailed when the request fails for good."""
        while True:
            dialect = fmt.current
            answer_format = fmt.answer_format
            messages = build(answer_format)
            call = params or self.params
            if answer_format == "json":
                call = self._json_call(call, schema, schema_name, dialect)
            try:
                completion = await self.client.complete(messages, call, sample=sample)
            except LLMRequestFailed as exc:
                if (dialect != "sections" and _rejects_response_format(exc)
                        and fmt.fall_back(dialect)):
                    continue
                raise
            return _Exchange(messages, completion, answer_format)

    def _json_call(self, params: SamplingParams, schema: dict[str, Any] | None,
                   schema_name: str, dialect: str) -> SamplingParams:
        key = (id(params), schema_name, dialect)
        hit = self._json_calls.get(key)
        if hit is not None and hit[0] is params:
            return hit[1]
        call = replace(params, response_format=response_format(schema, schema_name, dialect))
        if len(self._json_calls) < 256:  # per-request params (--responses' seeds) not kept
            self._json_calls[key] = (params, call)
        return call

    # -- outcomes ------------------------------------------------------------------------------

    def _accept(self, record: Record, counters: TaskCounters, round_: int) -> Record:
        counters.accepted += 1
        counters.accepted_at_round[str(round_)] += 1
        record.meta.pop("failed_rules", None)
        return record

    def _reject(self, record: Record, counters: TaskCounters, reason: str,
                detail: str) -> None:
        counters.rejected += 1
        counters.reject_reasons[reason] += 1
        if detail:
            record.meta["reject_detail"] = detail
        self.reject(record, reason)


ECHO_RATIO = 0.8
# The gate's cut-off sits under ECHO_RATIO: rapidfuzz turns a score_cutoff into a distance bound
# with rounding of its own (a cut-off of 0.8 - 1e-9 drops a pair whose ratio is exactly 0.8), so
# the gate keeps a margin and difflib decides every pair inside it.
_GATE = ECHO_RATIO - 0.01


def echoed_field(instance: dict[str, str], prompt: str) -> str | None:
    """The first field whose value is a near copy of one line of ``prompt`` (the templates' own
    wording: a small model parroting a field's description instead of writing it), else None."""
    lines = _prompt_lines(prompt)
    for key, value in instance.items():
        text = _plain(value)
        if key == "task_name" or len(text) > 600 or not 10 <= len(text) <= 2000:
            continue
        # rapidfuzz scans every line in C and returns only the lines within the gate (extract,
        # not extract_iter: the generator costs ~40x more per call); the exact difflib ratio is
        # then computed for those few candidates (see _near).
        for line, _, _ in process.extract(text, lines, scorer=Indel.normalized_similarity,
                                          score_cutoff=_GATE, limit=None):
            if _difflib_near(text, line):
                return key
    return None


@lru_cache(maxsize=256)
def _prompt_lines(prompt: str) -> tuple[str, ...]:
    """The prompt's lines as ``echoed_field`` compares them (cached: a task's request wording
    is the same for every record, so each distinct wording is split and normalised once)."""
    lines = (_plain(re.sub(r"^\s*[-*]?\s*\w+:\s", "", line)) for line in prompt.splitlines())
    return tuple(dict.fromkeys(line for line in lines if 10 <= len(line) <= 2000))


def copied_field(instance: dict[str, str], examples: Examples) -> str | None:
    """The first field whose value is a near copy of the same field of a few-shot case shown
    to the generator (small models copy examples whole), else None."""
    for case in examples.good + examples.bad:
        shown = case.get("instance") or {}
        for key, value in instance.items():
            if key != "task_name" and _near(_plain(value), _plain(str(shown.get(key, "")))):
                return key
    return None


def _near(a: str, b: str) -> bool:
    """difflib's ``ratio() >= ECHO_RATIO`` verdict, computed cheaply.

    Two gates reject almost every pair before difflib runs: the length bound (difflib's
    ``real_quick_ratio``) and rapidfuzz's Indel similarity ``2·LCS/(|a|+|b|)``, computed in C.
    difflib's matching blocks are a common subsequence, so its ratio never exceeds the Indel
    one: a pair the gate drops is a pair difflib would drop. The few pairs that pass (near
    copies) get difflib's exact ratio, so every verdict is the one difflib alone gave.
    """
    la, lb = len(a), len(b)
    if not (10 <= la <= 2000 and 10 <= lb <= 2000):
        return False
    if 2.0 * min(la, lb) / (la + lb) < _GATE:
        return False
    if Indel.normalized_similarity(a, b, score_cutoff=_GATE) < _GATE:
        return False
    return _difflib_near(a, b)


def _difflib_near(a: str, b: str) -> bool:
    matcher = SequenceMatcher(None, a, b, autojunk=False)
    return matcher.real_quick_ratio() >= ECHO_RATIO and matcher.ratio() >= ECHO_RATIO


def _plain(text: str) -> str:
    return " ".join(text.lower().split())


def _problems(task: Task, verdict: Verdict) -> list[dict[str, str]]:
    """The failed rules with the discriminator's reasons (a bad case's analysis)."""
    texts = {r.id: r.text for r in task.rules}
    problems = [{"rule": rid, "text": texts[rid], "reason": verdict.answers[rid][1]}
                for rid in verdict.failed]
    if not problems:  # every rule passed but the overall verdict said no
        problems = [{"rule": "verdict", "text": "The overall verdict.",
                     "reason": "the reviewer's overall verdict was no"}]
    return problems


def loop_card_section(counters: LoopStats) -> str:
    """The dataset card's section on the loop: acceptance and rule pass rates per task."""
    lines = ["## Generator–discriminator loop", "",
             "| task | records | accepted | rate | calls per accepted | accepted at round |",
             "|---|---|---|---|---|---|"]
    rules = ["", "| task | rule | yes | no | pass rate |", "|---|---|---|---|---|"]
    for name, c in sorted(counters.items()):
        d = c.to_dict()
        at = ", ".join(f"{k}: {v}" for k, v in d["accepted_at_round"].items()) or "-"
        lines.append(f"| {name} | {c.records} | {c.accepted} | {_fmt(d['acceptance_rate'])} | "
                     f"{_fmt(d['calls_per_accepted'])} | {at} |")
        for rid, r in d["rules"].items():
            rules.append(f"| {name} | {rid} | {r['yes']} | {r['no']} | {_fmt(r['pass_rate'])} |")
    return "\n".join(lines + rules)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"
