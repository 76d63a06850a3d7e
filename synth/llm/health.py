"""Endpoint health: notice an outage at once, pause instead of burning retries, resume or stop.

One :class:`Gate` per endpoint URL, shared by every client of that URL in the process. The
client waits at :meth:`Gate.admit` before each request and reports every attempt's outcome.

- An **external endpoint** gets a circuit breaker: after ``trip_after`` consecutive attempts
  that failed with a connection error, a timeout or a 5xx, the gate closes; requests already
  waiting stop retrying and wait; a probe asks ``GET /models`` with growing back-off and opens
  the gate as soon as the endpoint answers. An outage longer than ``max_outage_s`` fails the gate:
  every waiting request raises :class:`synth.errors.EndpointDown` and the run stops (incomplete,
  rerun to resume) with everything finished kept.
- The **embedded server** is watched by a thread blocked on its process: its death closes the
  gate within milliseconds, the server is restarted on the same port (bounded), and the gate
  opens again once a smoke completion answers. Past the bound the gate fails.

Nothing here is paid twice: a request whose response was cached is never sent again, and a
request that failed during an outage is sent again only after the endpoint answers.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

import httpx

from synth.errors import EndpointDown

log = logging.getLogger("synth.llm")

#: Consecutive failed attempts (connection, timeout, 5xx) that open the circuit.
TRIP_AFTER = 5
#: Probe back-off bounds while the circuit is open (seconds).
PROBE_MIN_S = 0.5
PROBE_MAX_S = 15.0
POLL_S = 0.05


class Gate:
    """Open, closed (paused while an outage lasts) or failed (the run must stop).

    Thread-safe: the embedded server's watcher thread closes and opens it while the client's
    event loop waits on it.

    Args:
        url: the endpoint's base URL (probed with ``GET {url}/models`` unless ``managed``).
        max_outage_s: how long requests may wait for the endpoint before the run stops.
        managed: True when something else (the embedded server's supervisor) reopens the gate;
            then no probe runs.
    """

    def __init__(self, url: str, max_outage_s: float = 300.0, managed: bool = False) -> None:
        self.url = url
        self.max_outage_s = max_outage_s
        self.managed = managed
        self._lock = threading.Lock()
        self._closed_at: float | None = None
        self._epoch = 0  # bumped at every close, so a request can tell an outage happened
        self._failures = 0
        self._last_error = ""
        self._error: EndpointDown | None = None
        self._probe: asyncio.Task[None] | None = None
        self.outages = 0

    # -- state ---------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._closed_at is None and self._error is None

    @property
    def epoch(self) -> int:
        return self._epoch

    def close(self, why: str) -> None:
        """Pause new requests (idempotent while already closed)."""
        with self._lock:
            if self._closed_at is not None or self._error is not None:
                return
            self._closed_at = time.monotonic()
            self._epoch += 1
            self._last_error = why
            self.outages += 1
        log.warning("endpoint %s unavailable (%s): pausing requests", self.url, why)

    def reopen(self) -> None:
        with self._lock:
            if self._closed_at is None:
                return
            down = time.monotonic() - self._closed_at
            self._closed_at = None
            self._failures = 0
        log.warning("endpoint %s answers again after %.1f s: resuming", self.url, down)

    def fail(self, message: str) -> None:
        """The run cannot go on: every waiting and later request raises EndpointDown."""
        with self._lock:
            if self._error is None:
                self._error = EndpointDown(message)

    # -- what the client calls -------------------------------------------------------------

    async def admit(self) -> None:
        """Return when requests may be sent; raise EndpointDown when the run must stop."""
        while True:
            if self._error is not None:
                raise EndpointDown(str(self._error))  # a fresh one: each waiter has its own
            closed_at = self._closed_at
            if closed_at is None:
                return
            if not self.managed:
                self._ensure_probe()
            if time.monotonic() - closed_at > self.max_outage_s:
                self.fail(f"{self.url} has not answered for {self.max_outage_s:.0f} s "
                          f"(last error: {self._last_error}); finished records are kept, "
                          "rerun the same command to resume")
                continue
            await asyncio.sleep(POLL_S)

    def success(self) -> None:
        self._failures = 0

    def failure(self, why: str) -> None:
        """One attempt failed with a connection error, a timeout or a 5xx."""
        self._failures += 1
        self._last_error = why
        if self._failures >= TRIP_AFTER:
            self.close(f"{self._failures} failed attempts in a row, last: {why}")

    # -- probing (external endpoints) ------------------------------------------------------

    def _ensure_probe(self) -> None:
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(self._probe_loop())

    async def _probe_loop(self) -> None:
        delay = PROBE_MIN_S
        async with httpx.AsyncClient(timeout=5.0) as http:
            while self._closed_at is not None and self._error is None:
                try:
                    resp = await http.get(f"{self.url}/models")
                    if resp.status_code < 500:
                        self.reopen()
                        return
                    self._last_error = f"HTTP {resp.status_code} from /models"
                except httpx.HTTPError as exc:
                    self._last_error = exc.__class__.__name__
                await asyncio.sleep(delay)
                delay = min(delay * 2, PROBE_MAX_S)


_gates: dict[str, Gate] = {}
_gates_lock = threading.Lock()


def gate_for(url: str, max_outage_s: float | None = None,
             factory: Callable[[str], Gate] | None = None) -> Gate:
    """The process-wide gate of ``url`` (created on first use)."""
    key = url.rstrip("/")
    with _gates_lock:
        gate = _gates.get(key)
        if gate is not None and gate._error is not None and not gate.managed:
            gate = None  # an earlier run in this process gave up on it: start afresh
        if gate is None:
            gate = factory(key) if factory is not None else Gate(key)
            _gates[key] = gate
        if max_outage_s is not None:
            gate.max_outage_s = max_outage_s
        return gate


def register(gate: Gate) -> None:
    """Install ``gate`` for its URL (the embedded server registers its managed gate)."""
    with _gates_lock:
        _gates[gate.url.rstrip("/")] = gate


def forget(url: str) -> None:
    with _gates_lock:
        _gates.pop(url.rstrip("/"), None)
