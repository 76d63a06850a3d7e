"""The embedded server's supervision, with the fake endpoint standing in for llama.cpp: the
smoke completion, noticing a death at once, bounded restarts through the health gate."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from synth.errors import EndpointDown, ServerStartError
from synth.llm import health
from synth.llm.server import EmbeddedServer

FAKE = Path(__file__).parents[1] / "fake_openai.py"


class FakeEmbedded(EmbeddedServer):
    """The supervised server, running the fake endpoint instead of llama.cpp."""

    def __init__(self, *args: object, crash: bool = False, **kwargs: object) -> None:
        super().__init__(*args, startup_timeout_s=30, **kwargs)  # type: ignore[arg-type]
        self.crash = crash
        self.model = "fake-model"

    def command(self) -> list[str]:
        cmd = [sys.executable, str(FAKE), "--port", str(self.port)]
        return cmd + (["--crash-on-completion"] if self.crash else [])


def test_a_server_that_dies_on_its_first_completion_is_not_ready(tmp_path: Path) -> None:
    server = FakeEmbedded(log_path=tmp_path / "server.log", crash=True)
    with pytest.raises(ServerStartError) as info:
        server.start()
    message = str(info.value)
    assert "killed by SIGSEGV on its first completion" in message
    assert str(tmp_path / "server.log") in message and "rebuild-llama" in message
    assert server.proc is None or server.proc.poll() is not None


def _wait(predicate: object, timeout: float = 30.0) -> float:
    start = time.monotonic()
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() - start < timeout, "timed out"
        time.sleep(0.005)
    return time.monotonic() - start


def test_death_is_noticed_at_once_and_the_server_restarted(tmp_path: Path) -> None:
    server = FakeEmbedded(log_path=tmp_path / "server.log", max_restarts=1)
    server.start()
    try:
        gate = server.gate
        assert gate is not None and gate.is_open
        assert health.gate_for(server.base_url) is gate
        pid = int((tmp_path / "server.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        noticed = _wait(lambda: not gate.is_open)
        assert noticed < 1.0, f"noticed after {noticed:.3f} s"
        _wait(lambda: gate.is_open)
        assert server.restarts == 1 and server.pid != pid
        # past the bound the gate fails and a waiting request raises EndpointDown
        os.kill(int((tmp_path / "server.pid").read_text()), signal.SIGKILL)
        with pytest.raises(EndpointDown, match="already restarted 1 times"):
            asyncio.run(asyncio.wait_for(_admit_until_failed(gate), 30))
    finally:
        server.stop()


async def _admit_until_failed(gate: health.Gate) -> None:
    while True:
        await gate.admit()
        await asyncio.sleep(0.01)
