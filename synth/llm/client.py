"""The OpenAI-compatible chat client: bounded concurrency, rate limits, retries, request cache.

Every call goes ``cache → health gate → admission → HTTP (with retries) → cache write``.
Admission (:mod:`synth.llm.limits`: budget, adaptive concurrency window, RPM/TPM from the
provider's headers, cost of every attempt) is called before and after each attempt. The response
is journaled in the run store *before* the caller sees it, so a crash after the reply arrived
never pays for it twice, and a rerun of the same command sends only what is not cached. The
health gate (:mod:`synth.llm.health`) pauses requests while the endpoint is down instead of
letting every record burn its retries, and stops the run after ``--max-outage``.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import httpx
import openai
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from synth.config import LLMConfig, api_key
from synth.errors import (
    AuthenticationFailed,
    EndpointUnreachable,
    LLMError,
    ModelNotFound,
    StoreWriteFailed,
)
from synth.llm.cost import Budget, CostMeter
from synth.llm.health import gate_for
from synth.llm.limits import Admission
from synth.store import RunStore

log = logging.getLogger("synth.llm")

Message = dict[str, str]


@dataclass(frozen=True)
class SamplingParams:
    """Sampling parameters sent with a request; all of them are part of the cache key."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 1024
    seed: int | None = None
    stop: tuple[str, ...] | None = None
    response_format: dict[str, Any] | None = None
    logprobs: bool = False
    top_logprobs: int | None = None

    def to_request(self) -> dict[str, Any]:
        """Keyword arguments for ``chat.completions.create`` (None values left out)."""
        data = asdict(self)
        if data["stop"] is not None:
            data["stop"] = list(data["stop"])
        if not data["logprobs"]:
            data.pop("logprobs")
            data.pop("top_logprobs")
        return {k: v for k, v in data.items() if v is not None}


@dataclass
class Completion:
    """One chat completion as synth uses it (also what the cache stores)."""

    text: str
    finish_reason: str
    tokens_in: int = 0
    tokens_out: int = 0
    logprobs: list[dict[str, Any]] | None = None
    cached: bool = False
    key: str = field(default="", compare=False)

    def to_cache(self) -> dict[str, Any]:
        return {"text": self.text, "finish_reason": self.finish_reason,
                "tokens_in": self.tokens_in, "tokens_out": self.tokens_out,
                "logprobs": self.logprobs}

    @classmethod
    def from_cache(cls, data: dict[str, Any], key: str) -> Completion:
        return cls(text=data["text"], finish_reason=data["finish_reason"],
                   tokens_in=data.get("tokens_in", 0), tokens_out=data.get("tokens_out", 0),
                   logprobs=data.get("logprobs"), cached=True, key=key)


#: Reject reasons of requests that failed for reasons outside the request itself (connection,
#: timeout, 429, 5xx, a garbled body): the record is left to retry, and a rerun sends it again.
RETRYABLE_REASONS = frozenset({"llm_error", "llm_malformed"})


class MalformedReply(Exception):
    """A 2xx answer whose body is not the JSON of a chat completion (a proxy's truncated body,
    a server bug). Retried like a 5xx."""


class LLMRequestFailed(Exception):
    """One request could not be answered; the record is rejected with ``reason``.

    Not a SynthError: it ends one record, not the run. ``reason`` in
    :data:`RETRYABLE_REASONS` means the record is left to retry rather than rejected for good.
    """

    def __init__(self, reason: str, detail: str, status: int | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.status = status


class Transport(Protocol):
    """Sends a request the cache could not answer and returns the completion.

    ``stats`` is the calling client's counters: a transport adds what the remote side counted
    (requests, retries, failed_requests, request_ms). Raises what :meth:`LLMClient.fetch`
    raises.
    """

    async def send(self, model: str, messages: list[Message], params: SamplingParams,
                   stats: Counter[str]) -> Completion: ...


def cache_key(model: str, messages: list[Message], params: SamplingParams, sample: int) -> str:
    """sha256 of everything that determines the answer."""
    blob = json.dumps({"model": model, "messages": messages, "params": params.to_request(),
                       "sample": sample}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()


def _invalid_request(exc: BaseException) -> bool:
    """A request the server will never accept as sent.

    llama-cpp-python answers a request that fails validation with HTTP 500 and a pydantic
    "validation error" message; retrying that would only repeat the refusal.
    """
    if isinstance(exc, openai.BadRequestError | openai.UnprocessableEntityError):
        return True
    return (isinstance(exc, openai.InternalServerError)
            and "validation error" in _message(exc).lower())


def _retryable(exc: BaseException) -> bool:
    if _invalid_request(exc):
        return False
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in (408, 409, 429) or exc.status_code >= 500
    return isinstance(exc, openai.APIConnectionError | openai.APITimeoutError | MalformedReply
                      | httpx.TransportError)


def _outage_signal(exc: BaseException) -> bool:
    """A failure that says the endpoint itself is down or broken (counts toward the breaker):
    no connection, a timeout, a 5xx. A 429 is the endpoint working as designed."""
    if _invalid_request(exc):
        return False
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code >= 500
    return isinstance(exc, openai.APIConnectionError | openai.APITimeoutError
                      | httpx.TransportError)


def retry_after_seconds(exc: BaseException | None) -> float | None:
    """The server's ``Retry-After`` (or ``retry-after-ms``) in seconds, if it sent one."""
    if not isinstance(exc, openai.APIStatusError):
        return None
    headers = exc.response.headers
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(float(ms) / 1000.0, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        when = email.utils.parsedate_to_datetime(value) if value else None
        if when is None:
            return None
        return max(when.timestamp() - time.time(), 0.0)


class LLMClient:
    """Async chat completions against one OpenAI-compatible endpoint and model.

    Args:
        base_url: the endpoint, e.g. ``http://127.0.0.1:8000/v1``.
        model: model name sent with every request.
        store: run store holding the request cache.
        config: concurrency, timeouts, retry bounds, rate limits.
        stats: counters this client bumps (requests, retries, cache_hits, tokens_in/out, ...).
        http_client: optional httpx client (tests pass one with a ``MockTransport``).
        admission: the admission object (default: one built from ``config``).

    ``defer``: when set, a request that is not cached is handed to ``defer(key, body)`` and
    fails with reason ``deferred`` instead of being sent (Batch API submission, dry runs).
    """

    def __init__(self, base_url: str, model: str, store: RunStore, config: LLMConfig,
                 stats: Counter[str] | None = None,
                 http_client: httpx.AsyncClient | None = None,
                 admission: Admission | None = None,
                 transport: Transport | None = None) -> None:
        self.base_url = base_url
        self.model = model
        self.store = store
        self.config = config
        self.stats: Counter[str] = stats if stats is not None else Counter()
        # Our own retries (tenacity) replace the SDK's, so that Retry-After and the bound apply.
        self._client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key(), max_retries=0,
                                          timeout=config.timeout_s,
                                          http_client=http_client)  # type: ignore[arg-type]
        self.admission = admission or default_admission(config, store)
        self.defer: Callable[[str, dict[str, Any]], None] | None = None
        self.gate = gate_for(base_url, config.max_outage_s)
        self.in_flight = 0
        self.max_in_flight = 0
        # Reply text filter (secrets redaction), applied before caching and on cache hits.
        self.scrub: Callable[[str], str] | None = None
        # Where cache misses go: None sends them from here; an executor's transport (a Ray
        # actor pool holding slices of the limits) sends them elsewhere. Either way the reply
        # comes back here, is redacted, and is journaled in this store before it is used.
        self.transport = transport

    async def aclose(self) -> None:
        await self._client.close()

    async def list_models(self) -> list[str]:
        """Model ids the endpoint serves; raises a SynthError the user can act on."""
        try:
            page = await self._client.models.list()
        except openai.AuthenticationError as exc:
            raise AuthenticationFailed(
                f"{self.base_url} refused the API key (HTTP {exc.status_code}); "
                "set OPENAI_API_KEY to a valid key") from exc
        except openai.PermissionDeniedError as exc:
            raise AuthenticationFailed(
                f"{self.base_url} denied access (HTTP 403); check the key's permissions") from exc
        except (openai.APIConnectionError, openai.APITimeoutError) as exc:
            raise EndpointUnreachable(
                f"cannot reach {self.base_url} ({exc.__class__.__name__}); is the server "
                "running? Check --base-url / OPENAI_BASE_URL") from exc
        except openai.NotFoundError:
            return []  # some servers have no /models; requests will tell
        except openai.APIStatusError as exc:
            raise LLMError(f"{self.base_url}/models answered HTTP {exc.status_code}") from exc
        return [m.id for m in page.data]

    async def check(self, served: list[str] | None = None) -> None:
        """Fail fast, before any record is processed, when the endpoint or model is unusable.

        ``served`` is a model list already fetched with :meth:`list_models`.
        """
        models = served if served is not None else await self.list_models()
        if models and self.model not in models:
            raise ModelNotFound(
                f"model {self.model!r} is not served by {self.base_url}; "
                f"available: {', '.join(models[:10])}")

    async def complete(self, messages: list[Message], params: SamplingParams,
                       sample: int = 0) -> Completion:
        """One chat completion, from the cache when this exact request was answered before.

        Raises:
            LLMRequestFailed: the request failed for good (reason ``llm_error`` after bounded
                retries, ``llm_bad_request`` for a 400/422 the server will not accept).
            AuthenticationFailed, ModelNotFound: the run cannot go on.
        """
        key = cache_key(self.model, messages, params, sample)
        hit = self.store.get_response(key)
        if hit is not None:
            self.stats["cache_hits"] += 1
            return self._scrubbed(Completion.from_cache(hit, key))
        if self.defer is not None:
            self.defer(key, {"model": self.model, "messages": messages, **params.to_request()})
            raise LLMRequestFailed("deferred", "not cached; handed to the batch, not sent")
        if self.store.write_failed is not None:  # a full disk: pay for nothing more
            raise StoreWriteFailed(str(self.store.write_failed))
        if self.transport is not None:
            completion = await self._remote(messages, params, key)
        else:
            completion = await self.fetch(messages, params, key)
        completion.key = key
        # Redacted here, in the driver, before it is cached, whatever sent it: the key (from
        # the request) is unchanged, a rerun parses the same redacted text, and the cache
        # never holds a finding.
        completion = self._scrubbed(completion)
        self.store.put_response(key, self.model, completion.to_cache())
        self.stats["tokens_in"] += completion.tokens_in
        self.stats["tokens_out"] += completion.tokens_out
        return completion

    async def fetch(self, messages: list[Message], params: SamplingParams,
                    key: str = "") -> Completion:
        """One request over the wire under this client's admission, without the cache.

        The health gate, admission before and after every attempt (window, RPM/TPM, cost,
        budget), bounded retries (a request that failed because the endpoint went down is
        sent again once it is back). An executor's remote sender
        (:mod:`synth.executors.ray`) calls this with its slice of the limits; the caller
        redacts and journals the result.
        """
        while True:
            await self.gate.admit()
            epoch = self.gate.epoch
            # A remote sender has no store (the driver checks it).
            if self.store is not None and self.store.write_failed is not None:
                raise StoreWriteFailed(str(self.store.write_failed))
            started = time.monotonic()
            try:
                return await self._send_with_retries(messages, params, key)
            except LLMRequestFailed as exc:
                # The endpoint went down while this request was being tried: it did not
                # fail on its own merits, so wait for the endpoint and send it again.
                if exc.reason not in RETRYABLE_REASONS or self.gate.epoch == epoch:
                    raise
                self.stats["outage_resends"] += 1
            finally:
                self.stats["request_ms"] += round((time.monotonic() - started) * 1000)

    async def _remote(self, messages: list[Message], params: SamplingParams,
                      key: str) -> Completion:
        """A miss sent by the executor's transport, inside this (the driver's) admission.

        The job-wide window, RPM/TPM, cost and budget are kept here, so they hold for the
        whole job however many senders there are; each sender retries within its own slice.
        """
        assert self.transport is not None
        ticket = await self.admission.acquire(self.model, messages, params.max_tokens, key)
        try:
            completion = await self.transport.send(self.model, messages, params, self.stats)
        except LLMRequestFailed as exc:
            await self.admission.release(ticket, self.model, exc.status, None, None, exc)
            raise
        except BaseException as exc:
            await self.admission.release(ticket, self.model, None, None, None, exc)
            raise
        await self.admission.release(ticket, self.model, 200, None,
                                     (completion.tokens_in, completion.tokens_out))
        return completion

    def _scrubbed(self, completion: Completion) -> Completion:
        if self.scrub is not None:
            completion.text = self.scrub(completion.text)
        return completion

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        told = retry_after_seconds(exc)
        if told is not None:
            return min(told, max(self.config.backoff_max_s, 1.0) * 10)
        backoff = wait_random_exponential(multiplier=self.config.backoff_base_s,
                                          max=self.config.backoff_max_s)
        return float(backoff(state))

    def _should_retry(self, exc: BaseException) -> bool:
        if _outage_signal(exc):
            self.gate.failure(f"{exc.__class__.__name__}: {_message(exc)[:120]}")
        # Once the gate has closed, retrying only burns attempts: complete() waits instead.
        return _retryable(exc) and self.gate.is_open

    def _before_sleep(self, state: RetryCallState) -> None:
        self.stats["retries"] += 1
        exc = state.outcome.exception() if state.outcome else None
        log.debug("retrying after %s (attempt %d)", exc.__class__.__name__, state.attempt_number)

    async def _send_with_retries(self, messages: list[Message], params: SamplingParams,
                                 key: str = "") -> Completion:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.config.max_attempts),
            wait=self._wait,
            retry=retry_if_exception(self._should_retry),
            before_sleep=self._before_sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    completion = await self._admitted(messages, params, key)
                    self.gate.success()
                    return completion
        except openai.AuthenticationError as exc:
            raise AuthenticationFailed(
                f"{self.base_url} refused the API key (HTTP 401); set OPENAI_API_KEY") from exc
        except openai.NotFoundError as exc:
            raise ModelNotFound(
                f"{self.base_url} answered 404 for model {self.model!r}: {_message(exc)}") from exc
        except MalformedReply as exc:
            self.stats["failed_requests"] += 1
            raise LLMRequestFailed("llm_malformed", str(exc)) from exc
        except (openai.APIError, httpx.HTTPError) as exc:
            if _invalid_request(exc):
                raise LLMRequestFailed("llm_bad_request", _message(exc),
                                       getattr(exc, "status_code", None)) from exc
            self.stats["failed_requests"] += 1
            status = getattr(exc, "status_code", None)
            raise LLMRequestFailed("llm_error", f"{exc.__class__.__name__}: {_message(exc)}",
                                   status) from exc
        raise AssertionError("unreachable: tenacity either returns or reraises")

    async def _admitted(self, messages: list[Message], params: SamplingParams,
                        key: str) -> Completion:
        """One attempt between the two admission hooks (limits, window, cost, budget)."""
        ticket = await self.admission.acquire(self.model, messages, params.max_tokens, key)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            completion, headers = await self._send(messages, params)
        except BaseException as exc:
            self.in_flight -= 1
            status = getattr(exc, "status_code", None)
            response = getattr(exc, "response", None)
            await self.admission.release(
                ticket, self.model, status, getattr(response, "headers", None), None, exc,
                retry_after_seconds(exc))
            raise
        self.in_flight -= 1
        await self.admission.release(ticket, self.model, 200, headers,
                                     (completion.tokens_in, completion.tokens_out))
        return completion

    async def _send(self, messages: list[Message],
                    params: SamplingParams) -> tuple[Completion, Any]:
        self.stats["requests"] += 1
        try:
            raw = await self._client.chat.completions.with_raw_response.create(
                model=self.model, messages=messages,  # type: ignore[arg-type]
                **params.to_request(),
            )
            resp = raw.parse()
        except ValueError as exc:  # json.JSONDecodeError and pydantic's ValidationError
            self.stats["malformed_replies"] += 1
            raise MalformedReply(f"the endpoint's reply is not a chat completion: "
                                 f"{exc.__class__.__name__}: {str(exc)[:200]}") from exc
        if not isinstance(getattr(resp, "choices", None), list):
            self.stats["malformed_replies"] += 1
            raise MalformedReply(f"the endpoint's reply has no choices list: {str(resp)[:200]}")
        if not resp.choices:
            raise LLMRequestFailed("llm_empty", "the endpoint returned no choices")
        choice = resp.choices[0]
        logprobs = None
        if choice.logprobs is not None and choice.logprobs.content is not None:
            logprobs = [t.model_dump() for t in choice.logprobs.content]
        usage = resp.usage
        return Completion(
            text=choice.message.content or "",
            finish_reason=choice.finish_reason or "unknown",
            tokens_in=usage.prompt_tokens if usage else 0,
            tokens_out=usage.completion_tokens if usage else 0,
            logprobs=logprobs,
        ), raw.headers


def default_admission(config: LLMConfig, store: RunStore | None) -> Admission:
    """The admission of a client built from ``config``: window, limits, prices, budget.

    Without a store (an executor's remote sender) there is no budget: the driver's client
    keeps it, with the spend table, for the whole job.
    """
    budget = None
    if store is not None and (config.budget_usd is not None or config.budget_tokens is not None):
        spent_usd, spent_tokens = store.spent()
        budget = Budget(config.budget_usd, config.budget_tokens, spent_usd, spent_tokens)
    meter = CostMeter(store, config.price_in, config.price_out)
    return Admission(config.concurrency, config.rpm, config.tpm, meter, budget,
                     adaptive=config.adaptive)


def _message(exc: BaseException) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:300]
        if isinstance(err, str):
            return err[:300]
    return str(exc)[:300]
