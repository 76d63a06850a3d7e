"""The first process inside a sandbox: sets the box up, runs the program, reports how it ended.

Run by :mod:`synth.sandbox.runner` as ``python -I -S _init.py STATUS_FD`` with a JSON spec on
stdin. With isolation it runs as PID 1 of fresh PID, mount, network, IPC and UTS namespaces
(started by ``unshare``) and, still privileged, it

1. makes every existing mount read-only (in this mount namespace only), hides the paths in
   ``hide`` under empty tmpfs (HOME, /root, /home, /tmp, the caller's cwd, ...) and binds the
   ``keep`` paths (the interpreter) back read-only;
2. creates the work directory on a size-limited tmpfs at ``/tmp/work`` and writes the files;
3. forks the program, which closes stdin, sets rlimits, drops privileges (a per-sandbox uid
   when we are real root; an empty capability bounding set when we are root of a user
   namespace), sets no_new_privs and execs;
4. reaps every process of the namespace and watches their total RSS, killing them all when it
   goes over the memory budget;
5. when the program's main process ends, writes its wait status and resource usage to
   STATUS_FD and exits, which makes the kernel kill whatever is left in the namespace.

As a zygote (``python -I -S _init.py --zygote CTL_FD``, started once per ``Sandbox`` inside
namespaces made by ``unshare``) it does step 1 once, then for every request received on the
control socket (five descriptors: status, stdout, stderr, spec and lifeline pipes) forks a
child that unshares fresh mount, PID, network, IPC and UTS namespaces and forks the box's PID 1,
which mounts its own /proc and tmpfs /tmp, brings up lo and goes on with steps 2-5 (a closed
lifeline means the host cancelled the run: the box is killed). A program may come with a
compile step, run first in the same box and limits with its output kept apart; the program's
fd 3 is a nameless file whose content (a test harness's per-test verdicts) goes into the report.

With ``mode == "none"`` (``--unsafe-exec`` on a machine without namespaces) only the rlimits and
the clean environment apply; nothing is mounted and nothing outside the program's own process
group is ever signalled.

Only the standard library is used: this file runs before anything of the host is trusted to be
importable, and with ``-S`` so start-up stays short.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import resource
import select
import signal
import socket
import struct
import sys
import time
from typing import Any

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MOUNT_ATTR_RDONLY = 0x1
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
SYS_MOUNT_SETATTR = 442  # the same number on every architecture (new-style syscall table)
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
MS_NOEXEC = 0x8
CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
#: Where a compile step's output and the test harness's verdicts go (outside the work dir).
COMPILE_LOG = "/tmp/.synth-compile.log"
VERDICTS = "/tmp/.synth-verdicts"
#: The harness writes its per-test verdicts to this descriptor (a file the supervisor reads).
VERDICT_FD = 3
MAX_LOG = 64 * 1024

WORKDIR = "/tmp/work"
TICK_S = 0.02

_libc = ctypes.CDLL(None, use_errno=True)


class SetupError(Exception):
    """The box could not be built; reported to the host instead of running the program."""


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(err)} (errno {err})")


def _mount(source: str | None, target: str, fstype: str | None, flags: int,
           data: str | None = None) -> None:
    def enc(s: str | None) -> bytes | None:
        return s.encode() if s is not None else None

    _check(_libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
           f"mount {source or fstype} on {target}")


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def _readonly_tree(path: str) -> None:
    """Make ``path`` and every mount below it read-only (this mount namespace only)."""
    attr = _MountAttr(MOUNT_ATTR_RDONLY, 0, 0, 0)
    ret = _libc.syscall(SYS_MOUNT_SETATTR, AT_FDCWD, path.encode(), AT_RECURSIVE,
                        ctypes.byref(attr), ctypes.sizeof(attr))
    if ret == 0:
        return
    if ctypes.get_errno() != 38:  # ENOSYS: kernel older than 5.12, remount one by one
        _check(ret, f"mount_setattr {path}")
    for mountpoint, options in _mounts_under(path):
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        for opt, bit in (("nosuid", MS_NOSUID), ("nodev", MS_NODEV), ("noexec", 0x8)):
            if opt in options:  # locked flags must be kept or the remount is refused
                flags |= bit
        _libc.mount(None, mountpoint.encode(), None, ctypes.c_ulong(flags), None)


def _mounts_under(path: str) -> list[tuple[str, set[str]]]:
    out = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            parts = line.split()
            mp = parts[4].encode().decode("unicode_escape")
            if mp == path or mp.startswith(path.rstrip("/") + "/"):
                out.append((mp, set(parts[5].split(","))))
    return out


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def prepare_root(spec: dict[str, Any]) -> None:
    """Read-only root, hidden paths under empty tmpfs, ``keep`` paths bound back read-only."""
    keep = [p for p in spec["keep"] if os.path.exists(p)]
    keep_fds = {p: os.open(p, os.O_PATH | os.O_CLOEXEC) for p in keep}
    _readonly_tree("/")
    hidden: list[str] = []
    for path in sorted(set(spec["hide"]), key=len):
        if not os.path.isdir(path) or any(_under(path, h) for h in hidden) or path == "/":
            continue
        size = f"{spec['tmp_mb']}m" if path == "/tmp" else "4m"
        mode = "1777" if path in ("/tmp", "/dev/shm", "/var/tmp") else "0755"
        _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, f"size={size},mode={mode}")
        hidden.append(path)
    for path, fd in keep_fds.items():
        if any(_under(path, h) for h in hidden):
            os.makedirs(path, exist_ok=True)
            _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
            _readonly_tree(path)
        os.close(fd)
    for path in hidden:
        if path not in ("/tmp", "/dev/shm", "/var/tmp"):
            _mount(None, path, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    if "/tmp" not in hidden:
        _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={spec['tmp_mb']}m,mode=1777")


def build_box(spec: dict[str, Any]) -> None:
    """The one-shot path: the whole box built by the process ``unshare`` started."""
    prepare_root(spec)
    loopback_up()


def fresh_box(spec: dict[str, Any]) -> None:
    """In a zygote's box supervisor (PID 1 of fresh namespaces): its own /proc and /tmp, lo up."""
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={spec['tmp_mb']}m,mode=1777")
    loopback_up()


def mount_overlays(spec: dict[str, Any], uid: int | None) -> None:
    """Warm read-only caches (Go build cache, zig cache) made writable by a tmpfs upper layer,
    so a program can never change what the next box sees."""
    for i, ovl in enumerate(spec.get("overlays", [])):
        base = f"/tmp/.ovl{i}"
        upper, work, target = f"{base}/u", f"{base}/w", ovl["target"]
        for d in (upper, work, target):
            os.makedirs(d, exist_ok=True)
        if uid is not None:
            os.chown(upper, uid, uid)
            os.chown(target, uid, uid)
        _mount("overlay", target, "overlay", MS_NOSUID | MS_NODEV,
               f"lowerdir={ovl['lower']},upperdir={upper},workdir={work}")
        if uid is not None:
            os.chown(target, uid, uid)


def loopback_up() -> None:
    """Bring up ``lo`` of the new network namespace: the box can talk to itself, nothing else."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        req = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, siocgifflags, req))[1]
        fcntl.ioctl(sock, siocsifflags, struct.pack("16sH14x", b"lo", flags | iff_up))


def write_files(workdir: str, files: dict[str, str], uid: int | None) -> None:
    os.makedirs(workdir, mode=0o755, exist_ok=True)
    for rel, text in files.items():
        path = os.path.normpath(os.path.join(workdir, rel))
        if not _under(path, workdir):
            raise SetupError(f"file name {rel!r} leaves the work directory")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
    if uid is not None:
        for dirpath, dirnames, filenames in os.walk(workdir):
            for name in [dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]:
                os.chown(name, uid, uid)


def drop_capabilities() -> None:
    """Empty the bounding and ambient sets so the exec'd program holds no capability."""
    with open("/proc/sys/kernel/cap_last_cap") as fh:
        last = int(fh.read())
    for cap in range(last + 1):
        _check(_libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"drop capability {cap}")
    _libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)


def exec_program(spec: dict[str, Any], step: dict[str, Any], workdir: str,
                 stdio: tuple[int, int], verdict_fd: int | None) -> None:
    """In the forked child: descriptors, limits, privileges, exec. Never returns."""
    try:
        if spec["mode"] == "none":
            os.setpgid(0, 0)
        devnull = os.open("/dev/null", os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(stdio[0], 1)
        os.dup2(stdio[1], 2)
        if verdict_fd is not None:
            os.dup2(verdict_fd, VERDICT_FD)
            os.set_inheritable(VERDICT_FD, True)
            os.closerange(VERDICT_FD + 1, 1 << 16)
        else:
            os.closerange(3, 1 << 16)  # the status pipe, the lifeline, the spec: nothing leaks
        os.chdir(workdir)
        lim = spec["limits"]
        cpu_s = int(step["cpu_s"])
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
        if step.get("limit_as", True):
            resource.setrlimit(resource.RLIMIT_AS, (lim["as_bytes"], lim["as_bytes"]))
        resource.setrlimit(resource.RLIMIT_FSIZE, (lim["fsize_bytes"], lim["fsize_bytes"]))
        resource.setrlimit(resource.RLIMIT_NOFILE, (lim["nofile"], lim["nofile"]))
        resource.setrlimit(resource.RLIMIT_NPROC, (lim["nproc"], lim["nproc"]))
        if spec["mode"] == "root":
            uid = spec["uid"]
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
        elif spec["mode"] == "userns":
            drop_capabilities()
        _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        argv = step["argv"]
        os.execvpe(argv[0], argv, {**spec["env"], **step.get("env", {})})
    except BaseException as exc:  # report anything, then leave without running host code
        try:
            os.write(2, f"sandbox: cannot start {step['argv'][0]}: {exc}\n".encode())
        finally:
            os._exit(127)


def _anon_file(directory: str) -> int:
    """A file with no name (nothing in the box can open it by path), read back by us."""
    try:
        return os.open(directory, os.O_TMPFILE | os.O_RDWR, 0o600)
    except OSError:
        path = os.path.join(directory, f".synth-{os.getpid()}-{time.monotonic_ns()}")
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        os.unlink(path)
        return fd


def _read_tail(fd: int, limit: int) -> str:
    size = os.fstat(fd).st_size
    data = os.pread(fd, limit, max(0, size - limit))
    return data.decode("utf-8", errors="replace")


def run_steps(spec: dict[str, Any], workdir: str, out_fd: int, err_fd: int,
              lifeline: int | None) -> dict[str, Any]:
    """Run the compile step (if any) then the program, each forked with the box's limits.

    A compile step writes into a nameless file, so its warnings never mix with the program's
    output; when it fails its output is the report and the program never runs.
    """
    scratch = os.path.dirname(workdir.rstrip("/")) or "/tmp"
    report: dict[str, Any] = {}
    for step in spec["steps"]:
        compiling = bool(step.get("compile"))
        log = _anon_file(scratch)
        stdio = (log, log) if compiling else (out_fd, err_fd)
        child = os.fork()
        if child == 0:
            exec_program(spec, step, workdir, stdio, None if compiling else log)
        if spec["mode"] == "none":
            try:  # also here, so a kill right after fork cannot miss the group
                os.setpgid(child, child)
            except (PermissionError, ProcessLookupError):
                pass  # the child already exec'd (its own setpgid ran) or already ended
        result = supervise(child, spec, step, lifeline)
        if compiling:
            result["output"] = _read_tail(log, MAX_LOG)
            report["compile"] = result
            os.close(log)
            if result["wait_status"] != 0 or result["timed_out"] or result["mem_killed"]:
                report.update(result)
                report["compile_failed"] = True
                return report
            continue
        report.update(result)
        report["verdicts"] = _read_tail(log, 4 * MAX_LOG)
        os.close(log)
    return report


def namespace_rss() -> int:
    """Total resident memory of every process in this PID namespace except us."""
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    for name in os.listdir("/proc"):
        if not name.isdigit() or name == "1":
            continue
        try:
            with open(f"/proc/{name}/statm") as fh:
                total += int(fh.read().split()[1]) * page
        except (OSError, IndexError, ValueError):
            continue  # exited between listdir and open
    return total


def supervise(child: int, spec: dict[str, Any], step: dict[str, Any],
              lifeline: int | None) -> dict[str, Any]:
    """Reap until ``child`` ends; kill the box on timeout, over the memory budget, or when the
    host closes the lifeline (the run was cancelled or the host is gone)."""
    in_pid_ns = spec["mode"] != "none" and os.getpid() == 1
    budget = spec["limits"]["mem_total_bytes"]
    t0 = time.monotonic()
    deadline = t0 + step["timeout_s"]
    pidfd = os.pidfd_open(child)
    watch = [pidfd] + ([lifeline] if lifeline is not None else [])
    peak = 0
    why_killed = ""
    try:
        while True:
            ready, _, _ = select.select(watch, [], [], TICK_S)
            while True:
                try:
                    pid, status, usage = os.wait4(-1, os.WNOHANG)
                except ChildProcessError:
                    pid = 0
                if pid == 0:
                    break
                if pid == child:
                    return {"wait_status": status, "utime": usage.ru_utime,
                            "stime": usage.ru_stime, "maxrss_kb": usage.ru_maxrss,
                            "peak_rss": peak, "mem_killed": why_killed == "memory",
                            "timed_out": why_killed == "timeout",
                            "wall_s": time.monotonic() - t0}
            if why_killed:
                continue
            if lifeline is not None and lifeline in ready:
                why_killed = "cancelled"
                watch.remove(lifeline)
            if in_pid_ns:
                rss = namespace_rss()
                peak = max(peak, rss)
                if rss > budget:
                    why_killed = "memory"
            if time.monotonic() > deadline:
                why_killed = why_killed or "timeout"
            if why_killed:
                kill_box(child, in_pid_ns)
    finally:
        os.close(pidfd)


def kill_box(child: int, in_pid_ns: bool) -> None:
    """SIGKILL everything in the box."""
    # Only as PID 1 of our own PID namespace does kill(-1) mean "everything in the box";
    # without one, the program runs in its own process group and only that group is killed.
    if in_pid_ns:
        os.kill(-1, signal.SIGKILL)
    else:
        try:
            os.killpg(child, signal.SIGKILL)
        except ProcessLookupError:
            pass


def main() -> int:
    """The one-shot path: this process is the box (``unshare ... _init.py STATUS_FD``)."""
    status_fd = int(sys.argv[1])
    spec = json.loads(sys.stdin.buffer.read())
    report: dict[str, Any]
    try:
        if spec["mode"] != "none":
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            # Not dumpable: a program with our uid (user namespaces) cannot ptrace us.
            _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
            build_box(spec)
            workdir = WORKDIR
        else:
            workdir = spec["workdir"]
        uid = spec["uid"] if spec["mode"] == "root" else None
        write_files(workdir, spec["files"], uid)
        if spec["mode"] != "none":
            mount_overlays(spec, uid)
    except (SetupError, OSError) as exc:
        report = {"setup_error": str(exc)}
    else:
        out_fd, err_fd = os.dup(1), os.dup(2)
        # Our copies of the output pipes must not keep the host reading after the box is gone.
        devnull = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        report = run_steps(spec, workdir, out_fd, err_fd, None)
    os.write(status_fd, json.dumps(report).encode())
    os.close(status_fd)
    return 0


# -- the zygote ------------------------------------------------------------------------------

def _read_fd(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def zygote_box(fds: list[int]) -> None:
    """A forked copy of the zygote becomes one box. Never returns."""
    status_w, out_w, err_w, spec_r, life_r = fds
    report: dict[str, Any]
    try:
        _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC
                             | CLONE_NEWUTS), "unshare")
        if os.fork() != 0:
            os._exit(0)  # the box's PID 1 is reparented to (and reaped by) the zygote
        os.setsid()
        spec = json.loads(_read_fd(spec_r))
        os.close(spec_r)
        fresh_box(spec)
        uid = spec["uid"] if spec["mode"] == "root" else None
        write_files(WORKDIR, spec["files"], uid)
        mount_overlays(spec, uid)
        report = run_steps(spec, WORKDIR, out_w, err_w, life_r)
    except (SetupError, OSError, ValueError, KeyError) as exc:
        report = {"setup_error": f"{type(exc).__name__}: {exc}"}
    try:
        os.write(status_w, json.dumps(report).encode())
    finally:
        os._exit(0)  # PID 1 leaving makes the kernel kill whatever is left in the box


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def zygote(ctl_fd: int) -> int:
    """Started once per Sandbox inside fresh namespaces; forks one box per request.

    It holds nothing secret (its environment is built from scratch by the host), it cannot be
    traced (not dumpable, no_new_privs, and every box is a PID namespace below it that cannot
    see it), and it leaves as soon as the host closes the control socket; as PID 1 of its own
    namespace, leaving kills every box.
    """
    ctl = socket.socket(fileno=ctl_fd)
    base = json.loads(sys.stdin.buffer.read())
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    try:
        prepare_root(base)
    except (SetupError, OSError) as exc:
        ctl.send(json.dumps({"setup_error": str(exc)}).encode())
        return 1
    ctl.send(b'{"ready": true}')
    while True:
        ready, _, _ = select.select([ctl], [], [], 1.0)
        _reap()
        if not ready:
            continue
        try:
            msg, fds, _, _ = socket.recv_fds(ctl, 64, 8)
        except OSError:
            return 0
        if not msg:
            return 0  # the host is gone
        if len(fds) != 5:
            for fd in fds:
                os.close(fd)
            continue
        if os.fork() == 0:
            ctl.close()
            zygote_box(fds)
        for fd in fds:
            os.close(fd)


if __name__ == "__main__":
    if sys.argv[1] == "--zygote":
        sys.exit(zygote(int(sys.argv[2])))
    sys.exit(main())
