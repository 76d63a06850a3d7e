"""The sandbox's contract: classification, output bounds, fresh directories, the pool."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from synth.config import SandboxConfig
from synth.errors import IsolationUnavailable
from synth.sandbox import ExecStatus, Program, Sandbox, classify, python_program, runner
from synth.sandbox.runner import _Capture, final_exception

isolated = pytest.mark.skipif(runner.detect_isolation()[0] is None,
                              reason="no namespace isolation on this machine")


def _exited(code: int) -> dict[str, object]:
    return {"wait_status": code << 8, "utime": 0.1, "stime": 0.0}


def _signalled(sig: int, cpu: float = 0.1) -> dict[str, object]:
    return {"wait_status": int(sig), "utime": cpu, "stime": 0.0}


TRACE = "Traceback (most recent call last):\n  File \"main.py\", line 1, in <module>\n    x\n"


@pytest.mark.parametrize(("report", "stderr", "status", "reason"), [
    (_exited(0), "", ExecStatus.PASSED, ""),
    (_exited(1), TRACE + "AssertionError: 2 != 3\n", ExecStatus.FAILED, "AssertionError: 2 != 3"),
    (_exited(1), TRACE + "AssertionError\n", ExecStatus.FAILED, "AssertionError"),
    (_exited(1), TRACE + "ValueError: bad\n", ExecStatus.ERROR, "ValueError: bad"),
    (_exited(1), "  File \"main.py\", line 1\n    def (\nSyntaxError: invalid syntax\n",
     ExecStatus.ERROR, "SyntaxError: invalid syntax"),
    (_exited(1), TRACE + "MemoryError\n", ExecStatus.MEMORY, "MemoryError"),
    (_exited(1), TRACE + "PermissionError: [Errno 13] Permission denied: '/etc/x'\n",
     ExecStatus.FORBIDDEN, "PermissionError: [Errno 13] Permission denied: '/etc/x'"),
    (_exited(1), TRACE + "OSError: [Errno 101] Network is unreachable\n",
     ExecStatus.FORBIDDEN, "OSError: [Errno 101] Network is unreachable"),
    (_exited(1), TRACE + "BlockingIOError: [Errno 11] Resource temporarily unavailable\n",
     ExecStatus.FORBIDDEN, "BlockingIOError: [Errno 11] Resource temporarily unavailable"),
    (_exited(1), TRACE + "OSError: [Errno 2] No such file\n", ExecStatus.ERROR,
     "OSError: [Errno 2] No such file"),
    (_exited(3), "plain text, no traceback\n", ExecStatus.FAILED, "exit 3"),
    (_exited(127), "sandbox: cannot start gcc: not found\n", ExecStatus.ERROR,
     "sandbox: cannot start gcc: not found"),
    (_signalled(signal.SIGKILL), "", ExecStatus.KILLED, "SIGKILL"),
    (_signalled(signal.SIGSEGV), "", ExecStatus.KILLED, "SIGSEGV"),
    (_signalled(signal.SIGXCPU, 2.0), "", ExecStatus.TIMEOUT, "cpu limit 2s"),
    (_signalled(signal.SIGKILL, 3.0), "", ExecStatus.TIMEOUT, "cpu limit 2s"),
    (_signalled(signal.SIGXFSZ), "", ExecStatus.FORBIDDEN, "file size limit"),
    # a child died of the CPU limit and the parent failed: the tree used the whole budget
    ({**_exited(1), "utime": 1.9, "stime": 0.1}, "FAILED line 3: [ \"$(f)\" = 3 ]\n",
     ExecStatus.TIMEOUT, "cpu limit 2s"),
    ({**_exited(1), "utime": 0.5}, "", ExecStatus.FAILED, "exit 1"),
    ({**_signalled(signal.SIGKILL), "mem_killed": True}, "", ExecStatus.MEMORY,
     "box memory budget exceeded"),
    ({**_signalled(signal.SIGKILL), "timed_out": True}, "", ExecStatus.TIMEOUT,
     "wall timeout 5s"),
])
def test_classify(report: dict[str, object], stderr: str, status: ExecStatus,
                  reason: str) -> None:
    assert classify(report, stderr, cpu_limit_s=2, timeout_s=5) == (status, reason)


def test_final_exception_takes_the_last_traceback() -> None:
    stderr = TRACE + "KeyError: 'a'\nDuring handling...\n" + TRACE + "mod.CustomError: boom\n"
    assert final_exception(stderr) == ("mod.CustomError", "boom")
    assert final_exception("no traceback here") is None


def test_capture_keeps_head_and_tail() -> None:
    async def feed() -> _Capture:
        reader = asyncio.StreamReader()
        reader.feed_data(b"HEAD" + b"." * 10_000 + b"TAIL")
        reader.feed_eof()
        cap = _Capture(100)
        await cap.drain(reader)
        return cap

    cap = asyncio.run(feed())
    text = cap.text()
    assert cap.truncated and cap.total == 10_008
    assert text.startswith("HEAD") and text.endswith("TAIL") and "bytes cut" in text
    assert len(text) < 200


def test_refuses_without_isolation_unless_unsafe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "detect_isolation", lambda pref: (None, "no unshare here"))
    with pytest.raises(IsolationUnavailable, match="--unsafe-exec"):
        Sandbox(SandboxConfig())
    # Benign programs only: without namespaces nothing protects the host.
    with Sandbox(SandboxConfig(unsafe_exec=True, timeout_s=5)) as box:
        assert box.mode == "none"
        ok, slow = box.run_many([python_program("import os; print(os.getcwd())"),
                                 python_program("import time; time.sleep(30)", timeout_s=0.5)])
    assert ok.status == ExecStatus.PASSED
    assert not Path(ok.stdout.strip()).exists()  # the temp dir was removed
    assert slow.status == ExecStatus.TIMEOUT and slow.wall_s < 3


@pytest.fixture(scope="module")
def box() -> Iterator[Sandbox]:
    with Sandbox(SandboxConfig(timeout_s=5, parallel=4, max_output_bytes=1000)) as box:
        yield box


@isolated
class TestIsolated:
    def test_statuses_and_output(self, box: Sandbox) -> None:
        results = box.run_many([
            python_program("print('hi'); import sys; print('err', file=sys.stderr)"),
            python_program("assert 1 + 1 == 3, 'math'"),
            python_program("def f(:\n  pass"),
            python_program("import json; json.loads('{')"),
        ])
        assert [r.status for r in results] == [ExecStatus.PASSED, ExecStatus.FAILED,
                                               ExecStatus.ERROR, ExecStatus.ERROR]
        assert results[0].stdout == "hi\n" and results[0].stderr == "err\n"
        assert results[1].reason == "AssertionError: math"
        assert results[2].reason.startswith("SyntaxError")
        assert results[3].reason.startswith("json.decoder.JSONDecodeError")

    def test_each_run_gets_a_fresh_directory(self, box: Sandbox) -> None:
        first, second = box.run_many([
            python_program("open('left.txt', 'w').write('x'); import os; print(os.listdir())"),
            python_program("import os; print(sorted(os.listdir()))",
                           files={"helper.py": "X = 1\n"}),
        ])
        assert "left.txt" in first.stdout
        assert second.stdout.strip() == "['helper.py', 'main.py']"

    def test_files_import_each_other_and_stdin_is_closed(self, box: Sandbox) -> None:
        result = box.run_sync(python_program(
            "import sys, helper; print(helper.X, repr(sys.stdin.read()))",
            files={"helper.py": "X = 42\n"}))
        assert result.stdout == "42 ''\n"

    def test_environment_is_built_from_scratch(self, box: Sandbox,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-should-not-leak")
        result = box.run_sync(python_program("import os; print(sorted(os.environ))"))
        assert "OPENAI_API_KEY" not in result.stdout
        assert "HOME" in result.stdout

    def test_output_is_truncated_head_and_tail(self, box: Sandbox) -> None:
        result = box.run_sync(python_program(
            "print('first'); print('x' * 100_000); print('last')"))
        assert result.status == ExecStatus.PASSED and result.truncated
        assert result.stdout.startswith("first") and result.stdout.rstrip().endswith("last")

    def test_timeout_per_program(self, box: Sandbox) -> None:
        result = box.run_sync(python_program("import time; time.sleep(60)", timeout_s=0.5))
        assert result.status == ExecStatus.TIMEOUT
        assert result.wall_s < 2

    def test_loopback_inside_the_box_works(self, box: Sandbox) -> None:
        code = ("import socket\nsrv = socket.create_server(('127.0.0.1', 0))\n"
                "c = socket.create_connection(srv.getsockname())\nprint('ok')")
        assert box.run_sync(python_program(code)).stdout == "ok\n"

    def test_many_in_parallel_without_deadlock(self, box: Sandbox) -> None:
        # 24 programs, 4 slots, each printing more than a pipe buffer on both streams.
        code = ("import sys, time\nsys.stdout.write('o' * 200_000)\n"
                "sys.stderr.write('e' * 200_000)\ntime.sleep(0.2)")
        t0 = time.monotonic()
        results = box.run_many([python_program(code) for _ in range(24)])
        elapsed = time.monotonic() - t0
        assert all(r.status == ExecStatus.PASSED and r.truncated for r in results)
        assert elapsed < 24 * 0.2  # the sleeps overlapped

    def test_cancelled_run_leaves_nothing_behind(self, box: Sandbox) -> None:
        marker = f"CANCEL-{os.getpid()}-{time.time_ns()}"
        code = f"import time\n# {marker}\ntime.sleep(60)"

        async def cancel_midway() -> None:
            task = asyncio.create_task(box.run(Program({"m.py": code}, ("python3", "m.py"))))
            await asyncio.sleep(0.5)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(cancel_midway())
        time.sleep(0.3)
        alive = [p for p in Path("/proc").iterdir() if p.name.isdigit()
                 and _cmdline(p).find(marker) >= 0]
        assert alive == []

    def test_a_missing_program_is_an_error(self, box: Sandbox) -> None:
        result = box.run_sync(Program({}, ("no-such-binary-xyz",)))
        assert result.status == ExecStatus.ERROR
        assert "no-such-binary-xyz" in result.reason


def _cmdline(p: Path) -> str:
    try:
        return (p / "cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


@isolated
def test_the_zygote_holds_no_secret_and_cannot_be_reached(monkeypatch: pytest.MonkeyPatch) -> None:
    """The zygote's environment is built from scratch, and a box sees only its own PIDs: its
    supervisor (PID 1, not dumpable) and the program; attaching to PID 1 is refused."""
    secret = f"sk-zygote-{time.time_ns()}"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    code = ("import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
            "pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n"
            "print(pids)\nprint('attach', libc.ptrace(16, 1, 0, 0), ctypes.get_errno())\n"
            "try:\n    print(open('/proc/1/environ', 'rb').read())\n"
            "except OSError as exc:\n    print('environ refused', exc.errno)\n")
    with Sandbox(SandboxConfig(timeout_s=10, parallel=1)) as box:
        result = box.run_sync(python_program(code))
        assert box._zygote is not None and box._zygote.proc is not None
        unshare_pid = box._zygote.proc.pid
        children = Path(f"/proc/{unshare_pid}/task/{unshare_pid}/children").read_text().split()
        for pid in [unshare_pid, *map(int, children)]:
            assert secret.encode() not in Path(f"/proc/{pid}/environ").read_bytes()
    assert result.status == ExecStatus.PASSED, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "[1, 2]"
    assert lines[1].startswith("attach -1 ")
    assert secret not in result.stdout


@isolated
def test_compile_step_runs_in_the_box_and_its_failure_is_classified(box: Sandbox) -> None:
    ok, bad, slow = box.run_many([
        Program({"a.sh": "echo hi"}, ("bash", "a.sh"), compile=("bash", "-n", "a.sh")),
        Program({"a.sh": "echo $("}, ("bash", "a.sh"), compile=("bash", "-n", "a.sh")),
        Program({"a.sh": "echo hi"}, ("bash", "a.sh"), compile=("sleep", "30"),
                compile_timeout_s=0.5),
    ])
    assert ok.status == ExecStatus.PASSED and ok.stdout == "hi\n" and ok.stderr == ""
    assert bad.status == ExecStatus.COMPILE_ERROR and "a.sh" in bad.message
    assert slow.status == ExecStatus.TIMEOUT and slow.reason.startswith("compile:")


def test_one_shot_and_zygote_paths_agree() -> None:
    if runner.detect_isolation()[0] is None:
        pytest.skip("no namespace isolation on this machine")
    programs = [python_program("print('ok')"), python_program("assert 0, 'no'"),
                python_program("import time; time.sleep(30)", timeout_s=0.5)]
    for zygote in (False, True):
        with Sandbox(SandboxConfig(timeout_s=5, parallel=3), _use_zygote=zygote) as box:
            statuses = [r.status for r in box.run_many(programs)]
        assert statuses == [ExecStatus.PASSED, ExecStatus.FAILED, ExecStatus.TIMEOUT]
