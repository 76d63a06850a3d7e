"""Run untrusted generated programs: isolated, bounded, classified, many at once.

Each execution gets fresh namespaces (PID, mount, network, IPC, UTS, started with ``unshare``), a
private tmpfs ``/tmp`` holding its work directory, a read-only view of the rest of the file
system with the caller's HOME, cwd, /root, /home, /run and /tmp hidden, no network (loopback
only, inside the box), an environment built from scratch, rlimits, and a wall-clock timeout after
which everything in the box is killed. When synth runs as root each concurrent box also gets its
own unprivileged uid, so process limits and signals never reach across boxes or to the host;
otherwise the box is a user namespace whose capabilities are dropped before the program starts.
See ``_init.py`` for what happens inside.

Speed: a box costs a Python start plus namespaces when made from scratch (~55 ms of CPU), so
each ``Sandbox`` starts one *zygote* once: a supervisor inside namespaces that has built the
read-only root and imported what it needs, and forks one box per program (fresh mount, PID,
network, IPC and UTS namespaces, its own /proc and tmpfs /tmp, per-box uid, rlimits,
no_new_privs, then exec). Python programs start with ``-S`` and an explicit ``PYTHONPATH``, which
skips the virtualenv's ``.pth`` files. ``Sandbox(config, _use_zygote=False)`` keeps the one-shot
path (used by the benchmark to compare).

Without namespaces nothing runs unless the user passes ``--unsafe-exec`` (then only the rlimits,
the clean environment and the process-group kill apply).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import fcntl
import functools
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from synth.config import SandboxConfig
from synth.errors import IsolationUnavailable, SandboxError

INIT = Path(__file__).with_name("_init.py")
BOX_WORKDIR = "/tmp/work"
#: Directories never hidden even when the caller's cwd is one of their ancestors.
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/etc", "/proc", "/sys", "/dev")
#: Extra wall time the host allows before it kills the box itself (the box's own supervisor
#: enforces the program's timeout; this only catches a supervisor that hangs).
HOST_GRACE_S = 5.0
DRAIN_S = 2.0


class ExecStatus(enum.StrEnum):
    """How one execution ended.

    - ``passed``: exit status 0.
    - ``failed``: non-zero exit from a failed assertion (or any non-zero exit of a program that
      printed no Python traceback, e.g. a test binary).
    - ``error``: the program raised another exception, did not compile, or could not start.
    - ``timeout``: wall-clock or CPU-time limit reached.
    - ``memory``: MemoryError, or the box's total resident memory went over the budget.
    - ``killed``: ended by a signal that is none of the above (SIGKILL from inside, SIGSEGV...).
    - ``forbidden``: the box refused something the program tried: a permission, the network,
      writing outside its directory, or a process/file/disk limit.
    - ``compile_error``: the compile step (Go, C/C++, Java, Rust; a Python solution that does
      not parse under a test harness) failed; the compiler's output is the message.
    - ``no_runtime``: the language has no runtime on this machine; nothing ran.
    """

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    TIMEOUT = "timeout"
    MEMORY = "memory"
    KILLED = "killed"
    FORBIDDEN = "forbidden"
    COMPILE_ERROR = "compile_error"
    NO_RUNTIME = "no_runtime"


@dataclass(frozen=True, slots=True)
class Program:
    """What to run: files written into the fresh work directory, then ``argv`` in it.

    Optional parts (all default to "none"): ``compile`` runs first in the same box and limits
    (bounded by ``compile_timeout_s``); its failure is a ``compile_error`` and the program does
    not run. ``env`` adds variables to the box's clean environment. ``limit_address_space``
    False lifts RLIMIT_AS for runtimes that reserve huge virtual ranges (V8, the JVM); the box's
    total resident memory stays bounded by the supervisor. ``overlays`` are ``(read-only host
    dir, box path)`` pairs: a warm cache seen copy-on-write. ``harness`` names how per-test
    verdicts are read back (see :mod:`synth.sandbox.languages`). ``unavailable`` set (e.g.
    ``no_runtime:go``) means nothing can run: the result is ``no_runtime`` at once.
    """

    files: Mapping[str, str]
    argv: Sequence[str]
    timeout_s: float | None = None
    compile: Sequence[str] | None = None
    compile_timeout_s: float | None = None
    env: Mapping[str, str] | None = None
    limit_address_space: bool = True
    overlays: Sequence[tuple[str, str]] = ()
    harness: str | None = None
    language: str = ""
    unavailable: str = ""


@functools.cache
def python_path() -> str:
    """The explicit ``sys.path`` tail of boxed Python programs: this interpreter's packages."""
    paths = sysconfig.get_paths()
    return os.pathsep.join(dict.fromkeys(p for p in (paths["purelib"], paths["platlib"]) if p))


def python_argv(filename: str) -> tuple[str, ...]:
    """``python -S FILE``: no ``site`` (so no ``.pth`` files, ~12 ms saved per start); the
    packages come from ``PYTHONPATH`` (see :func:`python_env`). ``-I`` is not used: it would
    drop the script's own directory, which programs need to import their sibling files, and
    the box's environment is built from scratch anyway."""
    return (sys.executable, "-S", filename)


def python_env() -> dict[str, str]:
    return {"PYTHONPATH": python_path()}


def python_program(code: str, *, filename: str = "main.py",
                   files: Mapping[str, str] | None = None,
                   timeout_s: float | None = None) -> Program:
    """A Python program run by this interpreter (its packages are visible, read-only)."""
    all_files = dict(files or {})
    all_files[filename] = code
    return Program(files=all_files, argv=python_argv(filename), timeout_s=timeout_s,
                   env=python_env(), language="python")


@dataclass(frozen=True, slots=True)
class TestVerdict:
    """One test's outcome: its name, whether it passed, and why not (assertion, traceback)."""

    __test__ = False  # not a pytest class

    name: str
    passed: bool
    message: str = ""


@dataclass(slots=True)
class ExecResult:
    """The outcome of one execution.

    ``reason`` is a short human-readable cause ("AssertionError", "SIGKILL", "wall timeout 2s",
    "[Errno 101] Network is unreachable"); stdout/stderr keep their head and tail when longer
    than the bound (``truncated`` then says so).
    """

    status: ExecStatus
    reason: str
    exit_code: int | None = None
    signal: int | None = None
    stdout: str = ""
    stderr: str = ""
    truncated: bool = False
    wall_s: float = 0.0
    cpu_s: float = 0.0
    peak_rss_mb: float = 0.0
    #: Per-test verdicts where the language's harness reports them (Python, JS/TS, Go and
    #: Rust test binaries); empty otherwise (the status is the whole program's verdict).
    tests: list[TestVerdict] = field(default_factory=list)
    #: The first failing test's name (or the failed assertion of a C/C++/Shell program).
    failed_test: str | None = None
    #: The failure in words for a critique: assertion message, traceback or compiler error.
    message: str = ""
    compile_s: float = 0.0

    @property
    def passed(self) -> bool:
        return self.status == ExecStatus.PASSED

    @property
    def duration_s(self) -> float:
        """Wall time of the box's program (plus its compile step)."""
        return round(self.wall_s + self.compile_s, 4)

    def stderr_tail(self, chars: int = 2000) -> str:
        return self.stderr[-chars:]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["status"] = str(self.status)
        return d


class _Capture:
    """Keeps the first and last ``limit/2`` bytes of a stream and drains the rest."""

    def __init__(self, limit: int) -> None:
        self.half = max(limit // 2, 1)
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    async def drain(self, stream: asyncio.StreamReader | None) -> None:
        if stream is None:
            return
        while chunk := await stream.read(65536):
            self.total += len(chunk)
            room = self.half - len(self.head)
            if room > 0:
                self.head += chunk[:room]
                chunk = chunk[room:]
            if chunk:
                self.tail += chunk
                if len(self.tail) > self.half:
                    del self.tail[: len(self.tail) - self.half]

    @property
    def truncated(self) -> bool:
        return self.total > len(self.head) + len(self.tail)

    def text(self) -> str:
        mid = f"\n... [{self.total - len(self.head) - len(self.tail)} bytes cut] ...\n"
        data = bytes(self.head) + (mid.encode() if self.truncated else b"") + bytes(self.tail)
        return data.decode("utf-8", errors="replace")


# -- classification --------------------------------------------------------------------------

_EXC_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning)|"
                       r"[A-Za-z_][\w.]*)(?::\s?(.*))?$")
_COMPILE_ERROR = re.compile(r"^(SyntaxError|IndentationError|TabError)(?::\s?(.*))?$")
_ERRNO = re.compile(r"\[Errno (\d+)\]")
_FORBIDDEN_ERRNOS = {1, 11, 13, 24, 27, 28, 30, 99, 101, 111, 113}  # EPERM, EAGAIN, EACCES,
# EMFILE, EFBIG, ENOSPC, EROFS, EADDRNOTAVAIL, ENETUNREACH, ECONNREFUSED, EHOSTUNREACH
_C_ASSERT = re.compile(r"[^\n]*Assertion [`'].*' failed\.")
_ERROR_LINE = re.compile(r"(?i)\berror\b")
_FORBIDDEN_TYPES = {"PermissionError", "ConnectionRefusedError", "socket.gaierror", "gaierror"}


def final_exception(stderr: str) -> tuple[str, str] | None:
    """``(type, message)`` of the exception that ended a Python program, from its traceback."""
    idx = stderr.rfind("Traceback (most recent call last):")
    if idx < 0:
        # A script that does not compile prints no "Traceback" header, only the error.
        lines = [ln for ln in stderr.splitlines() if ln.strip()]
        m = _COMPILE_ERROR.match(lines[-1]) if lines else None
        return (m.group(1), m.group(2) or "") if m else None
    for line in reversed(stderr[idx:].splitlines()):
        if not line.strip() or line.startswith((" ", "\t")):
            continue
        m = _EXC_LINE.match(line.strip())
        if m:
            return m.group(1), (m.group(2) or "")
        return None
    return None


def first_error_line(output: str) -> str:
    """The first line of a compiler's output that says ``error`` (else its first line)."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    for line in lines:
        if _ERROR_LINE.search(line):
            return line[:200]
    return (lines[0] if lines else "compile step failed")[:200]


def classify(report: dict[str, Any], stderr: str, cpu_limit_s: float,
             timeout_s: float, host_killed: bool = False) -> tuple[ExecStatus, str]:
    """Map the supervisor's report and the program's stderr to an :class:`ExecStatus`."""
    if host_killed or report.get("timed_out"):
        return ExecStatus.TIMEOUT, f"wall timeout {timeout_s:g}s"
    if report.get("mem_killed"):
        return ExecStatus.MEMORY, "box memory budget exceeded"
    code = os.waitstatus_to_exitcode(int(report["wait_status"]))
    if code < 0:
        sig = -code
        cpu = float(report.get("utime", 0.0)) + float(report.get("stime", 0.0))
        if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu >= cpu_limit_s):
            return ExecStatus.TIMEOUT, f"cpu limit {cpu_limit_s:g}s"
        if sig == signal.SIGXFSZ:
            return ExecStatus.FORBIDDEN, "file size limit"
        if sig == signal.SIGABRT and (m := _C_ASSERT.search(stderr)):
            return ExecStatus.FAILED, m.group(0)[:200]
        return ExecStatus.KILLED, signal.Signals(sig).name
    if code == 0:
        return ExecStatus.PASSED, ""
    cpu = float(report.get("utime", 0.0)) + float(report.get("stime", 0.0))
    if cpu >= cpu_limit_s and not report.get("compile_failed"):
        # RLIMIT_CPU is per process: a child (a shell's ``$(...)``, a test runner's worker) that
        # hit it dies by SIGXCPU while the parent lives on and fails. The tree used the whole
        # budget, so the program was cut off: a timeout, not a failed test.
        return ExecStatus.TIMEOUT, f"cpu limit {cpu_limit_s:g}s"
    if report.get("compile_failed") or "error: compilation failed" in stderr:
        return ExecStatus.COMPILE_ERROR, first_error_line(stderr)
    exc = final_exception(stderr)
    if exc is None:
        if code == 127 and "sandbox: cannot start" in stderr:
            return ExecStatus.ERROR, stderr.strip().splitlines()[-1]
        return ExecStatus.FAILED, f"exit {code}"
    name, message = exc
    if name in ("MemoryError",):
        return ExecStatus.MEMORY, name
    if name in ("AssertionError", "AssertError"):
        return ExecStatus.FAILED, f"{name}: {message}".rstrip(": ")
    errno = _ERRNO.search(message)
    if name in _FORBIDDEN_TYPES or (errno and int(errno.group(1)) in _FORBIDDEN_ERRNOS):
        return ExecStatus.FORBIDDEN, f"{name}: {message}"[:200]
    return ExecStatus.ERROR, f"{name}: {message}".rstrip(": ")[:200]


# -- isolation detection ---------------------------------------------------------------------

def _unshare_argv(mode: str) -> list[str]:
    unshare = shutil.which("unshare") or "unshare"
    argv = [unshare]
    if mode == "userns":
        argv += ["--user", "--map-root-user"]
    argv += ["--mount", "--net", "--pid", "--ipc", "--uts", "--fork", "--kill-child",
             "--mount-proc", "--"]
    return argv


def _hidden_paths() -> list[str]:
    paths = ["/root", "/home", "/tmp", "/var/tmp", "/dev/shm", "/run", "/mnt", "/media", "/srv"]
    home = os.environ.get("HOME")
    if home:
        paths.append(home)
    cwd = os.getcwd()
    # Hiding the caller's project hides its .env files; never hide a tree holding the system.
    if not any(d == cwd or d.startswith(cwd.rstrip("/") + "/") for d in SYSTEM_DIRS):
        paths.append(cwd)
    return sorted({os.path.realpath(p) for p in paths})


def _runtime_paths() -> list[str]:
    """Toolchain directories the boxes need bound back (rustup's sysroot under /root...)."""
    from synth.sandbox.languages import keep_paths
    return keep_paths()


def _interpreter_paths() -> list[str]:
    paths = {sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix,
             os.path.dirname(sys.executable), os.path.dirname(os.path.realpath(sys.executable))}
    return sorted(os.path.realpath(p) for p in paths)


@functools.cache
def detect_isolation(preference: str = "auto") -> tuple[str | None, str]:
    """The isolation mode that works here (``root``, ``userns`` or None) and why.

    ``root`` needs euid 0 (namespaces plus a per-box uid); ``userns`` needs unprivileged user
    namespaces. Each candidate is proven by running a trivial program through the real box.
    """
    if shutil.which("unshare") is None:
        return None, "the `unshare` program (util-linux) is not installed"
    if preference == "auto":
        candidates = (["root"] if os.geteuid() == 0 else []) + ["userns"]
    else:
        candidates = [preference]
    reasons = []
    for mode in candidates:
        if mode == "root" and os.geteuid() != 0:
            reasons.append("root: not running as root")
            continue
        ok, why = _probe(mode)
        if ok:
            return mode, why
        reasons.append(f"{mode}: {why}")
    return None, "; ".join(reasons)


def _probe(mode: str) -> tuple[bool, str]:
    box = Sandbox(SandboxConfig(timeout_s=20.0, parallel=1), _mode=mode)
    try:
        result = box.run_sync(python_program("print('ok')"))
    except SandboxError as exc:
        return False, str(exc)
    finally:
        box.close()
    if result.status != ExecStatus.PASSED or result.stdout.strip() != "ok":
        return False, f"probe ended {result.status}: {result.reason} {result.stderr[-300:]}"
    return True, "probe passed"


# -- per-box uids ----------------------------------------------------------------------------

class _UidPool:
    """Unprivileged uids for boxes, each held with a lock file so concurrent synth processes
    on one machine never share one (RLIMIT_NPROC and kill permissions are per uid)."""

    def __init__(self, base: int) -> None:
        self.base = base
        self.dir = Path(tempfile.gettempdir()) / "synth-sandbox-uids"
        self._free: list[int] = []
        self._held: dict[int, int] = {}
        self._next = base
        self._lock = threading.Lock()

    def acquire(self) -> int:
        with self._lock:
            if self._free:
                return self._free.pop()
            self.dir.mkdir(mode=0o700, exist_ok=True)
            while self._next < self.base + 1_000_000:
                uid = self._next
                self._next += 1
                fd = os.open(self.dir / f"{uid}.lock", os.O_CREAT | os.O_RDWR, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                self._held[uid] = fd
                return uid
        raise SandboxError(f"no free sandbox uid from {self.base}")

    def release(self, uid: int) -> None:
        with self._lock:
            self._free.append(uid)

    def close(self) -> None:
        with self._lock:
            for fd in self._held.values():
                os.close(fd)
            self._held.clear()
            self._free.clear()


# -- the sandbox -----------------------------------------------------------------------------

class _Zygote:
    """The warm box factory of one Sandbox: ``unshare ... python -I -S _init.py --zygote FD``.

    Requests go over a SOCK_SEQPACKET socket pair as five descriptors (status, stdout, stderr,
    spec and lifeline pipes); the zygote forks a box for each and never answers on the socket.
    """

    def __init__(self, mode: str, base: dict[str, Any]) -> None:
        self.mode = mode
        self.base = base
        self._lock = threading.Lock()
        self.proc: subprocess.Popen[bytes] | None = None
        self.sock: socket.socket | None = None

    def _start(self) -> None:
        host, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        argv = (_unshare_argv(self.mode)
                + [sys.executable, "-I", "-S", str(INIT), "--zygote", str(child.fileno())])
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, pass_fds=(child.fileno(),),
                                    start_new_session=True,
                                    env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                                         "LANG": "C.UTF-8"})
        finally:
            child.close()
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(self.base).encode())
        proc.stdin.close()
        host.settimeout(30.0)
        try:
            hello = host.recv(65536)
        except OSError as exc:
            _kill_group(proc.pid)
            proc.wait()
            raise SandboxError(f"sandbox zygote did not start ({self.mode}): {exc}") from exc
        reply = json.loads(hello) if hello else {"setup_error": f"exit {proc.poll()}"}
        if not reply.get("ready"):
            _kill_group(proc.pid)
            proc.wait()
            raise SandboxError(f"sandbox setup failed ({self.mode}): {reply.get('setup_error')}")
        host.settimeout(None)
        self.proc, self.sock = proc, host

    def submit(self, fds: list[int]) -> None:
        with self._lock:
            for attempt in (1, 2):
                if self.sock is None or self.proc is None or self.proc.poll() is not None:
                    self._stop()
                    self._start()
                assert self.sock is not None
                try:
                    socket.send_fds(self.sock, [b"box"], fds)
                    return
                except OSError:
                    if attempt == 2:
                        raise
                    self._stop()

    def _stop(self) -> None:
        if self.sock is not None:
            self.sock.close()  # the zygote leaves on EOF, which kills every box
            self.sock = None
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    self.proc.wait(timeout=2.0)
                except subprocess.TimeoutExpired:
                    _kill_group(self.proc.pid)
                    self.proc.wait()
            self.proc = None

    def close(self) -> None:
        with self._lock:
            self._stop()


@dataclass
class Sandbox:
    """A bounded pool of isolated executions.

    Args:
        config: limits and parallelism (``SandboxConfig``); ``parallel`` 0 means one box per
            core (``--exec-concurrency``).

    Raises:
        IsolationUnavailable: no namespaces here and ``config.unsafe_exec`` is False.

    ``await sandbox.run(program)`` from any number of tasks: at most ``config.parallel`` run at
    once, the rest wait their turn. ``run_many`` is the synchronous form for a list. Boxes are
    forked by a zygote started on first use; ``close()`` (or the context manager) ends it.
    """

    config: SandboxConfig = field(default_factory=SandboxConfig)
    _mode: str | None = None
    _use_zygote: bool = True

    def __post_init__(self) -> None:
        if self._mode is None:
            mode, why = detect_isolation(self.config.isolation)
            if mode is None:
                if not self.config.unsafe_exec:
                    raise IsolationUnavailable(
                        "cannot isolate generated code on this machine (" + why + "); install "
                        "util-linux `unshare` and allow user namespaces, run as root, or pass "
                        "--unsafe-exec to run it with rlimits only")
                mode = "none"
            self._mode = mode
        self.parallel = self.config.parallel or os.cpu_count() or 1
        self._uids = _UidPool(self.config.uid_base)
        self._sems: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary())
        self._hide = _hidden_paths()
        self._keep = sorted(set(_interpreter_paths()) | set(_runtime_paths()))
        self._zygote: _Zygote | None = None
        if self._use_zygote and self._mode != "none":
            self._zygote = _Zygote(self._mode, {"mode": self._mode, "hide": self._hide,
                                                "keep": self._keep, "tmp_mb": 4})
            weakref.finalize(self, self._zygote.close)

    @property
    def mode(self) -> str:
        """``root``, ``userns`` or ``none`` (unsafe)."""
        assert self._mode is not None
        return self._mode

    def close(self) -> None:
        if self._zygote is not None:
            self._zygote.close()
        self._uids.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        sem = self._sems.get(loop)
        if sem is None:
            sem = self._sems[loop] = asyncio.Semaphore(self.parallel)
        return sem

    async def run(self, program: Program) -> ExecResult:
        """Run ``program`` in a fresh box once a slot is free."""
        if program.unavailable:
            return ExecResult(status=ExecStatus.NO_RUNTIME, reason=program.unavailable)
        async with self._semaphore():
            uid = self._uids.acquire() if self.mode == "root" else None
            try:
                if self._zygote is not None:
                    return await self._execute_forked(program, uid)
                return await self._execute(program, uid)
            finally:
                if uid is not None:
                    self._uids.release(uid)

    def run_sync(self, program: Program) -> ExecResult:
        return self.run_many([program])[0]

    def run_many(self, programs: Iterable[Program]) -> list[ExecResult]:
        """Run every program (at most ``parallel`` at once); results in input order."""
        async def _all() -> list[ExecResult]:
            return list(await asyncio.gather(*(self.run(p) for p in programs)))
        return asyncio.run(_all())

    def _limits(self, program: Program) -> tuple[float, int, float, int]:
        cfg = self.config
        timeout_s = program.timeout_s or cfg.timeout_s
        cpu_s = cfg.cpu_s or max(1, math.ceil(timeout_s))
        compile_s = program.compile_timeout_s or max(timeout_s, 30.0)
        return timeout_s, cpu_s, compile_s, max(1, math.ceil(compile_s))

    def _spec(self, program: Program, uid: int | None, workdir: str) -> dict[str, Any]:
        cfg = self.config
        timeout_s, cpu_s, compile_s, compile_cpu_s = self._limits(program)
        bindir = os.path.dirname(sys.executable)
        env = {
            "PATH": f"{bindir}:/usr/local/bin:/usr/bin:/bin",
            "HOME": workdir,
            "TMPDIR": "/tmp" if self.mode != "none" else workdir,
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "PYTHONHASHSEED": "0",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
        }
        extra = dict(program.env or {})
        limit_as = program.limit_address_space
        steps = []
        if program.compile:
            steps.append({"argv": list(program.compile), "timeout_s": compile_s,
                          "cpu_s": compile_cpu_s, "compile": True, "env": extra,
                          "limit_as": False})
        steps.append({"argv": list(program.argv), "timeout_s": timeout_s, "cpu_s": cpu_s,
                      "env": extra, "limit_as": limit_as})
        mb = 1024 * 1024
        return {
            "mode": self.mode,
            "uid": uid,
            "workdir": workdir,
            "files": dict(program.files),
            "steps": steps,
            "env": env,
            "hide": self._hide,
            "keep": self._keep,
            "tmp_mb": cfg.disk_mb,
            "overlays": [{"lower": lower, "target": target}
                         for lower, target in program.overlays],
            "limits": {
                "as_bytes": cfg.memory_mb * mb,
                "mem_total_bytes": cfg.memory_mb * mb,
                "fsize_bytes": cfg.disk_mb * mb,
                "nofile": cfg.max_files,
                "nproc": cfg.max_procs,
            },
        }

    async def _execute_forked(self, program: Program, uid: int | None) -> ExecResult:
        """One box from the zygote: hand it our pipes, feed the spec, read until it reports."""
        assert self._zygote is not None
        cfg = self.config
        timeout_s, _, compile_s, _ = self._limits(program)
        budget = timeout_s + (compile_s if program.compile else 0.0) + HOST_GRACE_S
        spec = json.dumps(self._spec(program, uid, BOX_WORKDIR)).encode()
        loop = asyncio.get_running_loop()
        out, err = _Capture(cfg.max_output_bytes), _Capture(cfg.max_output_bytes)
        readers: list[asyncio.Task[None]] = []
        transports: list[asyncio.BaseTransport] = []
        host_killed = False
        pipes = [os.pipe() for _ in range(5)]
        opened = {fd for pair in pipes for fd in pair}
        (status_r, status_w), (out_r, out_w), (err_r, err_w), (spec_r, spec_w), \
            (life_r, life_w) = pipes
        try:
            box_fds = [status_w, out_w, err_w, spec_r, life_r]
            self._zygote.submit(box_fds)
            for fd in box_fds:
                os.close(fd)
                opened.discard(fd)
            opened.discard(spec_w)  # _write_close closes it
            if len(spec) > 60_000:  # more than a pipe holds: do not block the event loop
                await loop.run_in_executor(None, _write_close, spec_w, spec)
            else:
                _write_close(spec_w, spec)
            streams = []
            for fd in (out_r, err_r, status_r):
                reader = asyncio.StreamReader(limit=1 << 20)
                pipe = os.fdopen(fd, "rb", 0)
                # The file object owns fd from here: a cancel inside connect_read_pipe closes
                # the transport, which closes the pipe later; closing fd here as well would
                # close a number the event loop may have reused (EBADF traceback).
                opened.discard(fd)
                pipe_transport, _ = await loop.connect_read_pipe(
                    functools.partial(asyncio.StreamReaderProtocol, reader), pipe)
                transports.append(pipe_transport)
                streams.append(reader)
            readers = [asyncio.create_task(out.drain(streams[0])),
                       asyncio.create_task(err.drain(streams[1]))]
            try:
                report_raw = await asyncio.wait_for(streams[2].read(), budget)
            except TimeoutError:
                host_killed = True
                report_raw = b""
            os.close(life_w)  # the box's supervisor kills the box if it is still there
            opened.discard(life_w)
            _, pending = await asyncio.wait(readers, timeout=DRAIN_S)
            for task in pending:
                task.cancel()
        finally:
            for task in readers:
                if not task.done():
                    task.cancel()
            for transport in transports:
                transport.close()
            for fd in opened:
                with contextlib.suppress(OSError):
                    os.close(fd)
        return self._result(report_raw, out, err, timeout_s, program, host_killed, None)

    async def _execute(self, program: Program, uid: int | None) -> ExecResult:
        cfg = self.config
        timeout_s, _, compile_s, _ = self._limits(program)
        host_dir = tempfile.mkdtemp(prefix="synth-sbx-") if self.mode == "none" else None
        workdir = host_dir or BOX_WORKDIR
        spec = json.dumps(self._spec(program, uid, workdir)).encode()
        argv = [sys.executable, "-I", "-S", str(INIT)]
        if self.mode != "none":
            argv = _unshare_argv(self.mode) + argv
        status_r, status_w = os.pipe()
        out, err = _Capture(cfg.max_output_bytes), _Capture(cfg.max_output_bytes)
        proc: asyncio.subprocess.Process | None = None
        host_killed = False
        budget = timeout_s + (compile_s if program.compile else 0.0) + HOST_GRACE_S
        try:
            try:
                proc = await asyncio.create_subprocess_exec(
                    *argv, str(status_w), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, pass_fds=(status_w,), start_new_session=True,
                    env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"})
            finally:
                os.close(status_w)
            readers = [asyncio.create_task(out.drain(proc.stdout)),
                       asyncio.create_task(err.drain(proc.stderr))]
            assert proc.stdin is not None
            proc.stdin.write(spec)
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                await proc.stdin.drain()
            proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), budget)
            except TimeoutError:
                host_killed = True
                _kill_group(proc.pid)
                await proc.wait()
            _, pending = await asyncio.wait(readers, timeout=DRAIN_S)
            for task in pending:
                task.cancel()
            report_raw = _read_all(status_r)
        except BaseException:
            if proc is not None and proc.returncode is None:
                _kill_group(proc.pid)
                with contextlib.suppress(Exception):
                    await asyncio.shield(proc.wait())
            raise
        finally:
            os.close(status_r)
            if host_dir is not None:
                shutil.rmtree(host_dir, ignore_errors=True)
        return self._result(report_raw, out, err, timeout_s, program, host_killed,
                            proc.returncode)

    def _result(self, report_raw: bytes, out: _Capture, err: _Capture, timeout_s: float,
                program: Program, host_killed: bool, returncode: int | None) -> ExecResult:
        _, cpu_s, compile_s, compile_cpu_s = self._limits(program)
        stderr = err.text()
        try:
            report = json.loads(report_raw) if report_raw else {}
        except json.JSONDecodeError:
            report = {}
        if "setup_error" in report:
            raise SandboxError(f"sandbox setup failed ({self.mode}): {report['setup_error']}")
        if not report and not host_killed:
            raise SandboxError(f"sandbox supervisor ended without a report (exit {returncode}): "
                               f"{stderr[-500:]}")
        compiled = report.get("compile") or {}
        if report.get("compile_failed"):
            stderr = str(compiled.get("output", ""))
            status, reason = classify(report, stderr, compile_cpu_s, compile_s, host_killed)
            if status in (ExecStatus.TIMEOUT, ExecStatus.MEMORY, ExecStatus.KILLED):
                reason = f"compile: {reason}"
            elif status != ExecStatus.COMPILE_ERROR:
                status, reason = ExecStatus.COMPILE_ERROR, first_error_line(stderr)
        else:
            status, reason = classify(report, stderr, cpu_s, timeout_s, host_killed)
        code = (os.waitstatus_to_exitcode(int(report["wait_status"]))
                if "wait_status" in report and not report.get("timed_out") else None)
        result = ExecResult(
            status=status, reason=reason,
            exit_code=code if code is not None and code >= 0 else None,
            signal=-code if code is not None and code < 0 else None,
            stdout=out.text(), stderr=stderr, truncated=out.truncated or err.truncated,
            wall_s=round(float(report.get("wall_s", timeout_s)), 4),
            cpu_s=round(float(report.get("utime", 0.0)) + float(report.get("stime", 0.0)), 4),
            peak_rss_mb=round(max(float(report.get("peak_rss", 0)),
                                  float(report.get("maxrss_kb", 0)) * 1024) / 2**20, 2),
            compile_s=round(float(compiled.get("wall_s", 0.0)), 4)
            if not report.get("compile_failed") else 0.0,
        )
        if status == ExecStatus.COMPILE_ERROR:
            result.message = stderr[-4000:]
        if program.harness:
            from synth.sandbox.languages import read_verdicts
            read_verdicts(program, result, str(report.get("verdicts", "")))
        elif status != ExecStatus.PASSED and not result.message:
            result.message = (reason + "\n" + stderr[-2000:]).strip()
        return result


def _write_close(fd: int, data: bytes) -> None:
    """Write all of ``data`` to a pipe and close it (the box reads until EOF)."""
    try:
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, 1031, min(max(len(data), 65536), 1 << 20))  # F_SETPIPE_SZ
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
    except BrokenPipeError:
        pass  # the box failed before reading its spec; its report says why
    finally:
        os.close(fd)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _read_all(fd: int) -> bytes:
    os.set_blocking(fd, False)
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)
