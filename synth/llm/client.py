"""The OpenAI-compatible chat client: bounded concurrency, rate limits, retries, request cache.

Every call goes ``cache → health gate → admission → HTTP (with retries) → cache write``.
Admission (:mod:`synth.llm.limits`: budget, adaptive concurrency window, RPM/TPM from the
provider's headers, cost of every attempt) is called before and after each attempt. The response
is journaled in the run store *before* the caller sees it, so a crash after the reply arrived
never pays for it twice, and a rerun of the same command sends only what is not cached. The
health gate (:mod:`synth.llm.health`) pauses requests while the endpoint is down instead of
letting every record burn its retries, and stops the run after ``--max-outage``.

Chat completions go over a lean wire (:mod:`synth.llm.wire`: HTTP/1.1 on asyncio streams parsed
by httptools, a keep-alive pool, orjson both ways): the ``openai`` SDK costs ~2 ms of CPU per
request, tens of times the wire work, and that is the ceiling of a single Python core against a
fast server. The model list goes over the same wire; the SDK stays for the Files/Batch APIs
other modules use (imported there, not at start-up). Status codes are classified here exactly as
the SDK's exception classes were: 429/408/409/5xx, timeouts, resets and a 200 whose body is not
JSON are retried (Retry-After / retry-after-ms honoured); 400/422 and llama.cpp's HTTP 500
"validation error" are ``llm_bad_request``; 401/403 and 404 end the run. The environment's
HTTP(S)_PROXY / NO_PROXY apply as they did over the SDK's httpx client. The admission hooks see
every attempt on this wire: its status, its headers (``x-ratelimit-*``, Retry-After) and its
usage. An executor's :class:`Transport` (Ray sender actors) sends misses elsewhere; each
sender's own client uses this same wire.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import json
import logging
import random
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

import orjson

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
from synth.llm.wire import StreamWire, TransportFailure, Wire
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
        return dict(self._request)

    @cached_property
    def _request(self) -> dict[str, Any]:
        # Built field by field, computed once per (frozen) params object: asdict deep-copied
        # the response_format schema on every request (the loop makes one params object per
        # call), the generate path's top Python cost. The schema dict is shared, never changed.
        data: dict[str, Any] = {"temperature": self.temperature, "top_p": self.top_p,
                                "max_tokens": self.max_tokens, "seed": self.seed,
                                "stop": None if self.stop is None else list(self.stop),
                                "response_format": self.response_format}
        if self.logprobs:
            data["logprobs"] = True
            data["top_logprobs"] = self.top_logprobs
        return {k: v for k, v in data.items() if v is not None}

    @cached_property
    def request_text(self) -> str:
        """The request's JSON as the cache key hashes it (sorted keys, json's separators),
        made once per params object: the response_format schema alone is most of it."""
        return json.dumps(self._request, sort_keys=True, ensure_ascii=False)


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
    blob = request_json(model, messages, params, sample)
    return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()


def request_json(model: str, messages: list[Message], params: SamplingParams,
                 sample: int) -> str:
    """``json.dumps`` of the request with sorted keys and ``ensure_ascii=False``, character for
    character: every response stored before is found under the key of this text.

    orjson encodes the model and the messages' strings (its escapes are json's, checked on
    every code point; the json encoder spends 10x as long on a prompt), and this function
    writes json's separators around them. Anything else (a message whose content is not a
    string, a lone surrogate, a sample that is not an int) takes ``json.dumps`` whole.
    """
    try:
        if type(model) is not str or type(sample) is not int:
            raise TypeError(model)
        parts = []
        for message in messages:
            if type(message) is not dict:
                raise TypeError(message)
            items = []
            for k in sorted(message):
                v = message[k]
                if type(k) is not str or type(v) is not str:
                    raise TypeError(k)
                items.append(f"{orjson.dumps(k).decode()}: {orjson.dumps(v).decode()}")
            parts.append("{" + ", ".join(items) + "}")
        return (f'{{"messages": [{", ".join(parts)}], "model": {orjson.dumps(model).decode()}, '
                f'"params": {params.request_text}, '
                f'"sample": {sample}}}')
    except TypeError:  # (orjson's refusals are TypeErrors too)
        return json.dumps({"model": model, "messages": messages,
                           "params": params.to_request(), "sample": sample},
                          sort_keys=True, ensure_ascii=False)


# The SDK's exception class names, kept in reject details so they read as before the switch.
_STATUS_NAMES = {400: "BadRequestError", 401: "AuthenticationError",
                 403: "PermissionDeniedError", 404: "NotFoundError", 409: "ConflictError",
                 422: "UnprocessableEntityError", 429: "RateLimitError"}


class HTTPStatusFailure(Exception):
    """The endpoint answered a chat completion with a non-2xx status."""

    def __init__(self, status_code: int, headers: Mapping[str, str], body: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        try:
            self.body: Any = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            self.body = body[:300].decode("utf-8", "replace")
        name = _STATUS_NAMES.get(status_code,
                                 "InternalServerError" if status_code >= 500 else "APIStatusError")
        self.name = name
        super().__init__(f"HTTP {status_code}")


class MalformedResponse(Exception):
    """A 2xx answer whose body is not a chat completion (cut off, not JSON)."""

    name = "MalformedResponse"


def _invalid_request(exc: BaseException) -> bool:
    """A request the server will never accept as sent.

    llama-cpp-python answers a request that fails validation with HTTP 500 and a pydantic
    "validation error" message; retrying that would only repeat the refusal.
    """
    if not isinstance(exc, HTTPStatusFailure):
        return False
    return exc.status_code in (400, 422) or (
        exc.status_code == 500 and "validation error" in _message(exc).lower())


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, TransportFailure | MalformedResponse):
        return True
    if isinstance(exc, HTTPStatusFailure) and not _invalid_request(exc):
        return exc.status_code in (408, 409, 429) or exc.status_code >= 500
    return False


def _outage_signal(exc: BaseException) -> bool:
    """A failure that says the endpoint itself is down or broken (counts toward the breaker):
    no connection, a timeout, a 5xx. A 429 is the endpoint working as designed."""
    if _invalid_request(exc):
        return False
    if isinstance(exc, HTTPStatusFailure):
        return exc.status_code >= 500
    return isinstance(exc, TransportFailure)


def _is_sdk_status_error(exc: BaseException) -> bool:
    """An ``openai.APIStatusError`` (the Batch and Files APIs go through the SDK); without
    the SDK imported there can be none, and it is not imported just to say so."""
    openai = sys.modules.get("openai")
    return openai is not None and isinstance(exc, openai.APIStatusError)


def retry_after_seconds(exc: BaseException | None) -> float | None:
    """The server's ``Retry-After`` (or ``retry-after-ms``) in seconds, if it sent one."""
    if isinstance(exc, HTTPStatusFailure):
        headers: Mapping[str, str] = exc.headers
    elif exc is not None and _is_sdk_status_error(exc):
        headers = exc.response.headers  # type: ignore[attr-defined]
    else:
        return None
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
        try:
            when = email.utils.parsedate_to_datetime(value) if value else None
        except (TypeError, ValueError):
            return None
        if when is None:
            return None
        return max(when.timestamp() - time.time(), 0.0)


def _dumps(data: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(data)
    except TypeError:  # a lone surrogate orjson refuses: json escapes it as \udXXX
        return json.dumps(data).encode("ascii")


def parse_completion(body: bytes) -> Completion:
    """A chat-completion body as a :class:`Completion`.

    Raises:
        MalformedResponse: the body is not JSON or not shaped like a chat completion.
        LLMRequestFailed: ``llm_empty`` when it holds no choice.
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedResponse(f"the body is not JSON ({exc}): {body[:80]!r}") from exc
    return completion_from_data(data, repr(body[:80]))


def completion_from_data(data: Any, preview: str = "") -> Completion:
    """A decoded chat-completion body (a live reply's, a Batch API output line's) as a
    :class:`Completion`; ``preview`` (the body's start) goes into error messages.

    Raises:
        MalformedResponse: not shaped like a chat completion.
        LLMRequestFailed: ``llm_empty`` when it holds no choice.
    """
    if not isinstance(data, dict):
        raise MalformedResponse(f"the body is not a JSON object: {preview}")
    choices = data.get("choices")
    if not choices:
        raise LLMRequestFailed("llm_empty", "the endpoint returned no choices")
    choice = choices[0] if isinstance(choices, list) else None
    if not isinstance(choice, dict):
        raise MalformedResponse(f"choices[0] is not an object: {preview}")
    message = choice.get("message") or {}
    text = message.get("content") if isinstance(message, dict) else None
    logprobs = None
    lp = choice.get("logprobs")
    if isinstance(lp, dict) and isinstance(lp.get("content"), list):
        logprobs = [_token_logprob(t) for t in lp["content"] if isinstance(t, dict)]
    usage = data.get("usage") or {}
    if not isinstance(usage, dict):
        usage = {}
    return Completion(
        text=text if isinstance(text, str) else "",
        finish_reason=choice.get("finish_reason") or "unknown",
        tokens_in=int(usage.get("prompt_tokens") or 0),
        tokens_out=int(usage.get("completion_tokens") or 0),
        logprobs=logprobs,
    )


def _token_logprob(t: dict[str, Any]) -> dict[str, Any]:
    """One token's logprobs with the fields the SDK's ``model_dump()`` always had."""
    out = {"token": t.get("token"), "bytes": t.get("bytes"), "logprob": t.get("logprob")}
    top = t.get("top_logprobs")
    out["top_logprobs"] = [{"token": x.get("token"), "bytes": x.get("bytes"),
                            "logprob": x.get("logprob")} for x in top if isinstance(x, dict)
                           ] if isinstance(top, list) else []
    return out


class LLMClient:
    """Async chat completions against one OpenAI-compatible endpoint and model.

    Args:
        base_url: the endpoint, e.g. ``http://127.0.0.1:8000/v1``.
        model: model name sent with every request.
        store: run store holding the request cache.
        config: concurrency, timeouts, retry bounds, rate limits.
        stats: counters this client bumps (requests, retries, cache_hits, tokens_in/out, ...).
        admission: the admission object (default: one built from ``config``).
        wire: how requests go over HTTP (default: :class:`synth.llm.wire.StreamWire`; tests
            pass a :class:`synth.llm.wire.HttpxWire` over an ``httpx.MockTransport``).

    ``defer``: when set, a request that is not cached is handed to ``defer(key, body)`` and
    fails with reason ``deferred`` instead of being sent (Batch API submission, dry runs).
    """

    def __init__(self, base_url: str, model: str, store: RunStore, config: LLMConfig,
                 stats: Counter[str] | None = None,
                 admission: Admission | None = None,
                 transport: Transport | None = None,
                 wire: Wire | None = None) -> None:
        self.base_url = base_url
        self.model = model
        self.store = store
        self.config = config
        self.stats: Counter[str] = stats if stats is not None else Counter()
        self._wire = wire if wire is not None else StreamWire(config.timeout_s)
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._headers = {"Authorization": f"Bearer {api_key()}",
                         "Content-Type": "application/json", "Accept": "application/json"}
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
        await self._wire.aclose()

    async def list_models(self) -> list[str]:
        """Model ids the endpoint serves; raises a SynthError the user can act on.

        Asked over the same wire as the chat completions (the SDK's client and its imports
        cost a second of start-up for this one request), with the SDK's error names.
        """
        url = self.base_url.rstrip("/") + "/models"
        headers = {"Authorization": self._headers["Authorization"],
                   "Accept": "application/json"}
        try:
            status, _, body = await self._wire.request("GET", url, headers)
        except TransportFailure as exc:
            raise EndpointUnreachable(
                f"cannot reach {self.base_url} ({exc.name}); is the server "
                "running? Check --base-url / OPENAI_BASE_URL") from exc
        denied = self._auth_failure(status)
        if denied is not None:
            raise denied
        if status == 404:
            return []  # some servers have no /models; requests will tell
        if not 200 <= status < 300:
            raise LLMError(f"{self.base_url}/models answered HTTP {status}")
        try:
            data = orjson.loads(body)["data"]
            return [str(m["id"]) for m in data]
        except (orjson.JSONDecodeError, TypeError, KeyError) as exc:
            raise LLMError(f"{self.base_url}/models answered something that is not a model "
                           f"list: {body[:80]!r}") from exc

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
                retries, ``llm_malformed`` when every answer was a 2xx whose body was no chat
                completion, ``llm_bad_request`` for a 400/422 the server will not accept).
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
        transport = self.transport
        assert transport is not None

        async def send() -> tuple[Completion, Mapping[str, str] | None]:
            return await transport.send(self.model, messages, params, self.stats), None

        return await self._admitted(messages, params, key, send)

    def _scrubbed(self, completion: Completion) -> Completion:
        if self.scrub is not None:
            completion.text = self.scrub(completion.text)
        return completion

    def _wait(self, exc: BaseException, attempt: int) -> float:
        told = retry_after_seconds(exc)
        if told is not None:
            return min(told, max(self.config.backoff_max_s, 1.0) * 10)
        # full jitter, as tenacity's wait_random_exponential computed it before
        high = min(self.config.backoff_base_s * 2.0 ** (attempt - 1), self.config.backoff_max_s)
        return random.uniform(0, max(high, 0.0))

    async def _send_with_retries(self, messages: list[Message], params: SamplingParams,
                                 key: str = "") -> Completion:
        body = _dumps({"model": self.model, "messages": messages, **params.to_request()})
        attempt = 0
        while True:
            attempt += 1
            try:
                completion = await self._admitted(messages, params, key,
                                                  lambda: self._send(body))
            except (HTTPStatusFailure, TransportFailure, MalformedResponse) as exc:
                if self._should_retry(exc) and attempt < self.config.max_attempts:
                    self.stats["retries"] += 1
                    log.debug("retrying after %s (attempt %d)", exc.name, attempt)
                    await asyncio.sleep(self._wait(exc, attempt))
                    continue
                raise self._failure(exc) from exc
            self.gate.success()
            return completion

    def _should_retry(self, exc: BaseException) -> bool:
        if _outage_signal(exc):
            self.gate.failure(f"{getattr(exc, 'name', exc.__class__.__name__)}: "
                              f"{_message(exc)[:120]}")
        # Once the gate has closed, retrying only burns attempts: complete() waits instead.
        return _retryable(exc) and self.gate.is_open

    def _auth_failure(self, status: int | None) -> AuthenticationFailed | None:
        """A 401 or 403, from a completion or the model list: the run cannot go on."""
        if status == 401:
            return AuthenticationFailed(
                f"{self.base_url} refused the API key (HTTP 401); set OPENAI_API_KEY to a "
                "valid key")
        if status == 403:
            return AuthenticationFailed(
                f"{self.base_url} denied access (HTTP 403); check the key's permissions")
        return None

    def _failure(self, exc: HTTPStatusFailure | TransportFailure | MalformedResponse
                 ) -> Exception:
        """What a request that failed for good becomes: the run's end or one record's."""
        status = exc.status_code if isinstance(exc, HTTPStatusFailure) else None
        denied = self._auth_failure(status)
        if denied is not None:
            return denied
        if status == 404:
            return ModelNotFound(
                f"{self.base_url} answered 404 for model {self.model!r}: {_message(exc)}")
        if _invalid_request(exc):
            return LLMRequestFailed("llm_bad_request", _message(exc), status)
        self.stats["failed_requests"] += 1
        if isinstance(exc, MalformedResponse):
            return LLMRequestFailed("llm_malformed", f"the endpoint answered 2xx with a body "
                                    f"that is no chat completion: {exc}"[:300])
        return LLMRequestFailed("llm_error", f"{exc.name}: {_message(exc)}", status)

    async def _admitted(
            self, messages: list[Message], params: SamplingParams, key: str,
            send: Callable[[], Awaitable[tuple[Completion, Mapping[str, str] | None]]],
    ) -> Completion:
        """One attempt, ``send()``, between the two admission hooks (limits, window, cost,
        budget)."""
        ticket = await self.admission.acquire(self.model, messages, params.max_tokens, key)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            completion, headers = await send()
        except BaseException as exc:
            self.in_flight -= 1
            # A refusal's status and headers (x-ratelimit-*, Retry-After) reach the window and
            # the pacers; no answer (reset, timeout, a garbled 2xx) has neither. A transport's
            # failure carries the status its sender saw last.
            status: int | None
            refusal: Mapping[str, str] | None
            if isinstance(exc, HTTPStatusFailure):
                status, refusal = exc.status_code, exc.headers
            else:
                status = exc.status if isinstance(exc, LLMRequestFailed) else None
                refusal = None
            await self.admission.release(ticket, self.model, status, refusal, None, exc,
                                         retry_after_seconds(exc))
            raise
        self.in_flight -= 1
        await self.admission.release(ticket, self.model, 200, headers,
                                     (completion.tokens_in, completion.tokens_out))
        return completion

    async def _send(self, body: bytes) -> tuple[Completion, Mapping[str, str]]:
        self.stats["requests"] += 1
        status, headers, data = await self._wire.request("POST", self._url, self._headers, body)
        if not 200 <= status < 300:
            raise HTTPStatusFailure(status, headers, data)
        try:
            return parse_completion(data), headers
        except MalformedResponse:
            self.stats["malformed_replies"] += 1
            raise


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
    if isinstance(body, str) and body:
        return body[:300]
    return str(exc)[:300]
