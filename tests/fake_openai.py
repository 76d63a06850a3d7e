"""A tiny OpenAI-compatible chat server for tests and benchmarks (stdlib asyncio only).

Answers ``GET /v1/models`` and ``POST /v1/chat/completions`` with a deterministic reply derived
from the request (a codegen sample, or an accepting verdict for discriminator prompts),
optionally after ``--delay`` seconds, and appends one line per completion request to ``--log``
(the sha256 of the request body) so tests can count what the endpoint saw. ``--api-key`` makes
it answer 401 to any other key. ``--garbage-every N`` answers a garbled 200 body (truncated JSON,
as a broken proxy sends) the first time it sees about one request body in N.

Run: ``python tests/fake_openai.py --port 0 --port-file P`` (the bound port is written to P).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import signal
from pathlib import Path
from typing import Any

MODEL = "fake-model"


def reply_for(body: dict[str, Any]) -> str:
    """A well-formed answer that depends on the prompt, in the requested shape.

    Discriminator requests (their prompt lists ``Rules:``) get a verdict that passes every
    rule; generator requests get a codegen problem and solution, or, when a JSON schema asks
    for other fields, every field filled.
    """
    prompt = body["messages"][-1]["content"]
    rules = re.findall(r"^\d+\. (\w+): ", prompt, re.MULTILINE) if "\nRules:\n" in prompt else []
    if rules:
        if body.get("response_format"):
            return json.dumps({**{r: {"reason": "fine", "answer": "yes"} for r in rules},
                               "verdict": "yes"})
        return "\n".join(f"{i}. {r}: yes - fine" for i, r in enumerate(rules, 1)) + "\nVerdict: yes"
    tag = hashlib.sha256(prompt.encode()).hexdigest()[:12]
    problem = f"Write a function `f_{tag}` that returns the string '{tag}'."
    solution = f"```python\ndef f_{tag}():\n    return '{tag}'\n```"
    rf = body.get("response_format") or {}
    schema = rf.get("schema") or rf.get("json_schema", {}).get("schema") or {}
    keys = list(schema.get("properties", {}))
    if keys and keys != ["problem", "solution"]:
        return json.dumps({k: solution if k == "solution" else f"{k} {tag}" for k in keys})
    if rf:
        return json.dumps({"problem": problem, "solution": solution})
    return f"[Problem Description]\n{problem}\n\n[Solution]\n{solution}\n"


GARBAGE = b'{"choices": [ {"mess'


class FakeServer:
    def __init__(self, delay: float, log: Path | None, api_key: str | None,
                 garbage_every: int = 0, crash: bool = False) -> None:
        self.crash = crash
        self.delay = delay
        self.log = open(log, "a", buffering=1) if log else None  # noqa: SIM115
        self.api_key = api_key
        self.garbage_every = garbage_every
        self.garbled: set[str] = set()
        self.created = 1_700_000_000

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                length = int(headers.get("content-length", "0"))
                raw = await reader.readexactly(length) if length else b""
                status, payload = await self.route(method, path, headers, raw)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                writer.write(
                    f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
                    f"content-length: {len(data)}\r\n\r\n".encode() + data)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def route(self, method: str, path: str, headers: dict[str, str],
                    raw: bytes) -> tuple[int, dict[str, Any] | bytes]:
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, {"error": {"message": "Incorrect API key provided", "type": "auth"}}
        if method == "GET" and path.endswith("/models"):
            return 200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]}
        if method == "POST" and path.endswith("/chat/completions"):
            body = json.loads(raw)
            if body.get("model") != MODEL:
                return 404, {"error": {"message": f"model {body.get('model')} not found"}}
            if self.crash:  # a llama.cpp build that faults on its first matrix product
                os.kill(os.getpid(), signal.SIGSEGV)
            digest = hashlib.sha256(raw).hexdigest()
            if self.log is not None:
                self.log.write(digest + "\n")
            if (self.garbage_every and int(digest[:8], 16) % self.garbage_every == 0
                    and digest not in self.garbled):
                self.garbled.add(digest)
                return 200, GARBAGE
            if self.delay:
                await asyncio.sleep(self.delay)
            text = reply_for(body)
            return 200, {
                "id": "chatcmpl-fake", "object": "chat.completion", "created": self.created,
                "model": MODEL,
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30},
            }
        return 404, {"error": {"message": f"no route {method} {path}"}}


async def serve(port: int, port_file: Path | None, delay: float, log: Path | None,
                api_key: str | None, garbage_every: int = 0, crash: bool = False) -> None:
    fake = FakeServer(delay, log, api_key, garbage_every, crash)
    server = await asyncio.start_server(fake.handle, "127.0.0.1", port, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    if port_file is not None:
        tmp = port_file.with_suffix(".tmp")
        tmp.write_text(str(bound))
        os.replace(tmp, port_file)
    async with server:
        await server.serve_forever()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", type=Path)
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--log", type=Path)
    ap.add_argument("--api-key")
    ap.add_argument("--garbage-every", type=int, default=0)
    ap.add_argument("--crash-on-completion", action="store_true")
    args = ap.parse_args()
    try:
        asyncio.run(serve(args.port, args.port_file, args.delay, args.log, args.api_key,
                          args.garbage_every, args.crash_on_completion))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
