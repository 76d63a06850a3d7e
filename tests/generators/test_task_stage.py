"""TaskStage without the discriminator: prompts → LLM → parse, with rejects and the
response_format fallback (the loop itself is tested in test_loop.py)."""

from __future__ import annotations

import asyncio
import json

import httpx
from conftest import chat_response, mock_client

from synth.generators.codegen import CodegenTask
from synth.generators.loop import TaskStage
from synth.llm.client import SamplingParams
from synth.pipeline import RunContext, run_stages
from synth.prompts import Prompts
from synth.records import Record
from synth.store import RunStore

GOOD_JSON = json.dumps({"problem": "Add two numbers.", "solution": "def add(a, b): ..."})


def seeds(n: int) -> list[Record]:
    out = []
    for i in range(n):
        rec = Record.from_seed(f"x = {i}", "python", {"path": f"f{i}.py"})
        rec.meta["index"] = i
        out.append(rec.for_task("codegen"))
    return out


def run_stage(store: RunStore, handler, records, **kw) -> tuple[list[Record], RunContext]:  # noqa: ANN001
    ctx = RunContext(store)
    client = mock_client(handler, store, **kw)
    stage = TaskStage(CodegenTask(), client, Prompts(), SamplingParams(max_tokens=64),
                      discriminate=False)
    out: list[Record] = []
    stage.bind(ctx)
    try:
        out = list(stage.run(iter(records)))
    finally:
        ctx.close()
    return out, ctx


def test_fills_records_and_rejects_with_reasons(store: RunStore) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        prompt = json.loads(request.content)["messages"][-1]["content"]
        if "x = 1\n" in prompt:
            return httpx.Response(200, json=chat_response(GOOD_JSON[:20], "length"))
        if "x = 2\n" in prompt:
            return httpx.Response(200, json=chat_response("I refuse."))
        if "x = 3\n" in prompt:
            return httpx.Response(503, json={"error": {"message": "down"}})
        return httpx.Response(200, json=chat_response(GOOD_JSON))

    out, ctx = run_stage(store, handler, seeds(5), max_attempts=2)
    assert sorted(r.seed for r in out) == ["x = 0", "x = 4"]
    assert all(r.instruction == "Add two numbers." and r.task == "codegen" for r in out)
    assert all(r.meta["template"] == "codegen" and r.meta["model"] == "mock-model" for r in out)
    rejected = ctx.stats.stages["generate:codegen"].rejected
    assert rejected == {"truncated": 1, "parse_invalid_json": 1, "llm_error": 1}
    rows = {rec.seed: (reason, rec) for _, reason, rec in store.iter_results("rejected")}
    assert rows["x = 1"][0] == "truncated"
    assert rows["x = 2"][1].meta["raw"]["output"] == "I refuse."  # raw text kept


def test_stored_records_hold_the_last_exchange_once(store: RunStore) -> None:
    """``meta["raw"]`` is the last generator round's exchange: stored as a reference to it,
    read back as that same object; a raw of its own (older run directories) stays as it is."""
    out, _ = run_stage(store, lambda request: httpx.Response(200, json=chat_response(GOOD_JSON)),
                       seeds(1))
    store.put_result(out[0], "kept")  # as the job's sink does
    store.flush()
    [row] = store.db.execute("SELECT record FROM results").fetchall()
    assert row[0].count("Add two numbers.") == 3  # instruction, instance.problem, the reply
    assert json.loads(row[0])["meta"]["raw"] == {"$ref": "rounds.generator"}
    [(_, _, back)] = store.iter_results("kept")
    assert back == out[0] and back.meta["raw"] is back.meta["rounds"][-1]["generator"]
    surrogate = Record.from_dict(json.loads(back.to_json()))
    surrogate.meta["note"] = "\ud800"  # orjson refuses it: the json fallback writes the same
    assert json.loads(surrogate.to_json())["meta"]["raw"] == {"$ref": "rounds.generator"}
    assert Record.from_json(surrogate.to_json()) == surrogate
    own = Record.from_dict(json.loads(back.to_json()) | {
        "meta": back.meta | {"raw": {"output": "other", "messages": []}}})
    again = Record.from_json(own.to_json())
    assert again.meta["raw"] == {"output": "other", "messages": []} and again == own


def test_auto_falls_back_when_response_format_refused(store: RunStore) -> None:
    formats: list[object] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        rf = body.get("response_format")
        formats.append(rf and rf["type"])
        if rf is not None:
            return httpx.Response(400, json={"error": {"message": "response_format unsupported"}})
        return httpx.Response(200, json=chat_response(
            "[Problem Description]\nAdd two numbers.\n[Solution]\ndef add(a, b): ..."))

    out, _ = run_stage(store, handler, seeds(3), concurrency=1)
    assert len(out) == 3
    # json_schema refused, then llama.cpp's json_object refused, then sections for good; only
    # requests already in the stage's window (2 x concurrency) when a refusal arrived repeat it
    assert formats[0] == "json_schema"
    assert 1 <= formats.count("json_schema") <= 2 and 1 <= formats.count("json_object") <= 2
    assert formats[-3:] == [None, None, None]
    assert all(r.meta["answer_format"] == "sections" for r in out)


def test_results_stream_as_they_complete(store: RunStore) -> None:
    """One slow request does not hold back the others (no lock-step batches)."""

    async def handler(request: httpx.Request) -> httpx.Response:
        prompt = json.loads(request.content)["messages"][-1]["content"]
        await asyncio.sleep(0.5 if "x = 0\n" in prompt else 0.01)
        return httpx.Response(200, json=chat_response(GOOD_JSON))

    out, _ = run_stage(store, handler, seeds(6), concurrency=3)
    assert [r.seed for r in out][-1] == "x = 0"
    assert len(out) == 6


def test_run_stages_stores_kept_in_input_order(store: RunStore) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        prompt = json.loads(request.content)["messages"][-1]["content"]
        await asyncio.sleep(0.2 if "x = 0\n" in prompt else 0.0)
        return httpx.Response(200, json=chat_response(GOOD_JSON))

    ctx = RunContext(store)
    stage = TaskStage(CodegenTask(), mock_client(handler, store), Prompts(), SamplingParams(),
                      discriminate=False)
    try:
        kept = run_stages(seeds(4), [stage], ctx, total=4)
    finally:
        ctx.close()
    assert kept == 4
    assert [r.seed for _, _, r in store.iter_results("kept")] == [f"x = {i}" for i in range(4)]
    assert ctx.stats.stages["generate:codegen"].to_dict() == {"in": 4, "out": 4, "rejected": {}}


def test_json_option_tries_both_json_dialects_but_never_sections(store: RunStore) -> None:
    formats: list[object] = []

    def handler(request: httpx.Request) -> httpx.Response:
        rf = json.loads(request.content).get("response_format")
        formats.append(rf and rf["type"])
        if rf is None or rf["type"] == "json_schema":
            return httpx.Response(500, json={"error": {
                "message": "1 validation error: ('body', 'response_format', 'type')"}})
        return httpx.Response(200, json=chat_response(GOOD_JSON))

    ctx = RunContext(store)
    stage = TaskStage(CodegenTask(), mock_client(handler, store, concurrency=1), Prompts(),
                      SamplingParams(), answer_format="json", discriminate=False)
    stage.bind(ctx)
    try:
        out = list(stage.run(iter(seeds(3))))
    finally:
        ctx.close()
    assert len(out) == 3 and None not in formats
    assert formats[-2:] == ["json_object", "json_object"]
