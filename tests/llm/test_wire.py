"""The stream wire (HTTP/1.1 on asyncio streams, httptools) against raw local servers: kept-alive
connections reused, stale ones replaced without a retry, every way a body can be framed or
encoded, TLS, and every way an answer can fail to come."""

from __future__ import annotations

import asyncio
import gzip
import json
import shutil
import ssl
import subprocess
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import chat_response, read_request

from synth.config import LLMConfig
from synth.llm.client import LLMClient, SamplingParams
from synth.llm.wire import StreamWire, TransportFailure
from synth.store import RunStore

Answer = Callable[[int, str], Awaitable[bytes | None]]


class Server:
    """A raw HTTP/1.1 server: ``answer(n, head)`` gives the bytes to write for the n-th request
    (None: close without answering). Counts connections and requests."""

    def __init__(self, answer: Answer, close_after: int | None = None) -> None:
        self.answer = answer
        self.close_after = close_after  # close each connection after this many answers
        self.connections = 0
        self.requests = 0
        self.heads: list[str] = []
        self.writers: list[asyncio.StreamWriter] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        served = 0
        try:
            while True:
                head, _ = await read_request(reader)
                self.heads.append(head)
                self.requests += 1
                data = await self.answer(self.requests, head)
                if data is None:
                    break
                writer.write(data)
                await writer.drain()
                served += 1
                if self.close_after is not None and served >= self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def close_idle(self) -> None:
        for w in self.writers:
            w.close()


def response(body: bytes, status: int = 200, headers: str = "") -> bytes:
    return (f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n{headers}"
            f"content-length: {len(body)}\r\n\r\n").encode() + body


OK = json.dumps(chat_response("ok")).encode()


async def always_ok(n: int, head: str) -> bytes:
    return response(OK)


def run(server: Server, body: Callable[[str, StreamWire], Awaitable[Any]],
        ssl_ctx: ssl.SSLContext | None = None, timeout_s: float = 5.0,
        host: str = "127.0.0.1") -> Any:
    async def main() -> Any:
        srv = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=ssl_ctx)
        port = srv.sockets[0].getsockname()[1]
        wire = StreamWire(timeout_s)
        scheme = "https" if ssl_ctx else "http"
        try:
            return await body(f"{scheme}://{host}:{port}/v1/chat/completions", wire)
        finally:
            await wire.aclose()
            srv.close()

    return asyncio.run(main())


def post(url: str, wire: StreamWire) -> Awaitable[tuple[int, Any, bytes]]:
    return wire.request("POST", url, {"Authorization": "Bearer k"}, b'{"x": 1}')


def test_kept_alive_connection_is_reused() -> None:
    server = Server(always_ok)

    async def body(url: str, wire: StreamWire) -> None:
        for _ in range(5):
            status, headers, data = await post(url, wire)
            assert status == 200 and json.loads(data) == json.loads(OK)
            assert headers["content-type"] == "application/json"

    run(server, body)
    assert server.requests == 5 and server.connections == 1
    head = server.heads[0].lower()
    assert head.startswith("post /v1/chat/completions http/1.1\r\n")
    assert "host: 127.0.0.1:" in head and "content-length: 8\r\n" in head
    assert "authorization: bearer k\r\n" in head


def test_concurrent_requests_take_their_own_connections() -> None:
    async def slow(n: int, head: str) -> bytes:
        await asyncio.sleep(0.05)
        return response(OK)

    server = Server(slow)

    async def body(url: str, wire: StreamWire) -> None:
        await asyncio.gather(*(post(url, wire) for _ in range(4)))
        await asyncio.gather(*(post(url, wire) for _ in range(4)))  # the same four again

    run(server, body)
    assert server.requests == 8 and server.connections == 4


def test_connection_the_server_dropped_while_idle_is_replaced_without_a_retry(
        tmp_path: Path) -> None:
    """A server's idle timeout (uvicorn: 5 s) closes kept-alive connections; the next
    request goes on a new one at once, with no backoff and no failure counted."""
    server = Server(always_ok)

    async def body(url: str, wire: StreamWire) -> None:
        base = url.rsplit("/chat/completions", 1)[0]
        with RunStore(tmp_path / "run") as store:
            stats: Counter[str] = Counter()
            client = LLMClient(base, "m", store, LLMConfig(backoff_base_s=5.0), stats,
                               wire=wire)
            await client.complete([{"role": "user", "content": "a"}], SamplingParams())
            server.close_idle()
            await asyncio.sleep(0.05)
            done = await client.complete([{"role": "user", "content": "b"}], SamplingParams())
            assert done.text == "ok"
            assert stats["retries"] == 0 and stats["requests"] == 2

    run(server, body)
    assert server.connections == 2


def test_a_connection_closed_as_the_request_is_written_is_sent_again_on_a_new_one() -> None:
    """The race the idle check cannot see: the server closes the kept-alive connection
    just after reading the next request, before answering a byte."""
    async def never_answer_second(n: int, head: str) -> bytes | None:
        return None if n == 2 else response(OK)

    server = Server(never_answer_second)

    async def body(url: str, wire: StreamWire) -> list[int]:
        return [(await post(url, wire))[0] for _ in range(2)]

    assert run(server, body) == [200, 200]
    assert server.requests == 3 and server.connections == 2


def test_a_fresh_connection_closed_without_an_answer_fails() -> None:
    async def nothing(n: int, head: str) -> None:
        return None

    server = Server(nothing)

    async def body(url: str, wire: StreamWire) -> None:
        with pytest.raises(TransportFailure) as info:
            await post(url, wire)
        assert info.value.name == "APIConnectionError"

    run(server, body)
    assert server.requests == 1  # not sent twice: only a reused connection is


def test_connection_close_is_honoured() -> None:
    async def closing(n: int, head: str) -> bytes:
        return response(OK, headers="connection: close\r\n")

    server = Server(closing, close_after=1)

    async def body(url: str, wire: StreamWire) -> None:
        for _ in range(3):
            assert (await post(url, wire))[0] == 200

    run(server, body)
    assert server.connections == 3


def test_interim_answers_are_skipped() -> None:
    async def hints(n: int, head: str) -> bytes:
        return (b"HTTP/1.1 100 Continue\r\n\r\n"
                b"HTTP/1.1 103 Early Hints\r\nlink: </x>; rel=preload\r\n\r\n" + response(OK))

    server = Server(hints)

    async def body(url: str, wire: StreamWire) -> list[tuple[int, bytes]]:
        return [((r := await post(url, wire))[0], r[2]) for _ in range(2)]

    assert run(server, body) == [(200, OK), (200, OK)]
    assert server.connections == 1


@pytest.mark.parametrize("frame", ["chunked", "until-close", "gzip", "deflate", "raw-deflate"])
def test_bodies_framed_and_encoded_every_way(frame: str) -> None:
    async def answer(n: int, head: str) -> bytes:
        if frame == "chunked":
            parts = [OK[:10], OK[10:25], OK[25:]]
            chunks = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts)
            return b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"
        if frame == "until-close":
            return b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n" + OK
        data = {"gzip": gzip.compress(OK), "deflate": zlib.compress(OK),
                "raw-deflate": zlib.compress(OK)[2:-4]}[frame]
        encoding = "gzip" if frame == "gzip" else "deflate"
        return response(data, headers=f"content-encoding: {encoding}\r\n")

    server = Server(answer, close_after=1 if frame == "until-close" else None)

    async def body(url: str, wire: StreamWire) -> bytes:
        status, _, data = await post(url, wire)
        assert status == 200
        return data

    assert run(server, body) == OK
    assert "accept-encoding: gzip, deflate" in server.heads[0].lower()


@pytest.mark.parametrize("answer,name", [
    (b"SMTP ready\r\n\r\n", "APIConnectionError"),  # not HTTP
    (b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{\"cho", "APIConnectionError"),  # cut
    (b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: 3\r\n\r\nabc",
     "APIConnectionError"),  # not gzip
    (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n", "APITimeoutError"),  # never finished
])
def test_answers_that_do_not_come_whole(answer: bytes, name: str) -> None:
    async def broken(n: int, head: str) -> bytes:
        return answer if n == 1 else response(OK)

    # the server closes after a cut answer; a never-finished one it leaves hanging
    server = Server(broken, close_after=None if name == "APITimeoutError" else 1)

    async def body(url: str, wire: StreamWire) -> None:
        with pytest.raises(TransportFailure) as info:
            await post(url, wire)
        assert info.value.name == name
        # the broken connection is not reused: the next request is answered
        assert (await post(url, wire))[0] == 200

    run(server, body, timeout_s=0.3)
    assert server.connections == 2


def test_refused_connection_and_bad_urls() -> None:
    async def main() -> None:
        wire = StreamWire(2.0)
        with pytest.raises(TransportFailure, match="APIConnectionError|Connection"):
            await wire.request("GET", "http://127.0.0.1:9/v1/models", {})
        with pytest.raises(TransportFailure, match="not an http"):
            await wire.request("GET", "ftp://127.0.0.1/v1/models", {})
        await wire.aclose()

    asyncio.run(main())


def test_a_cancelled_request_leaves_no_connection_behind() -> None:
    async def late(n: int, head: str) -> bytes:
        if n == 1:
            await asyncio.sleep(0.3)
        return response(json.dumps({"n": n}).encode())

    server = Server(late)

    async def body(url: str, wire: StreamWire) -> bytes:
        task = asyncio.ensure_future(post(url, wire))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return (await post(url, wire))[2]  # not the cancelled request's late answer

    assert json.loads(run(server, body)) == {"n": 2}
    assert server.connections == 2


def test_a_client_used_across_event_loops(tmp_path: Path) -> None:
    """Commands run several asyncio.run calls with one client: each loop gets its own pool."""
    wire = StreamWire(5.0)

    async def main() -> tuple[int, int]:
        server = Server(always_ok)
        srv = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        try:
            status, _, _ = await post(f"http://127.0.0.1:{port}/v1/chat/completions", wire)
            return status, server.connections
        finally:
            srv.close()

    assert asyncio.run(main()) == (200, 1)
    assert asyncio.run(main()) == (200, 1)
    asyncio.run(wire.aclose())


def test_header_values_with_line_breaks_are_refused() -> None:
    async def main() -> None:
        wire = StreamWire(1.0)
        with pytest.raises(ValueError, match="line break"):
            await wire.request("GET", "http://127.0.0.1:9/", {"Authorization": "a\r\nX: y"})

    asyncio.run(main())


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_https_with_the_ca_named_by_ssl_cert_file(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    server = Server(always_ok)

    async def body(url: str, wire: StreamWire) -> list[int]:
        return [(await post(url, wire))[0] for _ in range(3)]

    # not trusted: the certificate is refused, as any client would
    with pytest.raises(TransportFailure, match="CERTIFICATE_VERIFY_FAILED"):
        run(server, body, ssl_ctx=server_ctx, host="localhost")
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    server = Server(always_ok)
    assert run(server, body, ssl_ctx=server_ctx, host="localhost") == [200, 200, 200]
    assert server.connections == 1
