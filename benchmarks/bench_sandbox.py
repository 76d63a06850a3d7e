"""Sandbox speed: the one-shot box (``unshare`` + a Python supervisor per program) vs the zygote.

For each language with a runtime here, the same small program (a correct solution with one
test, or ``print(1)`` for the bare Python line) runs N times through each path in one process:

- exec/s: wall-clock throughput with ``--parallel`` boxes at once (default: the core count);
- CPU ms/exec: all CPU the run cost (this process plus every process below it, reaped), per
  execution; the throughput a loaded machine can reach is cores / this;
- overhead ms: CPU ms/exec minus the CPU of the same program run bare (no box) where the bare
  run is simple (interpreted languages).

Run: ``python benchmarks/bench_sandbox.py [-n 200] [--parallel 2] [--langs python,js]``.
The numbers depend on the machine's load: on a shared machine, compare the two paths of one
run, not runs with each other.
"""

from __future__ import annotations

import argparse
import functools
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from synth.config import SandboxConfig
from synth.sandbox import ExecStatus, Program, Sandbox, python_program
from synth.sandbox.languages import runtime, test_program

SAMPLES = {
    "python": ("def add(a, b):\n    return a + b\n", "assert add(1, 2) == 3\n"),
    "javascript": ("function add(a, b) { return a + b; }\n", "assert.strictEqual(add(1, 2), 3);\n"),
    "typescript": ("function add(a: number, b: number): number { return a + b; }\n",
                   "assert.strictEqual(add(1, 2), 3);\n"),
    "shell": ("add() { echo $(( $1 + $2 )); }\n", '[ "$(add 1 2)" = 3 ]\n'),
    "c": ("int add(int a, int b) { return a + b; }\n", "assert(add(1, 2) == 3);\n"),
    "cpp": ("int add(int a, int b) { return a + b; }\n", "assert(add(1, 2) == 3);\n"),
    "go": ("func Add(a, b int) int { return a + b }\n",
           "func TestAdd(t *testing.T) {\n\tif Add(1, 2) != 3 {\n\t\tt.Fatal(\"add\")\n\t}\n}\n"),
    "java": ("class Calc { static int add(int a, int b) { return a + b; } }\n",
             "assert Calc.add(1, 2) == 3;\n"),
    "rust": ("fn add(a: i32, b: i32) -> i32 { a + b }\n",
             "#[test]\nfn one() { assert_eq!(add(1, 2), 3); }\n"),
}
#: Executions per path as a share of -n: compiled languages cost seconds each.
SCALE = {"python": 1.0, "print(1)": 1.0, "javascript": 0.2, "typescript": 0.2, "shell": 0.5,
         "c": 0.05, "cpp": 0.03, "go": 0.03, "java": 0.02, "rust": 0.03}
INTERPRETED = {"print(1)", "python", "javascript", "typescript", "shell"}


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _program(lang: str) -> Program:
    if lang == "print(1)":
        return python_program("print(1)")
    return test_program(lang, *SAMPLES[lang])


def measure(lang: str, n: int, parallel: int, zygote: bool) -> tuple[float, float, int]:
    """(exec/s, CPU ms/exec, passed) over ``n`` runs; CPU counted after the zygote is reaped."""
    programs = [_program(lang) for _ in range(n)]
    config = SandboxConfig(timeout_s=60, parallel=parallel)
    with Sandbox(config, _use_zygote=zygote) as box:
        box.run_sync(_program(lang))  # warm-up: zygote start, caches, page cache
        box.close()  # reap the warm-up's zygote so its CPU is not counted below
    box = Sandbox(config, _use_zygote=zygote)
    cpu0 = _cpu()
    t0 = time.perf_counter()
    results = box.run_many(programs)
    wall = time.perf_counter() - t0
    box.close()
    cpu = _cpu() - cpu0
    passed = sum(r.status == ExecStatus.PASSED for r in results)
    return n / wall, 1000 * cpu / n, passed


def bare_cpu_ms(lang: str, n: int) -> float:
    """CPU ms of the same program run with no box (files in a temp dir, same argv and env)."""
    program = _program(lang)
    env = {"PATH": f"{os.path.dirname(sys.executable)}:/usr/bin:/bin", "LANG": "C.UTF-8",
           **dict(program.env or {})}
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in program.files.items():
            Path(tmp, name).write_text(text)
        cpu0 = _cpu()
        for _ in range(n):
            if program.compile:
                subprocess.run(program.compile, cwd=tmp, env=env, capture_output=True,
                               check=False)
            # fd 3 is where harnesses write verdicts; give them a file like the box does.
            with open(Path(tmp, ".verdicts"), "w") as fh:
                subprocess.run(program.argv, cwd=tmp, env=env, capture_output=True,
                               close_fds=False, check=False,
                               preexec_fn=functools.partial(os.dup2, fh.fileno(), 3))
        return 1000 * (_cpu() - cpu0) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200, help="Python executions per path")
    parser.add_argument("--parallel", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--langs", default="print(1),python,javascript,typescript,shell,c,cpp,"
                        "go,java,rust")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} "
          f"(shared with other jobs); parallel {args.parallel}")
    print("| language | runs | one-shot exec/s | zygote exec/s | one-shot CPU ms/exec | "
          "zygote CPU ms/exec | bare CPU ms | zygote overhead ms | passed |")
    print("|---|---|---|---|---|---|---|---|---|")
    for lang in args.langs.split(","):
        if lang != "print(1)" and runtime(lang) is None:
            print(f"| {lang} | - | no runtime | | | | | | |")
            continue
        n = max(3, int(args.n * SCALE.get(lang, 0.05)))
        old_rate, old_cpu, old_ok = measure(lang, n, args.parallel, zygote=False)
        new_rate, new_cpu, new_ok = measure(lang, n, args.parallel, zygote=True)
        bare = bare_cpu_ms(lang, max(3, n // 4)) if lang in INTERPRETED else float("nan")
        overhead = new_cpu - bare
        print(f"| {lang} | {n} | {old_rate:.1f} | {new_rate:.1f} | {old_cpu:.1f} | "
              f"{new_cpu:.1f} | {bare:.1f} | {overhead:.1f} | {old_ok}+{new_ok}/{2 * n} |",
              flush=True)


if __name__ == "__main__":
    main()
