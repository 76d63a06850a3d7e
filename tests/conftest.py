"""Shared fixtures: a fake OpenAI-compatible server process, the embedded real server, and an
LLMClient wired to an ``httpx.MockTransport`` handler."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from synth.config import LLMConfig
from synth.llm.client import LLMClient
from synth.llm.wire import HttpxWire
from synth.store import RunStore

TESTS = Path(__file__).parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@dataclass
class FakeEndpoint:
    base_url: str
    log: Path
    proc: subprocess.Popen[bytes]

    def requests(self) -> list[str]:
        """sha256 of every completion request body the server received, in order."""
        if not self.log.exists():
            return []
        return [line for line in self.log.read_text().splitlines() if line]


def start_fake(tmp: Path, delay: float = 0.0, api_key: str | None = None, port: int = 0,
               garbage_every: int = 0, extra: list[str] | None = None) -> FakeEndpoint:
    stamp = time.monotonic_ns()
    port_file = tmp / f"port-{stamp}"
    log = tmp / f"fake-requests-{stamp}.log"  # one log per server: tests count each one's
    cmd = [sys.executable, str(TESTS / "fake_openai.py"), "--port-file", str(port_file),
           "--delay", str(delay), "--log", str(log), "--port", str(port),
           "--garbage-every", str(garbage_every)]
    if api_key:
        cmd += ["--api-key", api_key]
    cmd += extra or []
    proc = subprocess.Popen(cmd)
    deadline = time.monotonic() + 20
    while not port_file.exists():
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError("fake server did not start")
        time.sleep(0.02)
    return FakeEndpoint(f"http://127.0.0.1:{port_file.read_text()}/v1", log, proc)


@pytest.fixture
def fake_server(tmp_path: Path) -> Iterator[Callable[..., FakeEndpoint]]:
    """Factory for fake endpoint processes; all are stopped after the test."""
    started: list[FakeEndpoint] = []

    def make(delay: float = 0.0, api_key: str | None = None, port: int = 0,
             garbage_every: int = 0, extra: list[str] | None = None) -> FakeEndpoint:
        endpoint = start_fake(tmp_path, delay, api_key, port, garbage_every, extra)
        started.append(endpoint)
        return endpoint

    yield make
    for endpoint in started:
        if endpoint.proc.poll() is None:
            endpoint.proc.terminate()
        endpoint.proc.wait(timeout=10)


@pytest.fixture(scope="session")
def embedded_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One embedded llama.cpp server (SmolLM2-135M) for every e2e test of the session."""
    from synth.llm.server import EmbeddedServer

    log = tmp_path_factory.mktemp("embedded") / "server.log"
    with EmbeddedServer(log_path=log) as server:
        yield server.base_url


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RunStore]:
    with RunStore(tmp_path / "run") as s:
        s.begin("test")
        yield s


def mock_wire(handler: Callable[[httpx.Request], Any], timeout_s: float = 600.0) -> HttpxWire:
    """A wire whose requests go to ``handler`` (sync or async, through an
    ``httpx.MockTransport``), not a socket."""
    return HttpxWire(httpx.AsyncClient(transport=httpx.MockTransport(handler)), timeout_s)


def mock_client(handler: Callable[[httpx.Request], httpx.Response], store: RunStore,
                **config: object) -> LLMClient:
    """An LLMClient whose requests go to ``handler`` (the client's own code, all of it, over
    a :func:`mock_wire`)."""
    defaults: dict[str, object] = {"backoff_base_s": 0.01, "backoff_max_s": 0.05,
                                   "max_attempts": 4}
    defaults.update(config)
    cfg = LLMConfig(**defaults)  # type: ignore[arg-type]
    return LLMClient("http://mock.local/v1", "mock-model", store, cfg, Counter(),
                     wire=mock_wire(handler, cfg.timeout_s))


def chat_response(text: str, finish_reason: str = "stop") -> dict[str, object]:
    return {
        "id": "x", "object": "chat.completion", "created": 0, "model": "mock-model",
        "choices": [{"index": 0, "finish_reason": finish_reason,
                     "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8},
    }


async def read_request(reader: asyncio.StreamReader) -> tuple[str, bytes]:
    """One HTTP/1.1 request off a raw server stream: its head (latin-1) and its body."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    length = 0
    for line in head.split("\r\n"):
        if line.lower().startswith("content-length:"):
            length = int(line.split(":", 1)[1])
    return head, await reader.readexactly(length) if length else b""
