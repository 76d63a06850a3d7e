"""Hostile programs against the real sandbox: each must be contained and the host unaffected.

Run as a script (``python tests/sandbox/test_hostile.py``) to print the table
program → classification → host unaffected.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from synth.config import SandboxConfig
from synth.sandbox import ExecResult, ExecStatus, Sandbox, detect_isolation, python_program

MARKER = f"SYNTH-HOSTILE-{uuid.uuid4().hex[:12]}"
SECRET = f"sk-canary-{uuid.uuid4().hex}"


@dataclass
class Host:
    """Things on the host that the programs aim at, and the checks that they were not hit."""

    tmp: Path
    listener: socket.socket
    canary: subprocess.Popen[bytes]
    secret_file: Path
    targets: list[Path] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.listener.getsockname()[1])


@dataclass
class Case:
    name: str
    code: Callable[[Host], str]
    expected: set[ExecStatus]
    check: Callable[[Host, ExecResult], list[str]] = lambda host, result: []
    #: Also run under ``userns`` isolation. Not the fork bomb: a user namespace made by root
    #: maps to host uid 0, for which the kernel does not enforce RLIMIT_NPROC.
    userns: bool = True
    #: Cases that must time out get a short limit; the others a long one, so that a loaded
    #: machine cannot turn their expected outcome into a timeout.
    timeout_s: float = 20.0


def _no_marker_processes() -> list[str]:
    """Processes anywhere on the host whose command line holds MARKER (none may survive)."""
    deadline = time.monotonic() + 3.0
    while True:
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if MARKER.encode() in cmdline:
                found.append(entry.name)
        if not found or time.monotonic() > deadline:
            return [f"process {pid} with the marker survived" for pid in found]
        time.sleep(0.1)


def _no_connection(host: Host, result: ExecResult) -> list[str]:
    host.listener.setblocking(False)
    try:
        conn, _ = host.listener.accept()
    except BlockingIOError:
        return []
    conn.close()
    return ["the host listener accepted a connection from the box"]


def _no_leak(host: Host, result: ExecResult) -> list[str]:
    text = result.stdout + result.stderr
    return ["a secret reached the program"] if SECRET in text else []


def _no_files(host: Host, result: ExecResult) -> list[str]:
    return [f"{p} was written" for p in host.targets if p.exists()]


def _truncated(host: Host, result: ExecResult) -> list[str]:
    return [] if result.truncated and len(result.stdout) < 70_000 else ["output not truncated"]


FORK_BOMB = f"""
import os
# {MARKER}
while True:
    try:
        os.fork()
    except OSError:
        pass
"""

MEMORY_FORKS = f"""
import os, time
# {MARKER}
for _ in range(8):
    if os.fork() == 0:
        block = b"x" * (200 * 2**20)  # filled, so resident
        time.sleep(60)
        os._exit(0)
time.sleep(60)
"""

# The guard makes the program refuse to fire unless it is PID 2 of a fresh PID namespace
# (PID 1 is the box's supervisor); PID 2 on a host is always the kernel's kthreadd.
KILL_ALL = """
import os, sys, time
if os.getpid() != 2:
    sys.exit(99)
os.system("kill -9 -1")
time.sleep(5)
"""

DISK_FILLER = """
i = 0
while True:
    with open(f"fill{i}", "wb") as fh:
        fh.write(b"x" * 2**20)
    i += 1
"""

SIGTERM_CHILDREN = f"""
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(1000)"
for _ in range(3):
    subprocess.Popen([sys.executable, "-c", child, "{MARKER}"], start_new_session=True)
time.sleep(1000)
"""

DAEMON = f"""
import os, subprocess, sys
code = "import os, time; os.setsid(); time.sleep(1000)"
subprocess.Popen([sys.executable, "-c", code, "{MARKER}"], start_new_session=True,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print("left a daemon behind")
"""


def _secrets_code(host: Host) -> str:
    paths = ["/root/.ssh", "~/.ssh", str(host.secret_file), f"/proc/{os.getpid()}/environ",
             "/proc/1/environ", os.path.expanduser("~/.ssh"), "/etc/shadow"]
    return f"""
import os
print(dict(os.environ))
for p in {paths!r}:
    p = os.path.expanduser(p)
    try:
        print(p, os.listdir(p) if os.path.isdir(p) else open(p, "rb").read())
    except OSError as exc:
        print(p, "refused:", exc)
"""


def _write_code(host: Host) -> str:
    tries = [str(p) for p in host.targets]
    return f"""
for p in {tries[:-1]!r}:
    try:
        open(p, "w").write("pwned")
        print("wrote", p)
    except OSError as exc:
        print("refused", p, exc)
open({tries[-1]!r}, "w").write("pwned")
"""


CASES = [
    Case("fork bomb", lambda h: FORK_BOMB, {ExecStatus.TIMEOUT, ExecStatus.FORBIDDEN},
         lambda h, r: _no_marker_processes(), userns=False, timeout_s=3.0),
    Case("memory bomb (64 GiB bytearray)", lambda h: "x = bytearray(64 * 2**30)",
         {ExecStatus.MEMORY}),
    Case("memory bomb (8 forks x 200 MB)", lambda h: MEMORY_FORKS, {ExecStatus.MEMORY},
         lambda h, r: _no_marker_processes()),
    Case("infinite loop", lambda h: "while True:\n    pass", {ExecStatus.TIMEOUT},
         timeout_s=3.0),
    Case("disk filler", lambda h: DISK_FILLER, {ExecStatus.FORBIDDEN}),
    Case('os.system("kill -9 -1")', lambda h: KILL_ALL, {ExecStatus.KILLED}),
    Case("connect to a host listener on 127.0.0.1",
         lambda h: f"import socket\nsocket.create_connection(('127.0.0.1', {h.port}), timeout=2)",
         {ExecStatus.FORBIDDEN}, _no_connection),
    Case("read ~/.ssh, /root/.ssh, env secrets", _secrets_code, {ExecStatus.PASSED}, _no_leak),
    Case("write outside the work dir", _write_code, {ExecStatus.FORBIDDEN}, _no_files),
    Case("sleep past timeout, children ignore SIGTERM", lambda h: SIGTERM_CHILDREN,
         {ExecStatus.TIMEOUT}, lambda h, r: _no_marker_processes(), timeout_s=3.0),
    Case("setsid daemon left behind", lambda h: DAEMON, {ExecStatus.PASSED},
         lambda h, r: _no_marker_processes()),
    Case("20 MB of output", lambda h: "import sys\nsys.stdout.write('x' * 20_000_000)",
         {ExecStatus.PASSED}, _truncated),
]


def _host_problems(host: Host) -> list[str]:
    problems = []
    if host.canary.poll() is not None:
        problems.append("host canary process died")
    if subprocess.run(["true"]).returncode != 0:
        problems.append("host cannot start processes")
    return problems


def make_host(tmp: Path) -> Host:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    secret_file = tmp / "id_rsa"
    secret_file.write_text(SECRET)
    secret_file.chmod(0o600)
    canary = subprocess.Popen(["sleep", "300"])
    name = f"synth-pwned-{uuid.uuid4().hex[:8]}"
    targets = [Path("/etc") / name, Path.cwd() / name, tmp / name, Path(tempfile.gettempdir())
               / name, Path(sys.prefix) / name, Path("/work") / name, Path.home() / name]
    return Host(tmp=tmp, listener=listener, canary=canary, secret_file=secret_file,
                targets=targets)


def run_cases(host: Host, cases: list[Case],
              isolation: str = "auto") -> list[tuple[Case, ExecResult, list[str]]]:
    """Run every case at once (each in its own box) and check the host after each."""
    config = SandboxConfig(timeout_s=20.0, memory_mb=512, disk_mb=32, max_procs=32,
                           parallel=len(cases), isolation=isolation)
    os.environ["OPENAI_API_KEY"] = SECRET
    try:
        with Sandbox(config) as box:
            assert box.mode in ("root", "userns"), "hostile programs need real isolation"
            results = box.run_many([python_program(c.code(host), timeout_s=c.timeout_s)
                                    for c in cases])
    finally:
        del os.environ["OPENAI_API_KEY"]
    out = []
    for case, result in zip(cases, results, strict=True):
        out.append((case, result, case.check(host, result) + _host_problems(host)))
    return out


pytestmark = pytest.mark.skipif(detect_isolation()[0] is None,
                                reason="no namespace isolation on this machine")


Outcomes = dict[str, tuple[ExecResult, list[str]]]


def _outcomes(tmp: Path, cases: list[Case], isolation: str) -> Outcomes:
    host = make_host(tmp)
    try:
        return {case.name: (result, problems)
                for case, result, problems in run_cases(host, cases, isolation)}
    finally:
        host.canary.kill()
        host.canary.wait()
        host.listener.close()


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Outcomes:
    return _outcomes(tmp_path_factory.mktemp("host"), CASES, "auto")


@pytest.fixture(scope="module")
def userns_outcomes(tmp_path_factory: pytest.TempPathFactory) -> Outcomes:
    if detect_isolation("userns")[0] is None:
        pytest.skip("user namespaces are not available")
    return _outcomes(tmp_path_factory.mktemp("host"), [c for c in CASES if c.userns], "userns")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_program_is_contained(case: Case, outcomes: Outcomes) -> None:
    result, problems = outcomes[case.name]
    assert result.status in case.expected, (result.status, result.reason, result.stderr[-500:])
    assert problems == []


@pytest.mark.parametrize("case", [c for c in CASES if c.userns],
                         ids=[c.name for c in CASES if c.userns])
def test_hostile_program_is_contained_in_a_user_namespace(
        case: Case, userns_outcomes: Outcomes) -> None:
    result, problems = userns_outcomes[case.name]
    assert result.status in case.expected, (result.status, result.reason, result.stderr[-500:])
    assert problems == []


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        host = make_host(Path(tmp))
        try:
            rows = run_cases(host, CASES)
        finally:
            host.canary.kill()
            host.listener.close()
    print(f"isolation: {detect_isolation()[0]}")
    print("| program | classification | reason | host unaffected |")
    print("|---|---|---|---|")
    for case, result, problems in rows:
        ok = "yes" if not problems else "NO: " + "; ".join(problems)
        print(f"| {case.name} | {result.status} | {result.reason[:60]} | {ok} |")


if __name__ == "__main__":
    main()
