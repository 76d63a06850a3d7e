"""What a run costs: prices, every attempt booked (failed and retried ones too), budgets.

Every attempt the client makes is one row of the run store's ``spend`` table (invocation,
request key, record, stage, status, tokens, USD), written when its answer arrives, so the cost
of a run directory is exact across crashes and resumes, and ``--budget-usd`` counts what
earlier invocations spent. Which record and stage an attempt was for comes from a context
variable the pipeline sets per record (:func:`scoped`), so the client needs no extra argument.

Prices are USD per 1M tokens: ``--price-in/--price-out``, else :data:`PRICES` (list prices of
common hosted models on :data:`PRICES_DATE`; check your provider's page), else unknown (cost is
reported as unknown, never as 0, and ``--budget-usd`` refuses to start). The Batch API bills
:data:`BATCH_DISCOUNT` of the list price.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from synth.errors import BudgetExhausted, ConfigError

if TYPE_CHECKING:
    from synth.llm.limits import Ticket, Window
    from synth.store import RunStore

PRICES_DATE = "2025-06-01"
# USD per 1M tokens (input, output): OpenAI's published list prices on PRICES_DATE.
PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "o3": (2.00, 8.00),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
    "gpt-4-turbo": (10.00, 30.00),
    "gpt-3.5-turbo": (0.50, 1.50),
}
# Models that cost nothing per token: the embedded llama.cpp model.
FREE = ("smollm2-135m-instruct",)
BATCH_DISCOUNT = 0.5

_SCOPE: contextvars.ContextVar[tuple[str, str, str]] = contextvars.ContextVar(
    "synth_cost_scope", default=("", "", ""))


def scoped(record_id: str, stage: str, task: str = "") -> None:
    """Attribute the attempts of the current asyncio task to ``record_id`` at ``stage``.

    Call it at the start of the coroutine that works on one record (each asyncio task has its
    own copy of the context, so records never mix).
    """
    _SCOPE.set((record_id, stage, task))


def attribution() -> tuple[str, str]:
    """(record id, stage) of the current task; empty strings outside any record."""
    record_id, stage, _ = _SCOPE.get()
    return record_id, stage


def current_task() -> str:
    """The task name of the record the current asyncio task works on ('' if none)."""
    return _SCOPE.get()[2]


@dataclass(frozen=True)
class Price:
    """USD per 1M input and output tokens, and where the numbers came from."""

    usd_in: float
    usd_out: float
    source: str

    def cost(self, tokens_in: int, tokens_out: int, batch: bool = False) -> float:
        usd = (tokens_in * self.usd_in + tokens_out * self.usd_out) / 1e6
        return usd * BATCH_DISCOUNT if batch else usd


def price_for(model: str, price_in: float | None = None,
              price_out: float | None = None) -> Price | None:
    """The price of ``model``: the given one, the built-in table (longest prefix), or None."""
    if price_in is not None or price_out is not None:
        if price_in is None or price_out is None:
            raise ConfigError("give both --price-in and --price-out (USD per 1M tokens)")
        return Price(price_in, price_out, "configured")
    name = model.rsplit("/", 1)[-1].lower()
    if any(name.startswith(f) for f in FREE):
        return Price(0.0, 0.0, "local model")
    best = max((k for k in PRICES if name == k or name.startswith(k + "-")), key=len,
               default=None)
    if best is None:
        return None
    return Price(*PRICES[best], f"built-in table ({best}, {PRICES_DATE})")


# Attempts that got no answer but may still be billed: the server may have processed the prompt.
def _maybe_billed(status: int | None, error: BaseException | None) -> bool:
    if status is None:
        return error is not None and not isinstance(error, asyncio.CancelledError)
    return status >= 500 and status != 503


class CostMeter:
    """Books every attempt: tokens and USD, in counters and in the store's spend table.

    Args:
        store: the run store (None: counters only).
        price_in, price_out: configured prices (USD per 1M tokens), else the table.
        batch: price at the Batch API discount.
    """

    def __init__(self, store: RunStore | None, price_in: float | None = None,
                 price_out: float | None = None, batch: bool = False) -> None:
        self.store = store
        self.price_in = price_in
        self.price_out = price_out
        self.batch = batch
        self._prices: dict[str, Price | None] = {}
        self.usd = 0.0  # this invocation, every attempt
        self.usd_failed = 0.0  # attempts that produced no cached answer
        self.tokens_in = 0
        self.tokens_out = 0
        self.attempts = 0
        self.failed_attempts = 0
        self.unpriced_attempts = 0
        self.model = ""

    def price(self, model: str) -> Price | None:
        if model not in self._prices:
            self._prices[model] = price_for(model, self.price_in, self.price_out)
            self.model = model
        return self._prices[model]

    def worst_case(self, model: str, tokens_in: int, max_tokens: int) -> float:
        """The most one attempt can cost (NaN when the model has no price)."""
        price = self.price(model)
        return math.nan if price is None else price.cost(tokens_in, max_tokens, self.batch)

    def book(self, model: str, ticket: Ticket, status: int | None,
             usage: tuple[int, int] | None, error: BaseException | None) -> tuple[float, int]:
        """Book one attempt; returns (USD, tokens) it counts against a budget."""
        if usage is not None:
            tokens_in, tokens_out = usage
        elif _maybe_billed(status, error):
            tokens_in, tokens_out = ticket.prompt_tokens(model), 0  # the prompt may be billed
        else:
            tokens_in = tokens_out = 0  # refused before any work (429, 4xx, not sent)
        return self.add(model, ticket.key, ticket.scope, status, tokens_in, tokens_out,
                        ok=usage is not None and error is None, batch=self.batch)

    def add(self, model: str, key: str, scope: tuple[str, str], status: int | None,
            tokens_in: int, tokens_out: int, ok: bool, batch: bool) -> tuple[float, int]:
        """Book tokens of one attempt (live or from a Batch API output file)."""
        price = self.price(model)
        usd = 0.0 if price is None else price.cost(tokens_in, tokens_out, batch)
        self.attempts += 1
        self.tokens_in += tokens_in
        self.tokens_out += tokens_out
        self.usd += usd
        if price is None and (tokens_in or tokens_out):
            self.unpriced_attempts += 1
        if not ok:
            self.failed_attempts += 1
            self.usd_failed += usd
        if self.store is not None:
            self.store.add_spend(key, scope[0], scope[1], status, tokens_in, tokens_out,
                                 usd if price is not None else None, ok, batch)
        return usd, tokens_in + tokens_out

    def snapshot(self) -> dict[str, Any]:
        price = self._prices.get(self.model)
        return {
            "usd": None if price is None and self.unpriced_attempts else round(self.usd, 6),
            "usd_failed": round(self.usd_failed, 6), "attempts": self.attempts,
            "failed_attempts": self.failed_attempts, "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "price": None if price is None else {"in": price.usd_in, "out": price.usd_out,
                                                 "source": price.source, "batch": self.batch},
        }


class Budget:
    """``--budget-usd`` / ``--budget-tokens`` over the whole run directory.

    Every admitted attempt reserves its worst case (prompt + ``max_tokens``); its answer
    settles the reservation at the real cost. A request whose worst case does not fit is
    refused: the budget is then exhausted, the requests in flight finish (their answers are
    cached), and :class:`BudgetExhausted` ends the run with "incomplete". Spending never
    goes over the budget.
    """

    def __init__(self, usd: float | None, tokens: int | None, spent_usd: float = 0.0,
                 spent_tokens: int = 0) -> None:
        self.usd = usd
        self.tokens = tokens
        self.spent_usd = spent_usd
        self.spent_tokens = spent_tokens
        self.reserved_usd = 0.0
        self.reserved_tokens = 0
        self.exhausted: str | None = None

    async def reserve(self, usd: float, tokens: int, window: Window) -> tuple[float, int]:
        """Reserve the worst case of one attempt, waiting while in-flight reservations settle.

        Raises:
            BudgetExhausted: it does not fit even with nothing in flight (after the requests
                in flight have finished).
        """
        if self.usd is not None and math.isnan(usd):
            raise ConfigError("--budget-usd needs a price for this model: pass --price-in and "
                              "--price-out (USD per 1M tokens)")
        usd = 0.0 if math.isnan(usd) else usd
        while self.exhausted is None:
            over_usd = (self.usd is not None
                        and self.spent_usd + self.reserved_usd + usd > self.usd)
            over_tokens = (self.tokens is not None
                           and self.spent_tokens + self.reserved_tokens + tokens > self.tokens)
            if not over_usd and not over_tokens:
                self.reserved_usd += usd
                self.reserved_tokens += tokens
                return usd, tokens
            if self.reserved_usd > 0 or self.reserved_tokens > 0:
                # in-flight worst cases usually settle far lower: wait for them, then decide
                await asyncio.sleep(0.01)
                continue
            self.exhausted = (
                f"--budget-usd {self.usd:g} reached (spent ${self.spent_usd:.4f}; the next "
                f"request may cost up to ${usd:.4f})" if over_usd else
                f"--budget-tokens {self.tokens} reached (spent {self.spent_tokens}; the next "
                f"request may use up to {tokens})")
        while window.in_flight > 0:  # let paid-for answers arrive and be cached
            await asyncio.sleep(0.01)
        raise BudgetExhausted(f"{self.exhausted}; incomplete: rerun with a higher budget "
                              "to resume from the cache")

    def unreserve(self, usd: float, tokens: int) -> None:
        self.reserved_usd -= usd
        self.reserved_tokens -= tokens

    def settle(self, reserved_usd: float, reserved_tokens: int, usd: float, tokens: int) -> None:
        self.unreserve(reserved_usd, reserved_tokens)
        self.spent_usd += usd
        self.spent_tokens += tokens

    def snapshot(self) -> dict[str, Any]:
        return {"usd": self.usd, "tokens": self.tokens, "spent_usd": round(self.spent_usd, 6),
                "spent_tokens": self.spent_tokens, "exhausted": self.exhausted}


def cost_breakdown(store: RunStore, kept: int) -> dict[str, Any]:
    """What the run directory's requests cost, split by the fate of the record they served.

    ``by_outcome`` maps ``STAGE_THAT_SENT -> kept | rejected:STAGE:REASON | unattributed`` to
    requests, tokens and USD, over every invocation (resumes included); ``per_kept_sample``
    is all of it divided by the kept samples.
    """
    rows = store.spend_by_outcome()
    total = sum(r["usd"] or 0.0 for r in rows)
    unpriced = any(r["usd"] is None for r in rows)
    out: dict[str, Any] = {}
    for r in rows:
        fate = r["fate"]
        entry = out.setdefault(r["stage"] or "-", {}).setdefault(
            fate, {"attempts": 0, "failed": 0, "tokens_in": 0, "tokens_out": 0, "usd": 0.0})
        entry["attempts"] += r["attempts"]
        entry["failed"] += r["failed"]
        entry["tokens_in"] += r["tokens_in"]
        entry["tokens_out"] += r["tokens_out"]
        entry["usd"] = round(entry["usd"] + (r["usd"] or 0.0), 6)
    return {
        "total_usd": None if unpriced else round(total, 6),
        "per_kept_sample_usd": (None if unpriced or not kept else round(total / kept, 8)),
        "by_outcome": out,
    }


def run_cost(store: RunStore, meter: CostMeter) -> dict[str, Any]:
    """``stats["cost"]``: this invocation's attempts and the run directory's breakdown."""
    return {"run": meter.snapshot(), **cost_breakdown(store, store.count_results("kept"))}


def cost_card_section(cost: Mapping[str, Any]) -> str:
    """The dataset card's "Cost" section from ``stats["cost"]``."""
    def usd(v: Any) -> str:
        return "unknown (no price for this model)" if v is None else f"${v:.4f}"

    run = cost.get("run", {})
    lines = ["## Cost", "",
             f"- total over every invocation of this run directory: {usd(cost.get('total_usd'))}",
             f"- per kept sample: {usd(cost.get('per_kept_sample_usd'))}",
             f"- this invocation: {usd(run.get('usd'))} for {run.get('attempts', 0)} attempts "
             f"({run.get('failed_attempts', 0)} failed or retried, "
             f"{usd(run.get('usd_failed'))} of it)"]
    price = run.get("price")
    if price:
        lines.append(f"- price: ${price['in']}/${price['out']} per 1M tokens in/out "
                     f"({price['source']}{', batch discount' if price.get('batch') else ''})")
    lines += ["", "| sent by | record outcome | attempts | failed | tokens in | tokens out | USD |",
              "|---|---|---|---|---|---|---|"]
    for stage, fates in cost.get("by_outcome", {}).items():
        for fate, e in sorted(fates.items()):
            lines.append(f"| {stage} | {fate} | {e['attempts']} | {e['failed']} | "
                         f"{e['tokens_in']} | {e['tokens_out']} | {e['usd']:.4f} |")
    return "\n".join(lines)
