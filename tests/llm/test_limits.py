"""Admission against in-process fake fleets: provider limits, AIMD on 429s and on queueing."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from conftest import chat_response, mock_wire

from synth.config import LLMConfig
from synth.llm import limits
from synth.llm.client import LLMClient, SamplingParams
from synth.llm.cost import CostMeter
from synth.llm.limits import Admission, Ticket, Window, count_message_tokens, parse_reset
from synth.store import RunStore

Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]


def client_for(handler: Handler, store: RunStore, concurrency: int, minute_s: float = 60.0,
               max_attempts: int = 30) -> LLMClient:
    cfg = LLMConfig(concurrency=concurrency, backoff_base_s=0.005, backoff_max_s=0.02,
                    max_attempts=max_attempts)
    admission = Admission(concurrency, None, None, CostMeter(store), minute_s=minute_s)
    admission.trace = []
    return LLMClient("http://mock.local/v1", "mock-model", store, cfg, Counter(),
                     admission=admission, wire=mock_wire(handler, cfg.timeout_s))


async def send(client: LLMClient, n: int, prefix: str = "") -> None:
    await asyncio.gather(*(client.complete([{"role": "user", "content": f"{prefix}{i}"}],
                                           SamplingParams(max_tokens=16)) for i in range(n)))


@pytest.mark.parametrize("value,seconds", [
    ("1s", 1.0), ("6m0s", 360.0), ("20ms", 0.02), ("0.5", 0.5), ("1h2m3s", 3723.0),
    ("", None), (None, None), ("soon", None), ("5x", None), ("-3", 0.0)])
def test_parse_reset(value: str | None, seconds: float | None) -> None:
    got = parse_reset(value)
    assert got == (None if seconds is None else pytest.approx(seconds))


def test_message_tokens_count_content_and_format() -> None:
    short = count_message_tokens([{"role": "user", "content": "hi"}])
    long = count_message_tokens([{"role": "user", "content": "hi " * 100}])
    assert 3 < short < long and long >= 50  # >= 100 with tiktoken, 75 as characters/4


def test_prompt_tokens_are_counted_only_when_needed(store: RunStore) -> None:
    """Without a budget or a TPM limit admission does not count the prompt (the count costs
    more than the rest of admission); the count is made if a failure must book it."""
    messages = [{"role": "user", "content": "def f(x):\n    return x * 2\n" * 20}]
    expected = count_message_tokens(messages, "m")

    async def admit(admission: Admission) -> Ticket:
        ticket = await admission.acquire("m", messages, 16)
        await admission.window.release(200, 0.01, None, ticket.epoch)
        return ticket

    free = asyncio.run(admit(Admission(4, None, None, CostMeter(store))))
    assert free.tokens_in is None and free.prompt_tokens("m") == expected
    assert free.tokens_in == expected  # counted once
    for rpm, tpm in ((None, 100_000), (60_000, None)):
        paced = asyncio.run(admit(Admission(4, rpm, tpm, CostMeter(store))))
        assert paced.tokens_in == (expected if tpm else None)


def test_admission_loads_a_models_tokenizer_before_its_first_request(
        store: RunStore) -> None:
    """Not mid-run at the first failure that must be counted (a tokenizer file fetched then
    stalls every request in flight), and once per model."""
    limits._encoding.cache_clear()
    loaded: list[int] = []  # tokenizers loaded so far, after each admitted request

    async def admit(admission: Admission, model: str) -> None:
        ticket = await admission.acquire(model, [{"role": "user", "content": "hi"}], 16)
        loaded.append(limits._encoding.cache_info().misses)
        assert ticket.tokens_in is None  # loaded, yet nothing counted
        await admission.window.release(200, 0.01, None, ticket.epoch)

    async def run() -> None:
        admission = Admission(4, None, None, CostMeter(store))
        for model in ("m", "m", "n", "m"):
            await admit(admission, model)

    asyncio.run(run())
    assert loaded == [1, 1, 2, 2]


def test_embedded_vocabulary_counts_as_llama_cpp_does_without_touching_stdio(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The GGUF counter matches ``llama_cpp.Llama``'s own tokenizer, and loading it leaves the
    process's stdout and stderr alone: ``Llama(verbose=False)`` points them at /dev/null while
    it loads, which lost the log lines other threads wrote meanwhile."""
    llama_cpp = pytest.importorskip("llama_cpp")
    from synth.llm.server import embedded_model_path

    path = embedded_model_path()
    redirected: list[tuple[int, int]] = []
    real_dup2 = os.dup2
    monkeypatch.setattr(os, "dup2", lambda a, b, *rest: redirected.append((a, b))
                        or real_dup2(a, b, *rest))
    count = limits._gguf_counter(path)
    assert redirected == []
    monkeypatch.undo()
    reference = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    try:
        texts = ["", " ", "a" * 5000, "def f(x):\n    return x * 2\n" * 30,
                 "héllo wörld 日本語 😀", "<|im_start|>user\nhi<|im_end|>",
                 Path(limits.__file__).read_text(encoding="utf-8")]
        for text in texts:
            want = len(reference.tokenize(text.encode("utf-8"), add_bos=False, special=False))
            assert count(text) == want
    finally:
        reference.close()


def test_announced_60_rpm_is_never_exceeded(store: RunStore) -> None:
    """A fake announcing 60 requests per "minute" (0.5 s here) and refusing beyond it."""
    minute = 0.5
    arrivals: list[float] = []
    refused = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal refused
        now = time.monotonic()
        recent = [t for t in arrivals if t > now - minute]
        headers = {"x-ratelimit-limit-requests": "60",
                   "x-ratelimit-remaining-requests": str(max(59 - len(recent), 0)),
                   "x-ratelimit-reset-requests": f"{minute / 60 * 1000:.0f}ms"}
        if len(recent) >= 60:
            refused += 1
            return httpx.Response(429, headers=headers, json={"error": {"message": "rpm"}})
        arrivals.append(now)
        return httpx.Response(200, headers=headers, json=chat_response("ok"))

    client = client_for(handler, store, concurrency=32, minute_s=minute)
    t0 = time.monotonic()
    asyncio.run(send(client, 150))
    elapsed = time.monotonic() - t0
    worst = max(sum(1 for u in arrivals if t - minute < u <= t) for t in arrivals)
    assert refused == 0 and worst <= 60, (refused, worst)
    assert client.admission.limits.snapshot()["source"] == "headers"
    assert elapsed >= 150 / 60 * minute * 0.8  # paced, not a burst


def test_window_converges_near_429_capacity(store: RunStore) -> None:
    capacity = 4
    in_flight = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight
        if in_flight >= capacity:
            return httpx.Response(429, json={"error": {"message": "over capacity"}})
        in_flight += 1
        await asyncio.sleep(0.03)
        in_flight -= 1
        return httpx.Response(200, json=chat_response("ok"))

    client = client_for(handler, store, concurrency=24)
    asyncio.run(send(client, 150))
    trace = client.admission.trace or []
    late = [w for _, w, _ in trace[len(trace) // 2:]]
    mean = sum(late) / len(late)
    assert 0.4 * capacity <= mean <= 1.5 * capacity, mean
    assert client.admission.window.events["overload"] >= 2


def test_window_shrinks_when_the_fleet_queues(store: RunStore) -> None:
    """No 429 ever: the server runs 2 at a time and queues the rest (latency grows).

    The service time (0.1 s) is well above the client's own overhead per request, so the
    latency signal is the server's queue even on a loaded machine.
    """
    slots = asyncio.Semaphore(2)

    async def handler(request: httpx.Request) -> httpx.Response:
        async with slots:
            await asyncio.sleep(0.1)
        return httpx.Response(200, json=chat_response("ok"))

    client = client_for(handler, store, concurrency=16)
    asyncio.run(send(client, 60))
    window = client.admission.window
    assert window.events["latency"] >= 1
    assert window.size <= 12, window.snapshot()  # shrunk from 16 (settles near 2-3x)


def test_sustained_429_never_stops_throughput(store: RunStore) -> None:
    calls = 0
    done: list[float] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls % 4:
            return httpx.Response(429, headers={"retry-after": "0.01"},
                                  json={"error": {"message": "busy"}})
        done.append(time.monotonic())
        return httpx.Response(200, json=chat_response("ok"))

    client = client_for(handler, store, concurrency=8, max_attempts=60)
    asyncio.run(send(client, 12))
    assert len(done) == 12
    assert client.admission.window.size >= 1
    assert client.admission.window.events["overload"] >= 1


def test_pause_lets_a_probe_through() -> None:
    async def go() -> float:
        window = Window(ceiling=4, probe_s=0.05)
        window.paused_until = time.monotonic() + 3600  # a provider asking for an hour
        t0 = time.monotonic()
        await window.acquire()
        return time.monotonic() - t0

    assert asyncio.run(go()) < 0.5


def test_floor_and_increase() -> None:
    async def go() -> Window:
        w = Window(ceiling=8, slow_start=False)
        for _ in range(20):  # 429s on every epoch: the limit halves down to the floor only
            await w.acquire()
            await w.release(429, 0.01, None, w.epoch)
        assert w.size == 1
        for _ in range(40):  # then successes at a steady latency grow it back
            await w.acquire()
            await w.release(200, 0.01, None, w.epoch)
        return w

    w = asyncio.run(go())
    assert w.size > 1 and w.events["increase"] >= 2
