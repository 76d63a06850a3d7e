"""Admission of requests: provider rate limits, an adaptive concurrency window, budgets.

The client calls one :class:`Admission` at two points of every attempt::

    ticket = await admission.acquire(model, messages, max_tokens)   # before sending
    admission.release(ticket, status, headers, usage, error)        # after the answer

``acquire`` counts the prompt's tokens, checks the budget (:mod:`synth.llm.cost`), waits for a
slot of the concurrency window and for the RPM/TPM pacers; ``release`` feeds the window
(429/503 and latency), reseeds the pacers from ``x-ratelimit-*`` headers and books the cost.

The window is AIMD between 1 and ``--concurrency``: halve on 429/503 (once per round trip,
honouring ``Retry-After``), shrink by a fifth when latency rises well above its baseline (a
vLLM/SGLang fleet queues instead of refusing), grow by one after a window's worth of successes.
It never reaches zero: the floor is 1, a pause is bounded, and while paused one probe request
per interval still goes out. It starts small (4, slow start: +1 per answer until the first
signal), so the limits the provider announces and the unloaded latency are known before a
burst.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synth.llm.cost import Budget, CostMeter, attribution

log = logging.getLogger("synth.llm")

# Statuses that say "too much": the window halves.
OVERLOAD = (429, 503)
# At most this long a Retry-After pauses admission (a longer one would stall the whole run).
MAX_PAUSE_S = 60.0


# -- token counting ---------------------------------------------------------------------------


@functools.cache
def _encoding(model: str) -> tuple[Callable[[str], int] | None, str]:
    """(token counter, tokenizer name) for ``model``: its own tokenizer when one is offline.

    Order: the embedded model's GGUF vocabulary (llama.cpp, vocabulary only: milliseconds), a
    Hugging Face ``tokenizers`` tokenizer already in the local cache (open models served by
    vLLM), tiktoken's encoding for OpenAI model names, cl100k_base, else None (characters / 4,
    reported as such).
    """
    import importlib

    from synth.config import EMBEDDED_MODEL

    try:
        if model.lower() == EMBEDDED_MODEL:
            from synth.llm.server import embedded_model_path

            return _gguf_counter(embedded_model_path()), "gguf vocabulary"
        if "/" in model:
            hf = importlib.import_module("tokenizers").Tokenizer.from_pretrained(model)
            return (lambda text: len(hf.encode(text, add_special_tokens=False).ids)), model
    except Exception:  # noqa: BLE001 - not installed, not cached, offline: try the next one
        pass
    try:
        import tiktoken

        try:
            enc = tiktoken.encoding_for_model(model)
        except KeyError:
            enc = tiktoken.get_encoding("cl100k_base")
        return (lambda text: len(enc.encode(text, disallowed_special=()))), enc.name
    except Exception as exc:  # noqa: BLE001 - tiktoken fetches its BPE file on first use
        log.warning("no tokenizer for %s offline (%s); counting tokens as characters/4", model,
                    exc.__class__.__name__)
        return None, "chars/4"


def _gguf_counter(path: Path) -> Callable[[str], int]:
    """Token counter over a GGUF file's vocabulary (llama.cpp, vocabulary only: no weights).

    Through llama.cpp's own functions, not ``llama_cpp.Llama``: ``Llama(verbose=False)``
    points the whole process's stdout and stderr at /dev/null while it loads, so a line that
    another thread logged meanwhile was lost (the server watcher's "restarting it" warning,
    when a killed server's requests were the first to need a count).
    """
    import llama_cpp

    # llama.cpp's load messages reach Python's stderr through this logger's level.
    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
    if not model:
        raise OSError(f"llama.cpp could not read the vocabulary of {path}")
    vocab = llama_cpp.llama_model_get_vocab(model)  # the model stays loaded for the process

    def count(text: str) -> int:
        data = text.encode("utf-8")
        # With no room for tokens llama.cpp returns minus the count: one call, no buffer.
        return -llama_cpp.llama_tokenize(vocab, data, len(data), None, 0, False, False)

    return count


def tokenizer_name(model: str) -> str:
    """Which tokenizer :func:`count_message_tokens` uses for ``model``."""
    return _encoding(model)[1]


def count_text_tokens(text: str, model: str = "") -> int:
    count, _ = _encoding(model)
    if count is None:
        return max(1, len(text) // 4)
    return count(text)


def count_message_tokens(messages: list[dict[str, str]], model: str = "") -> int:
    """Prompt tokens of a chat request: content plus the chat format's few tokens per message.

    OpenAI's chat format costs about 3 tokens per message and 3 to prime the reply; open
    models' chat templates are within a few tokens of that.
    """
    return 3 + sum(3 + count_text_tokens(m.get("content", ""), model) for m in messages)


# -- rate limits ------------------------------------------------------------------------------

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_reset(value: str | None) -> float | None:
    """``x-ratelimit-reset-*`` in seconds: ``"1s"``, ``"6m0s"``, ``"20ms"``, ``"0.5"``."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    parts = _DURATION.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value.replace(" ", ""):
        return None
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(n) * scale[u] for n, u in parts)


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None


class Pacer:
    """A per-minute limit kept by spacing admissions (GCRA without burst).

    Each admission of ``cost`` units moves the theoretical arrival time ``cost * minute/limit``
    ahead, so any half-open window of one minute admits at most ``limit`` units (plus one
    request larger than what is left). ``hold_until`` blocks all admissions until a time (the
    provider said nothing is left until its reset).
    """

    def __init__(self, limit: float | None, minute_s: float = 60.0) -> None:
        self.limit = limit
        self.minute_s = minute_s
        self.tat = 0.0  # theoretical arrival time of the next unit
        self.hold_until = 0.0
        self._lock = asyncio.Lock()

    async def acquire(self, cost: float) -> None:
        if not self.limit and not self._lock.locked() and self.hold_until <= time.monotonic():
            return  # no limit, no hold, nobody waiting: nothing to wait for or to book
        async with self._lock:  # FIFO: waiting requests go in order
            while True:
                now = time.monotonic()
                wait = max(self.hold_until - now, 0.0)
                if self.limit:
                    wait = max(wait, self.tat - now)
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            if self.limit:
                cost = min(cost, self.limit)  # one request larger than the limit still goes
                self.tat = max(self.tat, time.monotonic()) + cost * self.minute_s / self.limit


class RateLimits:
    """RPM and TPM pacers, from configuration and then from the provider's headers.

    A configured limit stays an upper bound: the provider's announced limit only lowers it.
    """

    def __init__(self, rpm: int | None, tpm: int | None, minute_s: float = 60.0) -> None:
        self.configured = {"requests": rpm, "tokens": tpm}
        self.requests = Pacer(rpm, minute_s)
        self.tokens = Pacer(tpm, minute_s)
        self.source = "config" if (rpm or tpm) else "none"

    async def acquire(self, tokens: int) -> None:
        await self.requests.acquire(1)
        await self.tokens.acquire(tokens)

    def update(self, headers: Mapping[str, str] | None) -> None:
        """Follow ``x-ratelimit-limit-*`` / ``-remaining-*`` / ``-reset-*`` if present."""
        if not headers:
            return
        for kind, pacer in (("requests", self.requests), ("tokens", self.tokens)):
            limit = _int_header(headers, f"x-ratelimit-limit-{kind}")
            if limit is not None and limit > 0:
                configured = self.configured[kind]
                new = min(limit, configured) if configured else limit
                if pacer.limit != new:
                    log.info("rate limit from the endpoint's headers: %d %s per minute", new, kind)
                    pacer.limit = new
                self.source = "headers"
            remaining = _int_header(headers, f"x-ratelimit-remaining-{kind}")
            reset = parse_reset(headers.get(f"x-ratelimit-reset-{kind}"))
            if remaining is not None and remaining <= 0 and reset is not None:
                pacer.hold_until = max(pacer.hold_until,
                                       time.monotonic() + min(reset, MAX_PAUSE_S))

    def snapshot(self) -> dict[str, Any]:
        return {"rpm": self.requests.limit, "tpm": self.tokens.limit, "source": self.source}


# -- the adaptive window ------------------------------------------------------------------------


@dataclass
class Ticket:
    """One admitted attempt: what release() needs to book it.

    ``tokens_in`` is the prompt's token count when admission needed it (a budget or a TPM
    limit), else None: :meth:`prompt_tokens` counts it only if the attempt is booked without
    the server's usage (a failure that may be billed).
    """

    tokens_in: int | None
    max_tokens: int
    reserved_usd: float
    reserved_tokens: int
    sent: float
    epoch: int
    scope: tuple[str, str]
    key: str = ""
    concurrent: int = 1  # our requests in flight when it was sent, itself included
    messages: list[dict[str, str]] | None = None

    def prompt_tokens(self, model: str) -> int:
        if self.tokens_in is None:
            self.tokens_in = count_message_tokens(self.messages or [], model)
        return self.tokens_in


@dataclass
class Window:
    """AIMD concurrency window between ``floor`` and ``ceiling`` with a latency signal.

    Args:
        ceiling: ``--concurrency``.
        decrease: factor applied on 429/503.
        latency_decrease: factor applied when latency is well above the baseline.
        tolerance: latency/baseline ratio that counts as "well above".
        hold: latency/baseline ratio above which the window stops growing.
        probe_s: while paused, one request per this many seconds still goes.
    """

    ceiling: int
    floor: int = 1
    decrease: float = 0.5
    latency_decrease: float = 0.8
    tolerance: float = 2.0
    hold: float = 1.6
    probe_s: float = 1.0
    limit: float = 0.0
    in_flight: int = 0
    successes: int = 0
    epoch: int = 0  # bumped at every decrease: answers to older attempts do not decrease again
    baseline: float | None = None
    recent: float | None = None
    paused_until: float = 0.0
    slow_start: bool = True  # +1 per answer (doubling per round trip) until the first signal
    initial: int = 4
    events: dict[str, int] = field(default_factory=lambda: {"overload": 0, "latency": 0,
                                                             "increase": 0, "probe": 0})
    # One future per queued request: a release wakes only the head of the line (waking every
    # waiter on every release cost O(queue) wake-ups per request).
    _waiters: dict[int, asyncio.Future[None]] = field(default_factory=dict)
    _last_probe: float = 0.0
    _next_ticket: int = 0
    _serving: int = 0
    _abandoned: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.ceiling = max(self.ceiling, self.floor)
        self.limit = float(min(self.ceiling, max(self.initial, self.floor)))

    @property
    def size(self) -> int:
        """Requests allowed in flight now."""
        return max(self.floor, int(self.limit))

    def _wake_head(self) -> None:
        """Let the first request in line look again (the window or the pause changed)."""
        while self._serving in self._abandoned:
            self._abandoned.discard(self._serving)
            self._serving += 1
        head = self._waiters.get(self._serving)
        if head is not None and not head.done():
            head.set_result(None)

    async def acquire(self) -> None:
        """Wait for a slot, first come first served (a request rendered earlier goes first)."""
        mine = self._next_ticket
        self._next_ticket += 1
        loop = asyncio.get_running_loop()
        try:
            while True:
                self._wake_head()  # skips abandoned tickets ahead of this one
                timeout: float | None = None
                if mine == self._serving:
                    now = time.monotonic()
                    if now < self.paused_until:
                        # A probe: nothing in flight, one request per probe_s still goes.
                        if self.in_flight == 0 and now - self._last_probe >= self.probe_s:
                            self._last_probe = now
                            self.events["probe"] += 1
                            break
                        timeout = max(min(self.paused_until - now, self.probe_s), 0.001)
                    elif self.in_flight < self.size:
                        break
                # Checked and waited for without an await in between: a wake-up between
                # the check and the wait cannot happen on this single-threaded loop. (A bare
                # future, made only to wait: an asyncio.Event was made for every request.)
                woken = self._waiters[mine] = loop.create_future()
                if timeout is None:
                    await woken
                else:
                    try:
                        await asyncio.wait_for(woken, timeout=timeout)
                    except TimeoutError:
                        pass
        except BaseException:
            self._abandoned.add(mine)  # cancelled while queued: the line moves on
            self._waiters.pop(mine, None)
            self._wake_head()
            raise
        self._waiters.pop(mine, None)
        self._serving += 1
        self.in_flight += 1
        self._wake_head()  # the next in line may go too

    async def release(self, status: int | None, latency_s: float | None, retry_after: float | None,
                      epoch: int, tokens_out: int = 0, concurrent: int = 2) -> None:
        self.in_flight -= 1
        self._observe(status, latency_s, retry_after, epoch, tokens_out, concurrent)
        self._wake_head()

    def _observe(self, status: int | None, latency_s: float | None, retry_after: float | None,
                 epoch: int, tokens_out: int, concurrent: int = 2) -> None:
        now = time.monotonic()
        if status in OVERLOAD:
            self.successes = 0
            if retry_after is not None:
                self.paused_until = max(self.paused_until, now + min(retry_after, MAX_PAUSE_S))
            if epoch == self.epoch:  # once per round trip: later answers to older sends ignored
                self.limit = max(float(self.floor), self.limit * self.decrease)
                self.epoch += 1
                self.events["overload"] += 1
                self.slow_start = False
            return
        if status is None or status >= 400 or latency_s is None:
            return  # connection errors and bad requests say nothing about capacity
        # Latency per output token when the length is known: long answers are not congestion.
        signal = latency_s / (1.0 + tokens_out / 64.0)
        if self.baseline is None:
            self.baseline = signal
        elif signal < self.baseline:
            # an EWMA of the best latencies: one lucky fast answer does not set the bar
            self.baseline += 0.3 * (signal - self.baseline)
        elif concurrent <= 1:
            # sent alone: nothing of ours queued ahead of it, an unloaded measurement; this also
            # rebaselines a fleet that got slower for good once the window is at its floor
            self.baseline += 0.5 * (signal - self.baseline)
        elif signal <= self.tolerance * self.baseline:
            self.baseline += 0.002 * (signal - self.baseline)  # slow drift, never from congestion
        self.recent = signal if self.recent is None else self.recent + 0.2 * (signal - self.recent)
        ratio = self.recent / self.baseline if self.baseline > 0 else 1.0
        if ratio > self.tolerance and epoch == self.epoch:
            # the further above the tolerance, the deeper the cut (0.5..latency_decrease)
            factor = min(self.latency_decrease, max(0.5, self.tolerance / ratio))
            self.limit = max(float(self.floor), self.limit * factor)
            self.epoch += 1
            self.successes = 0
            self.events["latency"] += 1
            self.slow_start = False
            # forget the congested samples, so the next decision sees the new window
            self.recent = self.baseline * (1.0 + self.tolerance) / 2.0
            return
        self.successes += 1
        if self.slow_start and ratio <= self.hold:
            self.limit = min(float(self.ceiling), self.limit + 1.0)
            self.successes = 0
            return
        if ratio <= self.hold and self.successes >= max(int(self.limit), 1):
            if self.limit < self.ceiling:
                self.limit = min(float(self.ceiling), self.limit + 1.0)
                self.events["increase"] += 1
            self.successes = 0

    def snapshot(self) -> dict[str, Any]:
        return {"window": self.size, "window_max": self.ceiling, "in_flight": self.in_flight,
                "latency_baseline_s": None if self.baseline is None else round(self.baseline, 4),
                "events": dict(self.events)}


# -- the admission object the client calls ------------------------------------------------------


class Admission:
    """Everything that decides whether and when one attempt may be sent, and what it cost.

    Args:
        concurrency: the window's ceiling (``--concurrency``).
        rpm, tpm: configured limits (None: none until the provider announces them).
        meter: cost and token bookkeeping (prices, spend rows in the store).
        budget: ``--budget-usd`` / ``--budget-tokens`` (None: no budget).
        minute_s: length of a "minute" (tests shrink it to run fast).
        adaptive: False keeps the window at ``concurrency`` (a fixed semaphore).
    """

    def __init__(self, concurrency: int, rpm: int | None, tpm: int | None, meter: CostMeter,
                 budget: Budget | None = None, minute_s: float = 60.0,
                 adaptive: bool = True) -> None:
        self.window = Window(ceiling=concurrency)
        if not adaptive:
            self.window.limit = float(self.window.ceiling)
            self.window.tolerance = self.window.hold = math.inf
            self.window.decrease = 1.0
        self.limits = RateLimits(rpm, tpm, minute_s)
        self.meter = meter
        self.budget = budget
        self.trace: list[tuple[float, int, int]] | None = None  # (t, window, in flight)

    async def acquire(self, model: str, messages: list[dict[str, str]], max_tokens: int,
                      key: str = "") -> Ticket:
        """Wait until one attempt of this request may be sent.

        Raises:
            BudgetExhausted: sending it could exceed the budget (after the requests in flight
                have finished and been cached).
        """
        # The model's tokenizer is loaded at its first request (then a cache hit), not mid-run
        # at the first failure that must be counted: a tokenizer file fetched then would stall
        # every request in flight.
        _encoding(model)
        # Counting the prompt's tokens costs more than the rest of admission: only a budget and
        # a TPM limit need it before sending. A TPM limit the endpoint announces while this
        # request waits paces it by max_tokens alone (the next requests are counted).
        tokens_in = (count_message_tokens(messages, model)
                     if self.budget is not None or self.limits.tokens.limit else None)
        reserved_usd, reserved_tokens = 0.0, 0
        if self.budget is not None and tokens_in is not None:  # a budget: always counted
            reserved_usd, reserved_tokens = await self.budget.reserve(
                self.meter.worst_case(model, tokens_in, max_tokens), tokens_in + max_tokens,
                self.window)
        try:
            await self.window.acquire()
        except BaseException:
            if self.budget is not None:
                self.budget.unreserve(reserved_usd, reserved_tokens)
            raise
        try:
            await self.limits.acquire((tokens_in or 0) + max_tokens)
        except BaseException:
            await self.window.release(None, None, None, -1)
            if self.budget is not None:
                self.budget.unreserve(reserved_usd, reserved_tokens)
            raise
        if self.trace is not None:
            self.trace.append((time.monotonic(), self.window.size, self.window.in_flight))
        return Ticket(tokens_in, max_tokens, float(reserved_usd), int(reserved_tokens),
                      time.monotonic(), self.window.epoch, attribution(), key,
                      self.window.in_flight, messages)

    async def release(self, ticket: Ticket, model: str, status: int | None,
                      headers: Mapping[str, str] | None = None,
                      usage: tuple[int, int] | None = None, error: BaseException | None = None,
                      retry_after: float | None = None) -> None:
        """Book one finished attempt: window, limits, cost, budget."""
        latency = time.monotonic() - ticket.sent
        self.limits.update(headers)
        await self.window.release(status, latency if error is None else None, retry_after,
                                  ticket.epoch, usage[1] if usage else 0, ticket.concurrent)
        usd, tokens = self.meter.book(model, ticket, status, usage, error)
        if self.budget is not None:
            self.budget.settle(ticket.reserved_usd, ticket.reserved_tokens, usd, tokens)

    def snapshot(self) -> dict[str, Any]:
        data = self.window.snapshot() | {"limits": self.limits.snapshot(),
                                         "cost": self.meter.snapshot()}
        if self.budget is not None:
            data["budget"] = self.budget.snapshot()
        return data
