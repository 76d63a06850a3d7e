"""A tiny OpenAI-compatible chat server for tests and benchmarks (stdlib asyncio only).

Answers ``GET /v1/models`` and ``POST /v1/chat/completions`` with a deterministic reply derived
from the request (a codegen sample, or an accepting verdict for discriminator prompts),
optionally after ``--delay`` seconds, and appends one line per completion request to ``--log``
(the sha256 of the request body) so tests can count what the endpoint saw. ``--api-key`` makes
it answer 401 to any other key. ``--garbage-every N`` answers a garbled 200 body (truncated JSON,
as a broken proxy sends) the first time it sees about one request body in N. ``--bodies FILE``
appends every completion request body as is (what left synth). ``--leak TOKEN`` puts TOKEN into
every generator reply, batch answers too (a model echoing or inventing a credential); replies
whose prompt hashes to an odd tag are then unparseable prose with TOKEN in it, so rejects carry
raw output too.

It also serves the Batch API's files and batches endpoints (``/v1/files``,
``/v1/files/{id}/content``, ``/v1/batches``, ``/v1/batches/{id}``, ``.../cancel``): a batch
advances one state per retrieve (validating → in_progress → completed) and answers each line
as ``/chat/completions`` would. ``--batch-fail-every K`` fails the first submission of every
request whose custom_id hashes to 0 mod K (HTTP 500 in the error file); ``--batch-expire-after
N`` lets each batch answer only N requests, then expire (the rest get ``batch_expired``).
Batch lines are logged to ``--batch-log``, not ``--log``.

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


def reply_for(body: dict[str, Any], leak: str | None = None) -> str:
    """A well-formed answer that depends on the prompt, in the requested shape.

    Discriminator requests (their prompt lists ``Rules:``) get a verdict that passes every
    rule; generator requests get a codegen problem, solution and passing tests, or, when a JSON
    schema asks for other fields, every field filled (a repair's information is a buggy
    variant the tests catch).
    """
    # A client's probe may send no messages (curator checks the endpoint that way).
    messages = body.get("messages") or [{"content": ""}]
    prompt = str(messages[-1].get("content") or "")
    rules = re.findall(r"^\d+\. (\w+): ", prompt, re.MULTILINE) if "\nRules:\n" in prompt else []
    if rules:
        if body.get("response_format"):
            return json.dumps({**{r: {"reason": "fine", "answer": "yes"} for r in rules},
                               "verdict": "yes"})
        return "\n".join(f"{i}. {r}: yes - fine" for i, r in enumerate(rules, 1)) + "\nVerdict: yes"
    digest = hashlib.sha256(prompt.encode()).hexdigest()
    tag = digest[:12]
    # the whole digest as the value: with only the tag, two answers' fixed wording made them
    # look like copies of each other to the loop's copied-example check now and then
    problem = f"Write a function `f_{tag}` that returns the string '{digest}'."
    solution = f"```python\ndef f_{tag}():\n    return '{digest}'\n```"
    # tests that pass on the solution; a repair's buggy variant fails them
    tests = f"```python\nassert f_{tag}() == '{digest}'\n```"
    buggy = f"def f_{tag}():\n    return 'bug'"
    if leak:
        if int(tag, 16) % 2:
            return f"Sorry, I cannot help. By the way the key is {leak}."
        solution = f"```python\nAPI_KEY = '{leak}'\n\ndef f_{tag}():\n    return '{digest}'\n```"
    rf = body.get("response_format") or {}
    schema = rf.get("schema") or rf.get("json_schema", {}).get("schema") or {}
    keys = list(schema.get("properties", {}))
    if keys and keys != ["problem", "solution", "tests"]:
        filled = {"solution": solution, "tests": tests, "information": buggy}
        return json.dumps({k: filled.get(k, f"{k} {tag}") for k in keys})
    if rf:
        return json.dumps({"problem": problem, "solution": solution, "tests": tests})
    return f"[Problem Description]\n{problem}\n\n[Solution]\n{solution}\n\n[Tests]\n{tests}\n"


def completion(body: dict[str, Any], created: int, leak: str | None = None) -> dict[str, Any]:
    text = reply_for(body, leak)
    return {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": created,
        "model": MODEL,
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30},
    }


GARBAGE = b'{"choices": [ {"mess'


class FakeServer:
    def __init__(self, delay: float, log: Path | None, api_key: str | None,
                 garbage_every: int = 0, crash: bool = False, bodies: Path | None = None,
                 leak: str | None = None, batch_fail_every: int = 0,
                 batch_expire_after: int = 0, batch_log: Path | None = None) -> None:
        self.crash = crash
        self.delay = delay
        self.log = open(log, "a", buffering=1) if log else None  # noqa: SIM115
        self.bodies = open(bodies, "ab", buffering=0) if bodies else None  # noqa: SIM115
        self.leak = leak
        self.batch_log = open(batch_log, "a", buffering=1) if batch_log else None  # noqa: SIM115
        self.api_key = api_key
        self.garbage_every = garbage_every
        self.garbled: set[str] = set()
        self.created = 1_700_000_000
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.fail_every = batch_fail_every
        self.expire_after = batch_expire_after
        self.seen: set[str] = set()

    # -- Batch API ----------------------------------------------------------------------------

    def _upload(self, headers: dict[str, str], raw: bytes) -> dict[str, Any]:
        boundary = headers["content-type"].split("boundary=", 1)[1].strip('"').encode()
        content = b""
        for part in raw.split(b"--" + boundary):
            head, _, data = part.partition(b"\r\n\r\n")
            if b'name="file"' in head:
                content = data[:-2] if data.endswith(b"\r\n") else data
        fid = f"file-{len(self.files) + 1}"
        self.files[fid] = content
        return {"id": fid, "object": "file", "bytes": len(content), "created_at": self.created,
                "filename": "input.jsonl", "purpose": "batch", "status": "processed"}

    def _store_file(self, lines: list[dict[str, Any]]) -> str | None:
        if not lines:
            return None
        fid = f"file-{len(self.files) + 1}"
        self.files[fid] = "".join(json.dumps(x) + "\n" for x in lines).encode()
        return fid

    def _run_batch(self, batch: dict[str, Any]) -> None:
        out: list[dict[str, Any]] = []
        err: list[dict[str, Any]] = []
        lines = [json.loads(x) for x in self.files[batch["input_file_id"]].splitlines() if x]
        for i, item in enumerate(lines):
            cid = item["custom_id"]
            if self.batch_log is not None:
                self.batch_log.write(cid + "\n")
            if self.expire_after and i >= self.expire_after:
                err.append({"id": f"r{i}", "custom_id": cid, "response": None,
                            "error": {"code": "batch_expired",
                                      "message": "This request could not be executed before "
                                                 "the completion window expired."}})
                continue
            first = cid not in self.seen
            self.seen.add(cid)
            if first and self.fail_every and int(cid[:8], 16) % self.fail_every == 0:
                err.append({"id": f"r{i}", "custom_id": cid, "error": None, "response": {
                    "status_code": 500, "body": {"error": {"message": "server error",
                                                           "code": "server_error"}}}})
                continue
            out.append({"id": f"r{i}", "custom_id": cid, "error": None, "response": {
                "status_code": 200, "request_id": f"req{i}",
                "body": completion(item["body"], self.created, self.leak)}})
        batch["status"] = "expired" if self.expire_after and len(lines) > self.expire_after \
            else "completed"
        batch["output_file_id"] = self._store_file(out)
        batch["error_file_id"] = self._store_file(err)
        batch["request_counts"] = {"total": len(lines), "completed": len(out),
                                   "failed": len(err)}

    def _batch_route(self, method: str, path: str, headers: dict[str, str],
                     raw: bytes) -> tuple[int, Any] | None:
        parts = path.split("?", 1)[0].rstrip("/").split("/")  # ['', 'v1', 'files', ...]
        if len(parts) < 3 or parts[2] not in ("files", "batches"):
            return None
        if parts[2] == "files":
            if method == "POST" and len(parts) == 3:
                return 200, self._upload(headers, raw)
            if method == "GET" and len(parts) == 5 and parts[4] == "content":
                data = self.files.get(parts[3])
                return (200, data) if data is not None else (404, {"error": {"message": "no"}})
            return None
        if method == "POST" and len(parts) == 3:
            req = json.loads(raw)
            if req.get("input_file_id") not in self.files:
                return 400, {"error": {"message": "no such file"}}
            bid = f"batch_{len(self.batches) + 1}"
            n = len([x for x in self.files[req["input_file_id"]].splitlines() if x])
            self.batches[bid] = {
                "id": bid, "object": "batch", "endpoint": req["endpoint"],
                "completion_window": req["completion_window"], "created_at": self.created,
                "input_file_id": req["input_file_id"], "status": "validating",
                "output_file_id": None, "error_file_id": None, "errors": None,
                "metadata": req.get("metadata"),
                "request_counts": {"total": n, "completed": 0, "failed": 0}}
            return 200, self.batches[bid]
        if method == "GET" and len(parts) == 3:
            return 200, {"object": "list", "data": list(self.batches.values()),
                         "has_more": False}
        batch = self.batches.get(parts[3]) if len(parts) > 3 else None
        if batch is None:
            return 404, {"error": {"message": "no such batch"}}
        if method == "POST" and len(parts) == 5 and parts[4] == "cancel":
            if batch["status"] in ("validating", "in_progress"):
                batch["status"] = "cancelled"
            return 200, batch
        if method == "GET" and len(parts) == 4:
            if batch["status"] == "validating":
                batch["status"] = "in_progress"
            elif batch["status"] == "in_progress":
                self._run_batch(batch)
            return 200, batch
        return None

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
                ctype = "application/json"
                if isinstance(payload, bytes):
                    data = payload
                    if payload is not GARBAGE:  # garbage poses as a JSON body
                        ctype = "application/octet-stream"
                else:
                    data = json.dumps(payload).encode()
                writer.write(
                    f"HTTP/1.1 {status} X\r\ncontent-type: {ctype}\r\n"
                    f"content-length: {len(data)}\r\n\r\n".encode() + data)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def route(self, method: str, path: str, headers: dict[str, str],
                    raw: bytes) -> tuple[int, Any]:
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, {"error": {"message": "Incorrect API key provided", "type": "auth"}}
        batch = self._batch_route(method, path, headers, raw)
        if batch is not None:
            return batch
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
            if self.bodies is not None:
                self.bodies.write(raw + b"\n")
            if (self.garbage_every and int(digest[:8], 16) % self.garbage_every == 0
                    and digest not in self.garbled):
                self.garbled.add(digest)
                return 200, GARBAGE
            if self.delay:
                await asyncio.sleep(self.delay)
            return 200, completion(body, self.created, self.leak)
        return 404, {"error": {"message": f"no route {method} {path}"}}


async def serve(port: int, port_file: Path | None, delay: float, log: Path | None,
                api_key: str | None, garbage_every: int = 0, crash: bool = False,
                bodies: Path | None = None, leak: str | None = None, **batch: Any) -> None:
    fake = FakeServer(delay, log, api_key, garbage_every, crash, bodies, leak, **batch)
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
    ap.add_argument("--bodies", type=Path)
    ap.add_argument("--leak")
    ap.add_argument("--batch-fail-every", type=int, default=0)
    ap.add_argument("--batch-expire-after", type=int, default=0)
    ap.add_argument("--batch-log", type=Path)
    args = ap.parse_args()
    try:
        asyncio.run(serve(args.port, args.port_file, args.delay, args.log, args.api_key,
                          args.garbage_every, args.crash_on_completion, args.bodies, args.leak,
                          batch_fail_every=args.batch_fail_every,
                          batch_expire_after=args.batch_expire_after,
                          batch_log=args.batch_log))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
