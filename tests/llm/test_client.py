"""LLMClient over its httpx seam, HTTP served by httpx.MockTransport handlers."""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import time
from typing import Any

import httpx
import pytest
from conftest import chat_response, mock_client

from synth.errors import AuthenticationFailed, EndpointUnreachable, ModelNotFound
from synth.llm.client import LLMRequestFailed, SamplingParams, cache_key, request_json
from synth.records import Record
from synth.store import RunStore

MSG = [{"role": "user", "content": "hello"}]


def run(coro):  # noqa: ANN001, ANN201 - small test helper
    return asyncio.run(coro)


def test_retries_429_honouring_retry_after(store: RunStore) -> None:
    calls: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(time.monotonic())
        if len(calls) < 3:
            return httpx.Response(429, headers={"retry-after": "0.3"},
                                  json={"error": {"message": "slow down"}})
        return httpx.Response(200, json=chat_response("ok"))

    client = mock_client(handler, store, backoff_base_s=0.001, backoff_max_s=0.001)
    completion = run(client.complete(MSG, SamplingParams()))
    assert completion.text == "ok"
    assert len(calls) == 3
    # our own backoff is 1 ms here, so the waits of >= 0.3 s can only come from Retry-After
    assert calls[1] - calls[0] >= 0.29 and calls[2] - calls[1] >= 0.29
    assert client.stats["retries"] == 2 and client.stats["requests"] == 3


def test_gives_up_after_bounded_attempts(store: RunStore) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(503, json={"error": {"message": "overloaded"}})

    client = mock_client(handler, store, max_attempts=3)
    with pytest.raises(LLMRequestFailed) as info:
        run(client.complete(MSG, SamplingParams()))
    assert info.value.reason == "llm_error"
    assert calls == 3
    assert store.count_responses() == 0  # a failure is never cached


@pytest.mark.parametrize("status", [400, 422])
def test_bad_request_is_not_retried(store: RunStore, status: int) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(status, json={"error": {"message": "bad response_format"}})

    with pytest.raises(LLMRequestFailed) as info:
        run(mock_client(handler, store).complete(MSG, SamplingParams()))
    assert info.value.reason == "llm_bad_request" and calls == 1


def test_llama_cpp_validation_500_is_not_retried(store: RunStore) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(500, json={"error": {
            "message": "1 validation error: ('body', 'response_format', 'type')"}})

    with pytest.raises(LLMRequestFailed) as info:
        run(mock_client(handler, store).complete(MSG, SamplingParams()))
    assert info.value.reason == "llm_bad_request" and calls == 1


def test_connection_errors_are_retried(store: RunStore) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json=chat_response("ok"))

    assert run(mock_client(handler, store).complete(MSG, SamplingParams())).text == "ok"
    assert calls == 2


def test_401_is_fatal(store: RunStore) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": {"message": "bad key"}})

    with pytest.raises(AuthenticationFailed):
        run(mock_client(handler, store).complete(MSG, SamplingParams()))
    with pytest.raises(AuthenticationFailed):
        run(mock_client(handler, store).check())


def test_unknown_model_and_unreachable(store: RunStore) -> None:
    def models(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"object": "list", "data": [{"id": "other"}]})

    with pytest.raises(ModelNotFound, match="other"):
        run(mock_client(models, store).check())

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(EndpointUnreachable):
        run(mock_client(down, store).check())


def test_concurrency_bound_is_respected(store: RunStore) -> None:
    in_flight = 0
    peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.02)
        in_flight -= 1
        return httpx.Response(200, json=chat_response("ok"))

    client = mock_client(handler, store, concurrency=4)  # type: ignore[arg-type]

    async def many() -> None:
        await asyncio.gather(*(client.complete([{"role": "user", "content": str(i)}],
                                               SamplingParams()) for i in range(40)))

    run(many())
    assert peak == 4  # the bound is reached (kept full) and never exceeded
    assert client.max_in_flight == 4


def test_cache_hit_sends_nothing(store: RunStore) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(200, json=chat_response(f"answer {calls}"))

    first = run(mock_client(handler, store).complete(MSG, SamplingParams(), sample=0))
    again = mock_client(handler, store)
    second = run(again.complete(MSG, SamplingParams(), sample=0))
    assert calls == 1 and second.cached and second.text == first.text == "answer 1"
    assert again.stats["cache_hits"] == 1 and again.stats["requests"] == 0
    # another sample index or other params is another request
    run(again.complete(MSG, SamplingParams(), sample=1))
    run(again.complete(MSG, SamplingParams(temperature=0.5), sample=0))
    assert calls == 3


def test_cache_key_covers_model_messages_params_sample() -> None:
    base = cache_key("m", MSG, SamplingParams(), 0)
    assert base == cache_key("m", [dict(MSG[0])], SamplingParams(), 0)
    assert base != cache_key("m2", MSG, SamplingParams(), 0)
    assert base != cache_key("m", [{"role": "user", "content": "hello!"}], SamplingParams(), 0)
    assert base != cache_key("m", MSG, SamplingParams(max_tokens=7), 0)
    assert base != cache_key("m", MSG, SamplingParams(), 1)


def test_the_hashed_request_text_is_json_dumps_character_for_character() -> None:
    """Keys of run directories made before the fast path must not move."""
    every_char = "".join(chr(i) for i in range(0x110000) if not 0xD800 <= i < 0xE000)
    params = SamplingParams(temperature=0.7, top_p=1e-07, max_tokens=9, seed=3,
                            response_format={"type": "json_schema", "json_schema": {"é": [1.5]}})
    cases: list[tuple[str, list[Any], int]] = [
        ("m", MSG, 0),
        ("mödel ✓", [{"role": "system", "content": every_char},
                     {"role": "user", "content": "a\n\t\"\\\x00\x1f\x7f\u2028 𝄞", "name": "x"}], 2),
        ("m", [], 0),
        ("m", [{}], 1),
        ("m", [{"role": "user", "content": "lone \ud800"}], 0),  # orjson refuses: json whole
        ("m", [{"role": "user", "content": [{"type": "text", "text": "multi"}]}], 0),
        ("m", MSG, True),  # not an int: json whole
    ]
    rng = random.Random(5)
    alphabet = "ab \"\\\n\t\x01é✓𝄞{}[]:,"
    for _ in range(300):
        msgs = [{"".join(rng.choice(alphabet) for _ in range(rng.randrange(6))):
                 "".join(rng.choice(alphabet) for _ in range(rng.randrange(40)))
                 for _ in range(rng.randrange(4))} for _ in range(rng.randrange(4))]
        cases.append(("m", msgs, rng.randrange(5)))
    for model, messages, sample in cases:
        for p in (params, SamplingParams()):
            want = json.dumps({"model": model, "messages": messages, "params": p.to_request(),
                               "sample": sample}, sort_keys=True, ensure_ascii=False)
            assert request_json(model, messages, p, sample) == want


def test_request_carries_params_and_no_key_in_cache(store: RunStore,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-test-key")
    seen: dict[str, object] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.update(json.loads(request.content))
        seen["auth"] = request.headers["authorization"]
        return httpx.Response(200, json=chat_response("ok"))

    params = SamplingParams(temperature=0.2, max_tokens=9, seed=3,
                            response_format={"type": "json_object"})
    run(mock_client(handler, store).complete(MSG, params))
    assert seen["temperature"] == 0.2 and seen["max_tokens"] == 9 and seen["seed"] == 3
    assert seen["response_format"] == {"type": "json_object"}
    assert seen["auth"] == "Bearer sk-secret-test-key"
    dump = "\n".join(store.db.iterdump())
    assert "sk-secret-test-key" not in dump


def test_rpm_limit_spaces_requests(store: RunStore) -> None:
    times: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        times.append(time.monotonic())
        return httpx.Response(200, json=chat_response("ok"))

    client = mock_client(handler, store, rpm=600)  # 10/s, paced from the first request

    async def burst() -> None:
        await asyncio.gather(*(client.complete([{"role": "user", "content": str(i)}],
                                               SamplingParams()) for i in range(4)))

    run(burst())
    assert times[-1] - times[0] >= 0.25  # 4 requests at 10/s take ~0.3 s


def test_malformed_200_is_retried_then_rejected_as_llm_malformed(store: RunStore) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return httpx.Response(200, content=b'{"choices": [ {"mess')
        return httpx.Response(200, json=chat_response("ok"))

    assert run(mock_client(handler, store).complete(MSG, SamplingParams())).text == "ok"
    assert calls == 2

    def always(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b'{"choices": [ {"mess')

    client = mock_client(always, store, max_attempts=3)
    with pytest.raises(LLMRequestFailed) as info:
        run(client.complete([{"role": "user", "content": "other"}], SamplingParams()))
    assert info.value.reason == "llm_malformed"
    assert client.stats["requests"] == 3 and client.stats["retries"] == 2


def test_timeouts_are_retried(store: RunStore) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise httpx.ReadTimeout("slow", request=request)
        return httpx.Response(200, json=chat_response("ok"))

    assert run(mock_client(handler, store).complete(MSG, SamplingParams())).text == "ok"
    assert calls == 2


def test_a_result_commits_in_one_transaction_with_the_responses_it_used(
        store: RunStore) -> None:
    """Outside the event loop (the pipeline between two waits) a result joins the open burst:
    a reader (another process, or a rerun after kill -9) sees the record and the responses it
    used together or not at all. ``flush_soon`` (called by the pipeline before it waits)
    commits a result that no open burst would."""
    def seen() -> tuple[int, int]:
        other = sqlite3.connect(store.run_dir / "store.sqlite")
        try:
            return (other.execute("SELECT COUNT(*) FROM responses").fetchone()[0],
                    other.execute("SELECT COUNT(*) FROM results").fetchone()[0])
        finally:
            other.close()

    async def answer() -> None:
        store.put_response("used", "m", {"text": "y"})

    store.FLUSH_S = 0.5  # long enough that no stall of a loaded machine commits early
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(answer())  # the loop stops before the burst's commit
        store.put_result(Record(id="r1", meta={"index": 0}), "kept")
        assert seen() == (0, 0)
        loop.run_until_complete(asyncio.sleep(store.FLUSH_S * 1.5))
        assert seen() == (1, 1)
        store.put_result(Record(id="r2", meta={"index": 1}), "kept")
        loop.run_until_complete(asyncio.sleep(store.FLUSH_S * 1.5))
        assert seen() == (1, 1)  # no burst open: waits for the pipeline's flush
        store.flush_soon(loop)
        loop.run_until_complete(asyncio.sleep(store.FLUSH_S * 1.5))
        assert seen() == (1, 2)
    finally:
        loop.close()


def test_responses_are_batched_per_burst_and_join_an_open_transaction(store: RunStore) -> None:
    """A burst of responses (store.FLUSH_S) is one commit, made durable before (or with) the
    record results of that burst; a response put inside a transaction the caller opened (a
    Batch API file collected in one transaction) commits or rolls back with it."""
    store.FLUSH_S = 0.5  # long enough that no stall of a loaded machine commits early

    async def burst() -> tuple[int, int]:
        for i in range(5):
            store.put_response(f"k{i}", "m", {"text": str(i)})
        pending = len(store._pending)
        await asyncio.sleep(0)
        still = len(store._pending)  # the burst is still open after one tick
        await asyncio.sleep(store.FLUSH_S * 1.5)  # the scheduled flush commits them together
        return pending, still

    assert run(burst()) == (5, 5) and not store._pending and store.count_responses() == 5
    with pytest.raises(RuntimeError), store.db:
        store.db.execute("BEGIN")
        store.put_response("rolled-back", "m", {"text": "x"})
        raise RuntimeError("the caller's transaction fails")
    assert store.get_response("rolled-back") is None
    with store.db:
        store.db.execute("BEGIN")
        store.put_response("collected", "m", {"text": "y"})
    assert store.get_response("collected") == {"text": "y"} and not store._pending


def test_a_new_store_looks_up_only_keys_it_stored(tmp_path: Any,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A new run directory holds no response but the ones this process stores: the other
    keys are not looked up. A store that held responses when opened looks every key up."""
    lookups: list[str] = []

    def looked_up() -> int:
        n = sum("FROM responses WHERE key" in s for s in lookups)
        lookups.clear()
        return n

    with RunStore(tmp_path / "run") as store:
        store.db.set_trace_callback(lookups.append)
        assert [store.get_response(f"miss{i}") for i in range(50)] == [None] * 50
        assert looked_up() == 0
        store.put_response("hit", "m", {"text": "x"})
        store.flush()
        assert store.get_response("hit") == {"text": "x"} and looked_up() == 1
    # a filter too small to tell keys apart says "maybe" to every key: each is looked up,
    # and the answer is still right
    monkeypatch.setattr("synth.store._KeyFilter.BITS", 8)
    with RunStore(tmp_path / "small") as store:
        store.db.set_trace_callback(lookups.append)
        for i in range(8):
            store.put_response(f"k{i}", "m", {"text": str(i)})
        store.flush()
        assert store.get_response("k3") == {"text": "3"}
        assert [store.get_response(f"miss{i}") for i in range(20)] == [None] * 20
        assert looked_up() == 21
    monkeypatch.undo()
    with RunStore(tmp_path / "run") as store:  # reopened: it holds a response
        store.db.set_trace_callback(lookups.append)
        assert store.get_response("hit") == {"text": "x"} and store.get_response("no") is None
        assert looked_up() == 2
