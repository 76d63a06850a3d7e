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

With ``mode == "none"`` (``--unsafe-exec`` on a machine without namespaces) only the rlimits and
the clean environment apply; nothing is mounted and nothing outside the program's own process
group is ever signalled.

Only the standard library is used: this file runs before anything of the host is trusted to be
importable, and with ``-S`` so start-up stays short.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import select
import signal
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


def build_box(spec: dict[str, Any]) -> None:
    """Read-only root, hidden paths, interpreter paths bound back, tmpfs work directory."""
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
    loopback_up()


def loopback_up() -> None:
    """Bring up ``lo`` of the new network namespace: the box can talk to itself, nothing else."""
    import fcntl
    import socket
    import struct

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


def exec_program(spec: dict[str, Any], workdir: str, status_fd: int) -> None:
    """In the forked child: limits, privileges, exec. Never returns."""
    try:
        if spec["mode"] == "none":
            os.setpgid(0, 0)
        os.close(status_fd)
        devnull = os.open("/dev/null", os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.chdir(workdir)
        lim = spec["limits"]
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_CPU, (lim["cpu_s"], lim["cpu_s"] + 1))
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
        os.execvpe(spec["argv"][0], spec["argv"], spec["env"])
    except BaseException as exc:  # report anything, then leave without running host code
        try:
            os.write(2, f"sandbox: cannot start {spec['argv'][0]}: {exc}\n".encode())
        finally:
            os._exit(127)


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


def supervise(child: int, spec: dict[str, Any]) -> dict[str, Any]:
    """Reap until ``child`` ends; kill the box on timeout or when its memory is over budget."""
    in_pid_ns = spec["mode"] != "none" and os.getpid() == 1
    budget = spec["limits"]["mem_total_bytes"]
    deadline = time.monotonic() + spec["timeout_s"]
    pidfd = os.pidfd_open(child)
    peak = 0
    why_killed = ""
    while True:
        select.select([pidfd], [], [], TICK_S)
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
                        "timed_out": why_killed == "timeout"}
        if why_killed:
            continue
        if in_pid_ns:
            rss = namespace_rss()
            peak = max(peak, rss)
            if rss > budget:
                why_killed = "memory"
        if time.monotonic() > deadline:
            why_killed = "timeout"
        if why_killed:
            kill_box(child, in_pid_ns)


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
        write_files(workdir, spec["files"], spec["uid"] if spec["mode"] == "root" else None)
    except (SetupError, OSError) as exc:
        report = {"setup_error": str(exc)}
    else:
        t0 = time.monotonic()
        child = os.fork()
        if child == 0:
            exec_program(spec, workdir, status_fd)
        if spec["mode"] == "none":
            try:  # also here, so a kill right after fork cannot miss the group
                os.setpgid(child, child)
            except (PermissionError, ProcessLookupError):
                pass  # the child already exec'd (its own setpgid ran) or already ended
        # Our copies of the output pipes must not keep the host reading after the box is gone.
        devnull = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        report = supervise(child, spec)
        report["wall_s"] = time.monotonic() - t0
    os.write(status_fd, json.dumps(report).encode())
    os.close(status_fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
