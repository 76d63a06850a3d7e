"""DEITA scores through the real AsyncOpenAI client on an httpx.MockTransport."""

from __future__ import annotations

import json
import math

import httpx
import pytest
from conftest import chat_response, mock_client

from synth.filters.scoring import DeitaScores, expected_score, parse_score, score_completion
from synth.llm.client import Completion
from synth.pipeline import RunContext
from synth.prompts import Prompts
from synth.records import Record
from synth.store import RunStore


def tok(token: str, p: float) -> dict[str, object]:
    return {"token": token, "logprob": math.log(p), "bytes": None}


def position(token: str, top: list[dict[str, object]]) -> dict[str, object]:
    return {"token": token, "logprob": top[0]["logprob"], "bytes": None, "top_logprobs": top}


def with_logprobs(text: str, positions: list[dict[str, object]]) -> dict[str, object]:
    body = chat_response(text)
    body["choices"][0]["logprobs"] = {"content": positions}  # type: ignore[index]
    return body


def test_expected_score_renormalises_over_the_six_digits() -> None:
    top = [tok("4", 0.5), tok(" 5", 0.3), tok("3", 0.1), tok("The", 0.05), tok("7", 0.05)]
    assert expected_score(top) == pytest.approx((4 * 0.5 + 5 * 0.3 + 3 * 0.1) / 0.9)
    assert expected_score([tok("The", 0.9), tok("10", 0.1)]) is None


@pytest.mark.parametrize(("text", "score"), [
    ("4", 4), ("Score: 5/6", 5), ("I'd rate it 3.", 3), ("6\n", 6), ("10", None),
    ("2.5", None), ("none", None), ("rating = 0", None),
])
def test_parse_score(text: str, score: int | None) -> None:
    assert parse_score(text) == score


def test_score_completion_methods() -> None:
    first = Completion("4", "stop", logprobs=[position("4", [tok("4", 0.6), tok("2", 0.4)])])
    assert score_completion(first)[:2] == (pytest.approx(3.2), "logprobs")
    later = Completion("Score: 5", "stop", logprobs=[
        position("Score", [tok("Score", 0.9), tok("The", 0.1)]),
        position(":", [tok(":", 1.0)]),
        position(" 5", [tok(" 5", 0.5), tok(" 6", 0.5)])])
    assert score_completion(later)[:2] == (5.5, "logprobs_later")
    assert score_completion(Completion("Score: 2", "stop"))[:2] == (2.0, "parsed")
    value, reason, _ = score_completion(Completion("no idea", "stop"))
    assert math.isnan(value) and reason == "no_score_in_reply"


def run(store: RunStore, handler, records: list[Record], which=("complexity", "quality"),
        **cfg: object) -> tuple[list[Record], RunContext]:  # noqa: ANN001
    ctx = RunContext(store)
    stage = DeitaScores(mock_client(handler, store, **cfg), Prompts(), list(which))
    stage.bind(ctx)
    try:
        out = list(stage.run(iter(records)))
    finally:
        ctx.close()
    return sorted(out, key=lambda r: r.id), ctx


def records(n: int) -> list[Record]:
    return [Record(id=f"r{i}", instruction=f"Write f{i}.", response=f"def f{i}(): pass",
                   meta={"index": i}) for i in range(n)]


def test_scores_from_top_logprobs_and_request_shape(store: RunStore) -> None:
    seen: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body)
        prompt = body["messages"][-1]["content"]
        p = 0.75 if "##Complexity" in prompt else 0.25
        return httpx.Response(200, json=with_logprobs("6", [
            position("6", [tok("6", p), tok("1", 1 - p), tok("x", 0.01)])]))

    out, ctx = run(store, handler, records(3))
    assert all(b["logprobs"] is True and b["top_logprobs"] == 20 for b in seen)
    assert all(b["temperature"] == 0.0 for b in seen)
    for r in out:
        assert r.scores["complexity"] == pytest.approx(6 * 0.75 + 0.25)
        assert r.scores["quality"] == pytest.approx(6 * 0.25 + 0.75)
        assert r.meta["score_methods"] == {"complexity": "logprobs", "quality": "logprobs"}
        assert r.meta["score_mass"]["complexity"] == pytest.approx(1.0)
    counts = ctx.stats.stages["score"].counts
    assert counts == {"method:complexity:logprobs": 3, "method:quality:logprobs": 3}


def test_parsed_fallback_and_nan_reasons_are_counted(store: RunStore) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        prompt = json.loads(request.content)["messages"][-1]["content"]
        text = "Quality: 5" if "Write f0." in prompt else "I cannot rate this."
        return httpx.Response(200, json=chat_response(text))  # no logprobs at all

    out, ctx = run(store, handler, records(2), which=("quality",))
    assert out[0].scores["quality"] == 5.0 and out[0].meta["score_methods"]["quality"] == "parsed"
    assert math.isnan(out[1].scores["quality"])
    assert out[1].meta["score_errors"]["quality"] == "no_score_in_reply"
    assert ctx.stats.stages["score"].counts == {"method:quality:parsed": 1,
                                                "nan:quality:no_score_in_reply": 1}


def test_endpoint_refusing_logprobs_switches_to_parsing(store: RunStore) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content).get("logprobs"):
            return httpx.Response(400, json={"error": {"message": "logprobs is not supported"}})
        return httpx.Response(200, json=chat_response("3"))

    out, _ = run(store, handler, records(2), which=("complexity",))
    assert [r.scores["complexity"] for r in out] == [3.0, 3.0]
    assert {r.meta["score_methods"]["complexity"] for r in out} == {"parsed"}


def test_a_failing_endpoint_gives_nan_not_a_constant(store: RunStore) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, json={"error": {"message": "boom"}})

    out, ctx = run(store, handler, records(2), which=("complexity",), max_attempts=2)
    assert all(math.isnan(r.scores["complexity"]) for r in out)
    assert ctx.stats.stages["score"].counts == {"nan:complexity:llm_error": 2}


def test_cached_scores_are_not_requested_again(store: RunStore) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(200, json=with_logprobs("2", [position("2", [tok("2", 1.0)])]))

    run(store, handler, records(2))
    assert calls == 4
    out, _ = run(store, handler, records(2))
    assert calls == 4 and out[0].scores["complexity"] == 2.0
