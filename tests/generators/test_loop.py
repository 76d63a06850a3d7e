"""The generator–discriminator loop against a scripted endpoint (``httpx.MockTransport`` under the
LLM client's httpx seam): accept, revise with the critique, reject after the last round,
unreadable verdicts, few-shot cases from the memory, reruns from the cache."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import httpx
from conftest import chat_response, mock_client

from synth.generators import SummarizeTask, get_task
from synth.generators.base import Task
from synth.generators.loop import TaskStage
from synth.generators.memory import ExampleMemory
from synth.llm.client import SamplingParams
from synth.pipeline import RunContext, run_stages
from synth.prompts import Prompts
from synth.records import Record
from synth.store import RunStore

RULES = [r.id for r in SummarizeTask.rules]


def instance(instruction: str, solution: str = "It adds two numbers.") -> str:
    return json.dumps({"task_name": "code summarization", "instruction": instruction,
                       "solution": solution})


def verdict(no: dict[str, str] | None = None, overall: str | None = None) -> str:
    no = no or {}
    body: dict[str, Any] = {r: {"reason": no.get(r, "fine"), "answer": "no" if r in no else "yes"}
                            for r in RULES}
    body["verdict"] = overall or ("no" if no else "yes")
    return json.dumps(body)


class Scripted:
    """An endpoint that answers generator and discriminator requests from two scripts.

    Each script gets the request body and the generator round (1 + the number of revise turns)
    and returns the reply text, or ``(text, finish_reason)``.
    """

    def __init__(self, generator: Callable[[dict[str, Any], int], Any],
                 judge: Callable[[dict[str, Any], int], Any]) -> None:
        self.generator = generator
        self.judge = judge
        self.requests: list[dict[str, Any]] = []

    @staticmethod
    def is_judge(body: dict[str, Any]) -> bool:
        return "\nRules:\n" in body["messages"][1]["content"]

    def handler(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.requests.append(body)
        m = re.search(r"attempt (\d+) of", body["messages"][-1]["content"])
        round_ = int(m.group(1)) if m else 1
        out = (self.judge if self.is_judge(body) else self.generator)(body, round_)
        text, finish = out if isinstance(out, tuple) else (out, "stop")
        return httpx.Response(200, json=chat_response(text, finish))

    def count(self, judge: bool) -> int:
        return sum(self.is_judge(b) == judge for b in self.requests)


def records(n: int, task: str = "summarize") -> list[Record]:
    out = []
    for i in range(n):
        seed = Record.from_seed(f"def f{i}(a, b):\n    return a + b", "python",
                                {"path": f"m{i}.py"})
        seed.meta["index"] = i
        out.append(seed.for_task(task))
    return out


def run(store: RunStore, scripted: Scripted, recs: list[Record],
        tasks: Task | dict[str, Task] | None = None, memory: ExampleMemory | None = None,
        **kw: Any) -> tuple[RunContext, TaskStage]:
    ctx = RunContext(store, seed=7)
    client = mock_client(scripted.handler, store, concurrency=kw.pop("concurrency", 2))
    stage = TaskStage(tasks or SummarizeTask(), client, Prompts(), SamplingParams(max_tokens=64),
                      answer_format="json", memory=memory, seed=7, **kw)
    try:
        run_stages(iter(recs), [stage], ctx, len(recs))
    finally:
        if memory is not None:
            memory.close(complete=True)
        ctx.close()
    return ctx, stage


def results(store: RunStore, status: str) -> dict[str, tuple[str | None, Record]]:
    return {rec.seed: (reason, rec) for _, reason, rec in store.iter_results(status)}


def test_accepts_on_round_one(store: RunStore) -> None:
    s = Scripted(lambda b, r: instance("Explain this Python function."), lambda b, r: verdict())
    ctx, stage = run(store, s, records(3))
    kept = results(store, "kept")
    assert len(kept) == 3 and s.count(judge=False) == 3 and s.count(judge=True) == 3
    _, rec = next(iter(kept.values()))
    assert rec.instruction == "Explain this Python function." and rec.input == rec.seed
    assert rec.response == "It adds two numbers." and rec.task == "summarize"
    assert [e["outcome"] for e in rec.meta["rounds"]] == ["accepted"]
    assert rec.meta["verdict"]["accepted"] and set(rec.meta["verdict"]["rules"]) == set(RULES)
    assert rec.meta["instance"]["task_name"] == "code summarization"
    stats = ctx.stats.to_dict()["discriminator"]["summarize"]
    assert stats["accepted"] == 3 and stats["calls_per_accepted"] == 2.0
    assert stats["rules"]["language_named"] == {"yes": 3, "no": 0, "pass_rate": 1.0}


def test_accepts_after_the_critique(store: RunStore) -> None:
    def generator(body: dict[str, Any], round_: int) -> str:
        return instance(f"Explain this Python function (draft {round_}).")

    def judge(body: dict[str, Any], _: int) -> str:
        if "draft 1" in body["messages"][1]["content"]:
            return verdict({"asks_explanation": "the instruction already gives the answer"})
        return verdict()

    ctx, _ = run(store, s := Scripted(generator, judge), records(1), max_rounds=2)
    (_, rec), = results(store, "kept").values()
    assert rec.instruction == "Explain this Python function (draft 2)."
    assert [e["outcome"] for e in rec.meta["rounds"]] == ["rejected", "accepted"]
    # round 2 shows the generator its own reply and the failed rule with the reviewer's reason
    revise = rec.meta["rounds"][1]["generator"]["messages"]
    assert revise[:2] == rec.meta["rounds"][0]["generator"]["messages"]
    assert revise[2] == {"role": "assistant",
                         "content": rec.meta["rounds"][0]["generator"]["output"]}
    assert "asks_explanation" in revise[3]["content"]
    assert "the instruction already gives the answer" in revise[3]["content"]
    assert "attempt 2 of 2" in revise[3]["content"]
    # every round is its own request: nothing was served from another round's cache entry
    assert len(s.requests) == 4 and ctx.stats.llm["cache_hits"] == 0
    assert "failed_rules" not in rec.meta
    assert ctx.stats.to_dict()["discriminator"]["summarize"]["accepted_at_round"] == {"2": 1}


def test_rejects_with_the_failed_rules_after_max_rounds(store: RunStore) -> None:
    s = Scripted(lambda b, r: instance(f"Explain it, take {r}."),
                 lambda b, r: verdict({"language_named": "no language is named",
                                       "prose_summary": "it is code"}))
    ctx, _ = run(store, s, records(2), max_rounds=3)
    rejected = results(store, "rejected")
    assert len(rejected) == 2 and not results(store, "kept")
    reason, rec = next(iter(rejected.values()))
    assert reason == "discriminator_rejected"
    assert rec.meta["failed_rules"] == ["language_named", "prose_summary"]
    assert "language_named: no language is named" in rec.meta["reject_detail"]
    assert [e["outcome"] for e in rec.meta["rounds"]] == ["rejected"] * 3
    assert s.count(judge=False) == 6 and s.count(judge=True) == 6
    stats = ctx.stats.to_dict()["discriminator"]["summarize"]
    assert stats["reject_reasons"] == {"discriminator_rejected": 2}
    assert stats["rules"]["language_named"] == {"yes": 0, "no": 6, "pass_rate": 0.0}
    assert stats["calls_per_accepted"] is None


def test_a_repeated_rejected_sample_is_not_judged_again(store: RunStore) -> None:
    s = Scripted(lambda b, r: instance("Explain it."), lambda b, r: verdict({"prose_summary": "x"}))
    run(store, s, records(1), max_rounds=2)
    (reason, rec), = results(store, "rejected").values()
    assert reason == "discriminator_rejected"
    assert rec.meta["rounds"][1]["repeated"] is True and "judge" not in rec.meta["rounds"][1]
    assert s.count(judge=False) == 2 and s.count(judge=True) == 1


def test_overall_no_over_passing_rules_is_a_reject(store: RunStore) -> None:
    s = Scripted(lambda b, r: instance("Explain it."), lambda b, r: verdict(overall="no"))
    run(store, s, records(1), max_rounds=1)
    (reason, rec), = results(store, "rejected").values()
    assert reason == "discriminator_rejected" and rec.meta["failed_rules"] == ["verdict"]


def test_overall_yes_over_a_failed_rule_is_a_reject(store: RunStore) -> None:
    s = Scripted(lambda b, r: instance("Explain it."),
                 lambda b, r: verdict({"summary_accurate": "wrong"}, overall="yes"))
    run(store, s, records(1), max_rounds=1)
    (reason, rec), = results(store, "rejected").values()
    assert reason == "discriminator_rejected" and rec.meta["failed_rules"] == ["summary_accurate"]


def test_unreadable_verdicts_are_counted_rejects_never_accepts(store: RunStore) -> None:
    def judge(body: dict[str, Any], _: int) -> Any:
        seed = body["messages"][1]["content"]
        if "def f0(" in seed:
            return "I think this sample is great!"
        if "def f1(" in seed:
            return json.dumps({"language_named": {"answer": "yes"}, "verdict": "yes"})
        return verdict()[:40], "length"

    s = Scripted(lambda b, r: instance("Explain it."), judge)
    ctx, _ = run(store, s, records(3), max_rounds=2)
    assert not results(store, "kept")
    rejected = {seed.split("(")[0]: reason for seed, (reason, _) in
                results(store, "rejected").items()}
    assert rejected == {"def f0": "judge_unparseable", "def f1": "judge_missing_rules",
                        "def f2": "judge_truncated"}
    # the second round asks the discriminator again about the same sample, saying what was wrong
    assert s.count(judge=False) == 3 and s.count(judge=True) == 6
    reread = [b for b in s.requests if Scripted.is_judge(b) and len(b["messages"]) == 4]
    assert len(reread) == 3 and all("cannot be read" in b["messages"][3]["content"]
                                    for b in reread)
    stats = ctx.stats.to_dict()["discriminator"]["summarize"]
    assert stats["round_outcomes"] == {"judge_error": 6}
    assert stats["rules"] == {}


def test_unusable_generator_reply_is_revised_with_the_error(store: RunStore) -> None:
    def generator(body: dict[str, Any], round_: int) -> Any:
        if round_ == 1:
            return instance("Explain it.")[:30], "length"
        return instance("Explain it.")

    s = Scripted(generator, lambda b, r: verdict())
    run(store, s, records(1), max_rounds=2)
    (_, rec), = results(store, "kept").values()
    assert [e["outcome"] for e in rec.meta["rounds"]] == ["invalid", "accepted"]
    assert rec.meta["rounds"][0]["parse_error"]["reason"] == "truncated"
    assert "cut off at the token limit" in rec.meta["rounds"][1]["generator"]["messages"][3][
        "content"]
    assert "parse_error" not in rec.meta


def test_parroting_the_request_is_rejected_before_the_discriminator(store: RunStore) -> None:
    s = Scripted(lambda b, r: instance(
        "Explain it.", "A correct, concise explanation of what the code does and how, in plain "
        "prose."), lambda b, r: verdict())
    run(store, s, records(1), max_rounds=1)
    (reason, _), = results(store, "rejected").values()
    assert reason == "parse_echoed_prompt" and s.count(judge=True) == 0


def test_no_discriminator_is_one_call_per_record(store: RunStore) -> None:
    s = Scripted(lambda b, r: instance("Explain it."), lambda b, r: verdict())
    ctx, _ = run(store, s, records(3), discriminate=False, max_rounds=3)
    assert len(results(store, "kept")) == 3 and s.count(judge=True) == 0
    assert s.count(judge=False) == 3


def test_few_shot_cases_come_from_the_memory_and_reruns_hit_the_cache(tmp_path: Any) -> None:
    def generator(body: dict[str, Any], _: int) -> str:
        n = re.search(r"def f(\d+)\(", body["messages"][1]["content"].split("### Your request")[-1])
        return instance(f"Explain function number {n.group(1) if n else '?'}.")

    def judge(body: dict[str, Any], _: int) -> str:
        odd = re.search(r"number \d*[13579]\.", body["messages"][1]["content"])
        return verdict({"summary_accurate": "made up"}) if odd else verdict()

    prompts_seen: dict[str, str] = {}

    def recording(body: dict[str, Any], r: int) -> str:
        if r == 1:
            prompts_seen[generator(body, r)] = body["messages"][1]["content"]
        return generator(body, r)

    s = Scripted(recording, judge)
    with RunStore(tmp_path / "run") as store:
        store.begin("generate")
        memory = ExampleMemory(store, size=4, shots=1, seed=7)
        run(store, s, records(12), memory=memory, max_rounds=1, concurrency=1)  # window 2
        assert memory.block == 2
        first = {seed: rec.meta["few_shot"] for seed, (_, rec) in
                 {**results(store, "kept"), **results(store, "rejected")}.items()}
        sent = len(s.requests)
    # records of blocks 0 and 1 see the empty memory; later ones see cases of earlier blocks
    prompt = {int(re.search(r"\d+", k).group()): v for k, v in prompts_seen.items()}
    assert "Good example" not in prompt[0] and "Good example" not in prompt[3]
    assert "Good example 1" in prompt[4] and "Bad example 1" in prompt[4]
    assert "Explain function number 0." in prompt[4] or "number 2." in prompt[4]
    assert "summary_accurate: made up" in prompt[4]
    for seed, shown in first.items():
        n = int(re.search(r"def f(\d+)", seed).group(1))
        for case_id in shown["good"] + shown["bad"]:
            assert case_id  # whole cases, by id
        assert len(shown["good"]) <= 1 and len(shown["bad"]) <= 1
        if n >= 4:
            assert shown["good"] and shown["bad"]

    # the same command again: the same prompts, every answer from the cache
    with RunStore(tmp_path / "run") as store:
        store.begin("generate")
        memory = ExampleMemory(store, size=4, shots=1, seed=7)
        run(store, s, records(12), memory=memory, max_rounds=1, concurrency=1)
        again = {seed: rec.meta["few_shot"] for seed, (_, rec) in
                 {**results(store, "kept"), **results(store, "rejected")}.items()}
    assert len(s.requests) == sent and again == first


def test_mix_runs_each_record_with_its_own_task(store: RunStore) -> None:
    def generator(body: dict[str, Any], _: int) -> str:
        if '"information"' in body["messages"][1]["content"]:  # repair asks for buggy code
            return json.dumps({"task_name": "code repair", "information": "return a - b",
                               "instruction": "It subtracts; fix it.",
                               "solution": "```python\nreturn a + b\n```\nUse +."})
        return instance("Explain this Python function.")

    def judge(body: dict[str, Any], _: int) -> str:
        rules = re.findall(r"^\d+\. (\w+): ", body["messages"][1]["content"], re.MULTILINE)
        return json.dumps({**{r: {"reason": "ok", "answer": "yes"} for r in rules},
                           "verdict": "yes"})

    recs = records(2, "summarize") + records(2, "repair")
    tasks = {"summarize": get_task("summarize"), "repair": get_task("repair")}
    ctx, stage = run(store, Scripted(generator, judge), recs, tasks=tasks)
    kept = [rec for _, _, rec in store.iter_results("kept")]
    assert sorted(r.task for r in kept) == ["repair", "repair", "summarize", "summarize"]
    assert stage.name == "generate:mix"
    assert {t: d["accepted"] for t, d in ctx.stats.to_dict()["discriminator"].items()} == {
        "repair": 2, "summarize": 2}


def test_copying_a_few_shot_example_is_rejected(tmp_path: Any) -> None:
    cases = tmp_path / "cases.jsonl"
    cases.write_text(json.dumps({
        "task": "summarize", "seed": "print(1)", "lang": "python",
        "instruction": "Describe what this short Python script prints.",
        "response": "It prints the number one."}) + "\n")

    def generator(body: dict[str, Any], _: int) -> str:
        assert "Describe what this short Python script prints." in body["messages"][1]["content"]
        return instance("Describe what this short Python script prints!", "It adds numbers.")

    s = Scripted(generator, lambda b, r: verdict())
    with RunStore(tmp_path / "run") as store:
        store.begin("generate")
        memory = ExampleMemory(store, shots=1, seed=7)
        assert memory.seed_from(cases, {"summarize": get_task("summarize")}) == 1
        run(store, s, records(2), memory=memory, max_rounds=2)
        rejected = results(store, "rejected")
    assert {reason for reason, _ in rejected.values()} == {"parse_copied_example"}
    assert s.count(judge=True) == 0 and s.count(judge=False) == 4
    _, rec = next(iter(rejected.values()))
    assert "copies one of the examples" in rec.meta["rounds"][1]["generator"]["messages"][3][
        "content"]
