"""Prices, cost of every attempt (failed ones too), budgets, estimates."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import test_batch
from conftest import FakeEndpoint, chat_response, mock_wire
from test_batch import cli, gen_args, rows

from synth.config import LLMConfig
from synth.errors import ConfigError
from synth.llm.client import LLMClient, SamplingParams
from synth.llm.cost import Price, cost_card_section, price_for, run_cost
from synth.llm.limits import count_message_tokens
from synth.store import RunStore

seeds = test_batch.seeds  # the same small seeds file fixture

@pytest.mark.parametrize("model,expected", [
    ("gpt-4o-mini", (0.15, 0.60)), ("gpt-4o-mini-2024-07-18", (0.15, 0.60)),
    ("gpt-4o", (2.50, 10.00)), ("gpt-4o-2024-08-06", (2.50, 10.00)),
    ("openai/gpt-4.1-nano", (0.10, 0.40)), ("smollm2-135m-instruct", (0.0, 0.0)),
    ("my-local-llama", None), ("gpt-4oops", None)])
def test_price_table(model: str, expected: tuple[float, float] | None) -> None:
    price = price_for(model)
    assert (None if price is None else (price.usd_in, price.usd_out)) == expected


def test_configured_price_wins_and_needs_both() -> None:
    assert price_for("gpt-4o", 1.0, 2.0) == Price(1.0, 2.0, "configured")
    with pytest.raises(ConfigError):
        price_for("x", 1.0, None)
    assert Price(2.0, 8.0, "t").cost(1_000_000, 500_000, batch=True) == pytest.approx(3.0)


def test_failed_and_retried_attempts_are_booked(store: RunStore) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return httpx.Response(429, json={"error": {"message": "slow"}})
        if calls == 2:
            return httpx.Response(500, json={"error": {"message": "boom"}})
        return httpx.Response(200, json=chat_response("ok"))

    cfg = LLMConfig(backoff_base_s=0.001, backoff_max_s=0.002, price_in=1e6, price_out=1e6)
    client = LLMClient("http://mock.local/v1", "m", store, cfg, Counter(),
                       wire=mock_wire(handler, cfg.timeout_s))
    asyncio.run(client.complete([{"role": "user", "content": "hello"}], SamplingParams()))
    meter = client.admission.meter
    assert meter.attempts == 3 and meter.failed_attempts == 2
    # 429: refused before any work (0); 500: the prompt may have been processed (input tokens);
    # 200: usage 3 in + 5 out at $1 per token
    assert meter.usd_failed == pytest.approx(
        count_message_tokens([{"role": "user", "content": "hello"}], "m"))
    assert meter.usd == pytest.approx(meter.usd_failed + 8.0)
    cost = run_cost(store, meter)
    assert cost["total_usd"] == pytest.approx(meter.usd)
    assert "## Cost" in cost_card_section(cost)


def test_budget_stops_resumably_and_nothing_is_paid_twice(
        tmp_path: Path, seeds: Path, fake_server: Callable[..., FakeEndpoint]) -> None:
    fake = fake_server()
    run = tmp_path / "run"
    # Output tokens priced 1000x input ones: each request may cost ~$0.0505 (50 output tokens
    # at $1000/1M, the prompt's ~500 tokens at $1/1M: whatever the prompt's length) and costs
    # ~$0.02 (the fake's usage, 20 output tokens): two fit in $0.075, one after the other.
    args = gen_args(run, seeds, "--no-discriminator", "--max-tokens", "50",
                    "--price-in", "1", "--price-out", "1000")
    res = cli(*args, "--budget-usd", "0.075", base_url=fake.base_url)
    assert res.exit_code == 3, res.output
    assert "budget" in res.output and "rerun" in res.output
    with RunStore(run) as store:
        spent, _ = store.spent()
        first = store.count_responses()
    assert 0 < spent <= 0.075 and 0 < first < 4
    res = cli(*args, "--budget-usd", "1", base_url=fake.base_url)
    assert res.exit_code == 0, res.output
    sent = fake.requests()
    assert len(sent) == len(set(sent)) == 4  # every request reached the endpoint once
    with RunStore(run) as store:
        assert all(n == 1 for n in store.spend_requests().values())
        assert store.spent()[0] <= 1
    stats = json.loads((run / "stats.json").read_text())
    assert stats["cost"]["total_usd"] == pytest.approx(spent + stats["cost"]["run"]["usd"])
    assert "## Cost" in (run / "dataset" / "README.md").read_text()
    assert len(rows(run)) == 4


def test_estimate_sends_nothing_and_learns_the_output_mean(
        tmp_path: Path, seeds: Path, fake_server: Callable[..., FakeEndpoint]) -> None:
    run = tmp_path / "run"
    args = gen_args(run, seeds, "--no-discriminator", "--max-tokens", "64",
                    "--price-in", "1", "--price-out", "2")
    res = cli("estimate", *args[1:], "--log-format", "json")  # no endpoint at all
    assert res.exit_code == 0, res.output
    report = json.loads(res.output[res.output.index("{"):])
    task = report["tasks"]["codegen"]
    assert task["requests"] == 4 and task["input_tokens"] > 4 * 20
    assert task["output_tokens_max"] == 4 * 64 and task["output_tokens_expected"] is None
    assert task["usd_low"] < task["usd_high"]
    fake = fake_server()
    assert cli(*args, base_url=fake.base_url).exit_code == 0
    res = cli(*args, "--dry-run", base_url=fake.base_url)
    assert "nothing to send" in res.output  # everything is cached now
    assert len(fake.requests()) == 4
