"""How one HTTP request goes over the wire: ``(status, headers, body)`` back, or
:class:`TransportFailure` when no answer came.

- :class:`StreamWire` (the default): HTTP/1.1 on asyncio's own streams, responses parsed by
  ``httptools`` (llhttp, Node's C parser), one keep-alive pool per endpoint. A request is one
  ``write`` and a reply a few ``data_received`` calls: the whole client (cache, journal,
  admission) costs 0.13-0.15 ms of CPU per request on it against a local server, 0.22-0.25 ms
  on aiohttp (``benchmarks/bench_client.py``), and at hundreds of requests a second the
  client's one Python core is what limits a run.
- :class:`AiohttpWire`: aiohttp, for endpoints the environment sends through a proxy
  (``HTTP(S)_PROXY``, ``NO_PROXY``); :class:`StreamWire` hands those to it.
- :class:`HttpxWire`: an httpx client (tests pass one with a ``MockTransport``).

Every wire fails the same way: :class:`TransportFailure` named ``APITimeoutError`` when the
timeout passed, ``APIConnectionError`` when no answer came (refused, reset, closed mid-answer,
an answer that is not HTTP), as the SDK named them. Header names come back lower-cased.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import urllib.request
import zlib
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

import httptools
import httpx
import orjson


class TransportFailure(Exception):
    """No answer: connection refused or reset, or the timeout passed."""

    def __init__(self, name: str, detail: str) -> None:
        super().__init__(detail)
        self.name = name  # APIConnectionError or APITimeoutError, as the SDK named them


def _timed_out() -> TransportFailure:
    return TransportFailure("APITimeoutError", "Request timed out.")


def _no_answer(exc: BaseException) -> TransportFailure:
    return TransportFailure("APIConnectionError",
                            f"Connection error: {exc.__class__.__name__}: {exc}")


class Wire(Protocol):
    """How one request (a chat-completion POST, the model list's GET) goes over the wire.
    (Not :class:`synth.llm.client.Transport`, an executor's sender of whole requests: each of
    its senders has a client, and that client a wire.)"""

    async def request(self, method: str, url: str, headers: dict[str, str],
                      body: bytes | None = None) -> tuple[int, Mapping[str, str], bytes]: ...

    async def aclose(self) -> None: ...


class _Closed(Exception):
    """The server closed the connection cleanly before a byte of the answer came (a kept-alive
    connection it had dropped as idle): the request may be sent again on a new one."""


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection carrying one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[tuple[int, dict[str, str], bytes]] | None = None
        self.headers: dict[str, str] = {}
        self.chunks: list[bytes] = []
        self.started = False  # a byte of the current answer has arrived
        self.framed = False  # the answer says where its body ends (length or chunks)
        self.until_eof = False  # its head is in and its body runs until the server closes
        self.closed = False
        self.keep_alive = False  # the last answer allows another request on this connection
        self.idle_since = 0.0

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.started = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(exc)
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        if self.until_eof:
            self._done()  # a body that runs until the server closes: the close is its end
        elif not self.started and exc is None:
            self._fail(_Closed())
        else:
            self._fail(exc or ConnectionResetError("the server closed the connection "
                                                   "in the middle of its answer"))

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.headers = {}
        self.chunks = []
        self.framed = False
        self.until_eof = False

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        if key in ("content-length", "transfer-encoding"):
            self.framed = True
        have = self.headers.get(key)
        self.headers[key] = text if have is None else f"{have}, {text}"

    def on_headers_complete(self) -> None:
        self.until_eof = not self.framed

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        self.until_eof = False
        if 100 <= self.parser.get_status_code() < 200:
            return  # an interim answer (100 Continue, 103 Early Hints): the real one follows
        # asked here: once feed_data returns, the parser has reset and says False
        self.keep_alive = self.parser.should_keep_alive()
        self._done()

    # ours
    def send(self, data: bytes) -> asyncio.Future[tuple[int, dict[str, str], bytes]]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.started = self.keep_alive = False
        self.transport.write(data)
        return self.waiter

    def reusable(self) -> bool:
        return (not self.closed and self.keep_alive
                and self.transport is not None and not self.transport.is_closing())

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def _done(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is None or waiter.done():
            return
        body = self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
        try:
            body = _decoded(body, self.headers.get("content-encoding"))
        except zlib.error as exc:
            waiter.set_exception(exc)
            return
        waiter.set_result((self.parser.get_status_code(), self.headers, body))

    def _fail(self, exc: BaseException) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)


def _decoded(body: bytes, encoding: str | None) -> bytes:
    """The body without its ``Content-Encoding`` (we ask for gzip, which OpenAI's API uses)."""
    if not encoding or encoding == "identity" or not body:
        return body
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompress(body, 16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        try:
            return zlib.decompress(body)
        except zlib.error:  # raw deflate, as some servers send it
            return zlib.decompress(body, -zlib.MAX_WBITS)
    raise zlib.error(f"unsupported content-encoding {encoding!r}")


_DEFAULT_PORTS = {"http": 80, "https": 443}


class _Endpoint:
    """One ``scheme://host:port``: how to connect, and its idle connections (newest last)."""

    def __init__(self, scheme: str, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.ssl: ssl.SSLContext | None = ssl.create_default_context() if scheme == "https" \
            else None
        name = f"[{host}]" if ":" in host else host  # an IPv6 literal goes in brackets
        self.host_header = name if port == _DEFAULT_PORTS[scheme] else f"{name}:{port}"
        self.idle: list[_Connection] = []


def _header_block(headers: Mapping[str, str]) -> bytes:
    lines = []
    for name, value in headers.items():
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
            raise ValueError(f"header {name!r} holds a line break")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines).encode("latin-1")


class StreamWire:
    """HTTP/1.1 with keep-alive over asyncio streams, parsed by httptools (the default wire).

    One pool of idle connections per endpoint and event loop; a request takes the newest idle
    connection or opens one. A kept-alive connection the server closed before answering (its
    idle timeout) is replaced and the request sent again at once, as other clients do; any
    other failure is the caller's to retry. Idle connections older than ``keepalive_s`` are
    closed rather than reused. URLs the environment routes through a proxy go over
    :class:`AiohttpWire`.
    """

    def __init__(self, timeout_s: float, keepalive_s: float = 60.0) -> None:
        self.timeout_s = timeout_s
        self.keepalive_s = keepalive_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._endpoints: dict[tuple[str, str, int], _Endpoint] = {}
        # (method, url) -> (endpoint, request line + fixed headers), None when proxied
        self._targets: dict[tuple[str, str], tuple[_Endpoint, bytes] | None] = {}
        self._heads: dict[tuple[tuple[str, str], ...], bytes] = {}
        self._proxied: AiohttpWire | None = None

    async def request(self, method: str, url: str, headers: dict[str, str],
                      body: bytes | None = None) -> tuple[int, Mapping[str, str], bytes]:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop: the old one's connections are gone
            self._drop()
            self._loop = loop
        target = self._target(method, url)
        if target is None:
            if self._proxied is None:
                self._proxied = AiohttpWire(self.timeout_s)
            return await self._proxied.request(method, url, headers, body)
        endpoint, start = target
        key = tuple(headers.items())
        head = self._heads.get(key)
        if head is None:
            head = self._heads[key] = _header_block(headers)
        if body is None:
            data = b"".join((start, head, b"\r\n"))
        else:
            data = b"".join((start, head, b"content-length: %d\r\n\r\n" % len(body), body))
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._exchange(loop, endpoint, data)
        except TimeoutError as exc:
            raise _timed_out() from exc
        except (OSError, httptools.HttpParserError, zlib.error) as exc:
            raise _no_answer(exc) from exc

    async def _exchange(self, loop: asyncio.AbstractEventLoop, endpoint: _Endpoint,
                        data: bytes) -> tuple[int, dict[str, str], bytes]:
        while True:
            conn = self._idle(endpoint)
            fresh = conn is None
            if conn is None:
                _, conn = await loop.create_connection(
                    _Connection, endpoint.host, endpoint.port, ssl=endpoint.ssl,
                    server_hostname=endpoint.host if endpoint.ssl else None)
            try:
                status, headers, body = await conn.send(data)
            except _Closed:
                conn.abort()
                if fresh:
                    raise ConnectionResetError("the server closed the connection "
                                               "without answering") from None
                continue  # a stale kept-alive connection: once more on a new one
            except BaseException:  # failed, timed out or cancelled mid-answer: unusable
                conn.abort()
                raise
            if conn.reusable():
                conn.idle_since = time.monotonic()
                endpoint.idle.append(conn)
            else:
                conn.abort()
            return status, headers, body

    def _idle(self, endpoint: _Endpoint) -> _Connection | None:
        idle = endpoint.idle
        while idle:
            conn = idle.pop()
            if conn.closed or conn.transport is None or conn.transport.is_closing():
                continue
            if time.monotonic() - conn.idle_since > self.keepalive_s:
                conn.abort()  # the oldest are first: every one left is older still
                for old in idle:
                    old.abort()
                idle.clear()
                return None
            return conn
        return None

    def _target(self, method: str, url: str) -> tuple[_Endpoint, bytes] | None:
        hit = self._targets.get((method, url), False)
        if hit is not False:
            return hit  # type: ignore[return-value]
        parts = urlsplit(url)
        scheme, host = parts.scheme.lower(), parts.hostname or ""
        if scheme not in _DEFAULT_PORTS or not host:
            raise _no_answer(ValueError(f"not an http(s) URL: {url!r}"))
        port = parts.port or _DEFAULT_PORTS[scheme]
        proxy = urllib.request.getproxies().get(scheme)
        if proxy and not urllib.request.proxy_bypass(host):
            self._targets[(method, url)] = None
            return None
        endpoint = self._endpoints.get((scheme, host, port))
        if endpoint is None:
            endpoint = self._endpoints[(scheme, host, port)] = _Endpoint(scheme, host, port)
        path = parts.path or "/"
        if parts.query:
            path = f"{path}?{parts.query}"
        start = (f"{method} {path} HTTP/1.1\r\nhost: {endpoint.host_header}\r\n"
                 "accept-encoding: gzip, deflate\r\nuser-agent: synth\r\n").encode("latin-1")
        self._targets[(method, url)] = (endpoint, start)
        return endpoint, start

    def _drop(self) -> None:
        for endpoint in self._endpoints.values():
            for conn in endpoint.idle:
                if self._loop is not None and not self._loop.is_closed():
                    conn.abort()
            endpoint.idle.clear()

    async def aclose(self) -> None:
        self._drop()
        self._endpoints.clear()
        self._targets.clear()
        if self._proxied is not None:
            await self._proxied.aclose()
            self._proxied = None


class AiohttpWire:
    """aiohttp with one keep-alive connection pool per event loop (proxied endpoints)."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._session: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # url -> (parsed url, proxy, proxy auth) from HTTP(S)_PROXY / NO_PROXY, once per URL
        self._proxies: dict[str, tuple[Any, Any, Any]] = {}

    def _get_session(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._session is None or self._loop is not loop or self._session.closed:
            import aiohttp  # imported on first use: commands without an LLM never pay for it

            # Our semaphore bounds the requests in flight, so the pool itself is unbounded;
            # idle connections are kept alive for the next request.
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60)
            # No cookie jar: an API sets none we need, and matching cookies costs per request.
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                json_serialize=lambda o: orjson.dumps(o).decode(),
                cookie_jar=aiohttp.DummyCookieJar())
            self._loop = loop
        return self._session

    async def request(self, method: str, url: str, headers: dict[str, str],
                      body: bytes | None = None) -> tuple[int, Mapping[str, str], bytes]:
        import aiohttp

        session = self._get_session()
        target, proxy, proxy_auth = self._target(url)
        try:
            async with session.request(method, target, data=body, headers=headers,
                                       proxy=proxy, proxy_auth=proxy_auth) as resp:
                return resp.status, resp.headers, await resp.read()
        except TimeoutError as exc:
            raise _timed_out() from exc
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, OSError) as exc:
            raise _no_answer(exc) from exc

    def _target(self, url: str) -> tuple[Any, Any, Any]:
        """``url`` parsed once, and the proxy the environment names for it
        (HTTP_PROXY/HTTPS_PROXY, NO_PROXY) as the SDK's httpx client honoured them; (None,
        None) for none.

        Looked up here once per URL rather than with the session's ``trust_env``: that does a
        thread hop per request for the lookup, and a ~/.netrc entry for the host would collide
        with our Authorization header.
        """
        hit = self._proxies.get(url)
        if hit is None:
            from aiohttp.helpers import get_env_proxy_for_url
            from yarl import URL

            target = URL(url)
            try:
                proxy, auth = get_env_proxy_for_url(target)
            except LookupError:
                proxy, auth = None, None
            hit = self._proxies[url] = (target, proxy, auth)
        return hit

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            try:
                await self._session.close()
            except RuntimeError:  # its event loop is gone; nothing left to close
                pass
        self._session = None


class HttpxWire:
    """An httpx client as the wire (tests pass one with a ``MockTransport``)."""

    def __init__(self, client: httpx.AsyncClient, timeout_s: float) -> None:
        self.client = client
        self.timeout_s = timeout_s

    async def request(self, method: str, url: str, headers: dict[str, str],
                      body: bytes | None = None) -> tuple[int, Mapping[str, str], bytes]:
        try:
            resp = await self.client.request(method, url, content=body, headers=headers,
                                             timeout=self.timeout_s)
            return resp.status_code, resp.headers, resp.content
        except httpx.TimeoutException as exc:
            raise _timed_out() from exc
        except httpx.TransportError as exc:
            raise _no_answer(exc) from exc

    async def aclose(self) -> None:
        await self.client.aclose()
