"""The lean wires under the faults test_client.py gives the httpx seam, against a scripted
local HTTP server: same retries, same reject reasons, same cache keys and entries. Each fault
runs on both wires: the stream wire (the default) and aiohttp (proxied endpoints)."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from conftest import chat_response, mock_client, read_request

from synth.config import LLMConfig
from synth.errors import AuthenticationFailed, EndpointUnreachable, LLMError, ModelNotFound
from synth.llm.client import (
    LLMClient,
    LLMRequestFailed,
    MalformedResponse,
    SamplingParams,
    cache_key,
    parse_completion,
)
from synth.llm.wire import AiohttpWire
from synth.store import RunStore

MSG = [{"role": "user", "content": "hello"}]

# One step of the script: what the server does with the next request.
Step = tuple[Any, ...]


def ok(text: str = "ok") -> Step:
    return ("status", 200, {}, json.dumps(chat_response(text)).encode())


def status(code: int, headers: dict[str, str] | None = None, message: str = "no") -> Step:
    return ("status", code, headers or {}, json.dumps({"error": {"message": message}}).encode())


class Scripted:
    """A raw asyncio HTTP/1.1 server answering each request with the next scripted step
    (the last step repeats): a status + body, ``("reset",)`` (RST, no answer), or
    ``("hang", s)`` (answer nothing for ``s`` seconds)."""

    def __init__(self, steps: list[Step]) -> None:
        self.steps = steps
        self.times: list[float] = []
        self.bodies: list[dict[str, Any]] = []
        self.heads: list[str] = []
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head, raw = await read_request(reader)
                self.heads.append(head)
                self.bodies.append(json.loads(raw) if raw else {})
                self.times.append(time.monotonic())
                step = self.steps[min(len(self.times) - 1, len(self.steps) - 1)]
                if step[0] == "reset":
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    writer.transport.abort()
                    return
                if step[0] == "hang":
                    await asyncio.sleep(step[1])
                    writer.close()
                    return
                _, code, headers, data = step
                extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
                writer.write(f"HTTP/1.1 {code} X\r\ncontent-type: application/json\r\n{extra}"
                             f"content-length: {len(data)}\r\n\r\n".encode() + data)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture(params=["stream", "aiohttp"])
def wire(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def serve(steps: list[Step], store: RunStore,
          body: Callable[[LLMClient], Awaitable[Any]], base_url: str | None = None,
          scripted: Scripted | None = None, wire: str = "stream",
          **config: Any) -> tuple[Any, Scripted]:
    """Run ``body(client)`` against a scripted server over ``wire`` (stream or aiohttp).

    ``base_url`` (default: the scripted server) may name another host, e.g. behind a proxy;
    ``scripted`` passes a server made by the test (to read what it saw after a raise).
    """
    scripted = scripted or Scripted(steps)
    defaults: dict[str, Any] = {"backoff_base_s": 0.01, "backoff_max_s": 0.05,
                                "max_attempts": 4}
    defaults.update(config)

    async def main() -> Any:
        server = await asyncio.start_server(scripted.handle, "127.0.0.1", 0)
        port = scripted.port = server.sockets[0].getsockname()[1]
        url = (base_url or "http://127.0.0.1:{port}/v1").format(port=port)
        settings = LLMConfig(**defaults)
        client = LLMClient(url, "mock-model", store, settings, Counter(),
                           wire=AiohttpWire(settings.timeout_s) if wire == "aiohttp" else None)
        try:
            return await body(client)
        finally:
            await client.aclose()
            server.close()

    return asyncio.run(main()), scripted


def complete(client: LLMClient) -> Awaitable[Any]:
    return client.complete(MSG, SamplingParams())


def test_429_honours_retry_after(store: RunStore, wire: str) -> None:
    steps = [status(429, {"retry-after": "0.3"}), status(429, {"retry-after-ms": "300"}), ok()]
    completion, s = serve(steps, store, complete, wire=wire, backoff_base_s=0.001,
                          backoff_max_s=0.001)
    assert completion.text == "ok" and len(s.times) == 3
    assert s.times[1] - s.times[0] >= 0.29 and s.times[2] - s.times[1] >= 0.29


def test_5xx_is_retried_then_gives_up(store: RunStore, wire: str) -> None:
    completion, s = serve([status(503), status(502), ok()], store, complete, wire=wire)
    assert completion.text == "ok" and len(s.times) == 3
    with pytest.raises(LLMRequestFailed) as info:
        serve([status(503, message="overloaded")], store,
              lambda c: c.complete([{"role": "user", "content": "x"}], SamplingParams()),
              wire=wire, max_attempts=3)
    assert info.value.reason == "llm_error" and "overloaded" in info.value.detail
    assert info.value.detail.startswith("InternalServerError")


def test_timeout_is_retried(store: RunStore, wire: str) -> None:
    completion, s = serve([("hang", 1.0), ok()], store, complete, wire=wire, timeout_s=0.2)
    assert completion.text == "ok" and len(s.times) == 2


def test_connection_reset_is_retried(store: RunStore, wire: str) -> None:
    completion, s = serve([("reset",), ("reset",), ok()], store, complete, wire=wire)
    assert completion.text == "ok" and len(s.times) == 3


def test_malformed_json_is_retried_then_rejected_with_its_reason(store: RunStore,
                                                                 wire: str) -> None:
    cut = ("status", 200, {}, b'{"choices": [ {"mess')
    completion, s = serve([cut, ok()], store, complete, wire=wire)
    assert completion.text == "ok" and len(s.times) == 2
    with pytest.raises(LLMRequestFailed) as info:
        serve([cut], store,
              lambda c: c.complete([{"role": "user", "content": "y"}], SamplingParams()),
              wire=wire, max_attempts=3)
    assert info.value.reason == "llm_malformed"
    assert store.count_responses() == 1  # only the good answer was cached


@pytest.mark.parametrize("step,reason", [
    (status(400, message="bad response_format"), "llm_bad_request"),
    (status(422), "llm_bad_request"),
    (status(500, message="1 validation error: ('body', 'response_format')"), "llm_bad_request"),
])
def test_permanent_failures_are_not_retried(store: RunStore, step: Step, reason: str,
                                            wire: str) -> None:
    with pytest.raises(LLMRequestFailed) as info:
        serve([step], store, complete, wire=wire)
    assert info.value.reason == reason


@pytest.mark.parametrize("code,error", [(401, AuthenticationFailed),
                                        (403, AuthenticationFailed), (404, ModelNotFound)])
def test_fatal_statuses(store: RunStore, code: int, error: type[Exception], wire: str) -> None:
    with pytest.raises(error):
        serve([status(code)], store, complete, wire=wire)


def models_list(client: LLMClient) -> Awaitable[Any]:
    return client.list_models()


def test_the_model_list_goes_over_the_wire_with_the_sdk_verdicts(
        store: RunStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNTH_API_KEY", "sk-models-test")
    _no_env_proxy(monkeypatch)
    listing = {"object": "list", "data": [{"id": "a", "object": "model"}, {"id": "b"}]}
    served, s = serve([("status", 200, {}, json.dumps(listing).encode())], store, models_list)
    assert served == ["a", "b"]
    assert s.heads[0].startswith("GET /v1/models ")
    assert "authorization: bearer sk-models-test" in s.heads[0].lower()
    assert serve([status(404)], store, models_list)[0] == []  # no /models: requests will tell
    for code, match in [(401, "refused the API key"), (403, "denied access")]:
        with pytest.raises(AuthenticationFailed, match=match):
            serve([status(code)], store, models_list)
    with pytest.raises(LLMError, match="answered HTTP 502"):
        serve([status(502)], store, models_list)
    with pytest.raises(LLMError, match="not a model list"):
        serve([("status", 200, {}, b"<html>")], store, models_list)
    with pytest.raises(EndpointUnreachable, match="APIConnectionError"):
        serve([("reset",)], store, models_list)


def test_same_cache_key_and_entry_as_the_httpx_seam(store: RunStore, tmp_path: Any) -> None:
    params = SamplingParams(temperature=0.2, max_tokens=9, seed=3,
                            response_format={"type": "json_object"})
    via_aiohttp, s = serve([ok("same")], store, lambda c: c.complete(MSG, params, sample=2))
    other = RunStore(tmp_path / "other")

    def handler(request: httpx.Request) -> httpx.Response:
        assert json.loads(request.content) == s.bodies[0]  # the same request body on the wire
        return httpx.Response(200, json=chat_response("same"))

    try:
        via_httpx = asyncio.run(mock_client(handler, other).complete(MSG, params, sample=2))
        key = cache_key("mock-model", MSG, params, 2)
        assert via_aiohttp.key == via_httpx.key == key
        assert store.get_response(key) == other.get_response(key)
    finally:
        other.close()
    # the run directory resumes: the answer now comes from the cache, nothing is sent
    again, s2 = serve([status(500)], store, lambda c: c.complete(MSG, params, sample=2))
    assert again.cached and again.text == "same" and s2.times == []


@pytest.mark.parametrize("body", [b"", b"null", b"[1, 2]", b'{"choices": [1]}',
                                  b'{"choices": [ {"mess', b"<html>502</html>"])
def test_parse_completion_rejects_bodies_that_are_no_completion(body: bytes) -> None:
    with pytest.raises(MalformedResponse):
        parse_completion(body)


def test_parse_completion_reads_logprobs_and_usage() -> None:
    body = chat_response("hi")
    body["choices"][0]["logprobs"] = {"content": [  # type: ignore[index]
        {"token": "hi", "logprob": -0.1, "top_logprobs": [{"token": "hi", "logprob": -0.1}]}]}
    c = parse_completion(json.dumps(body).encode())
    assert c.text == "hi" and c.tokens_in == 3 and c.tokens_out == 5
    assert c.logprobs == [{"token": "hi", "bytes": None, "logprob": -0.1,
                           "top_logprobs": [{"token": "hi", "bytes": None, "logprob": -0.1}]}]
    with pytest.raises(LLMRequestFailed) as info:
        parse_completion(b'{"choices": []}')
    assert info.value.reason == "llm_empty"



def _no_env_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def test_env_proxy_is_honoured_as_the_sdk_did(store: RunStore,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP_PROXY / NO_PROXY apply to chat completions as they did over the SDK's httpx."""
    _no_env_proxy(monkeypatch)
    # The scripted server plays the proxy: the request for a host that does not resolve
    # reaches it in absolute form.
    proxy = Scripted([ok("proxied")])

    async def via_proxy(client: LLMClient) -> Any:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")  # read on first use
        return await complete(client)

    completion, _ = serve([], store, via_proxy, base_url="http://synth-proxy-test.invalid:9/v1",
                          scripted=proxy)
    assert completion.text == "proxied"
    assert proxy.heads[0].startswith(
        "POST http://synth-proxy-test.invalid:9/v1/chat/completions HTTP/1.1")
    # NO_PROXY: a direct connection although HTTP_PROXY names a port nothing listens on
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    completion, s = serve([ok("direct")], store,
                          lambda c: c.complete([{"role": "user", "content": "d"}],
                                               SamplingParams()))
    assert completion.text == "direct" and s.heads[0].startswith("POST /v1/chat/completions")


def test_api_key_is_sent_and_never_logged(store: RunStore, monkeypatch: pytest.MonkeyPatch,
                                          caplog: pytest.LogCaptureFixture, wire: str) -> None:
    key = "sk-synth-test-4f9c2a7e1b"
    monkeypatch.setenv("SYNTH_API_KEY", key)
    _no_env_proxy(monkeypatch)
    caplog.set_level("DEBUG")
    # a 5xx, a reset and a garbled 200 (all retried), then a 401 that ends the run
    scripted = Scripted([status(503), ("reset",), ("status", 200, {}, b"<html>"), status(401)])
    with pytest.raises(AuthenticationFailed) as info:
        serve([], store, complete, wire=wire, scripted=scripted, max_attempts=5)
    assert len(scripted.heads) == 4
    assert all(f"authorization: bearer {key}" in h.lower() for h in scripted.heads)
    chain: BaseException | None = info.value
    while chain is not None:  # the error, and every error it was raised from
        assert key not in str(chain) and key not in repr(chain)
        chain = chain.__cause__ or chain.__context__
    assert key not in caplog.text


def test_generating_does_not_import_the_sdk() -> None:
    """The SDK's import is a second of start-up; only the Batch and Files APIs need it."""
    import subprocess
    import sys

    code = ("import sys, synth.cli, synth.jobs, synth.llm.client, synth.llm.endpoint; "
            "print('openai' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
