"""Instructions per request of the generate loop, this tree against another revision.

CPU-time benchmarks on a shared VM move by ±30% from one run to the next; instruction counts
do not. This runs ``synth generate --task codegen --no-discriminator --verify off`` under
valgrind's callgrind with instrumentation switched on only while records flow (around
``run_stages``: start-up, imports and the dataset write are not counted), at two sizes, for this
tree and for ``--base`` (checked out in a temporary git worktree), against one instant local
server (tests/fake_openai.py). Reported: instructions per request, ``(Ir(N) - Ir(n)) / (N -
n)``, and the ratio to the base. Under valgrind the client runs ~50x slower, so the store's
50 ms bursts hold fewer responses than in a real run: compare sides, not absolute costs.

Needs valgrind, its ``valgrind/callgrind.h`` and a C compiler (a 3-line shim switches the
instrumentation from Python through ctypes).

    python benchmarks/bench_instructions.py [--base a0338fe] [--small 100] [--requests 400]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_client import CLIENT_CORE, generate_cmd, make_seeds, pinning, start_server  # noqa: E402

SHIM = """#include <valgrind/callgrind.h>
void start(void) { CALLGRIND_ZERO_STATS; CALLGRIND_START_INSTRUMENTATION; }
void stop(void) { CALLGRIND_STOP_INSTRUMENTATION; CALLGRIND_DUMP_STATS_AT("loop"); }
"""

# Modules the loop imports on first need (detect-secrets' plugins for the first keyword line,
# a tokenizer for the first count): imported before counting starts, or a one-time import that
# lands in one run size only would count as per-request cost. Modules still imported while
# counting are written to a side file and reported.
PRELOAD = ("detect_secrets.core.plugins.util", "tiktoken", "requests")

WRAPPER = """import ctypes, importlib, runpy, sys
shim = ctypes.CDLL(sys.argv.pop(1))
imported = open(sys.argv.pop(1), "w")
for name in PRELOAD_NAMES:
    try:
        importlib.import_module(name)
    except ImportError:
        pass
import synth.job as job
inner = job.run_stages
counting = False
def hook(event, args):
    if counting and event == "import" and args[0] not in sys.modules:
        imported.write(args[0] + "\\n")
sys.addaudithook(hook)
def run_stages(*args, **kwargs):
    global counting
    shim.start()
    counting = True
    try:
        return inner(*args, **kwargs)
    finally:
        counting = False
        shim.stop()
        imported.flush()
job.run_stages = run_stages
sys.argv[0] = "synth"
runpy.run_module("synth", run_name="__main__")
""".replace("PRELOAD_NAMES", repr(PRELOAD))


def build_shim(tmp: Path) -> Path:
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed")
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise SystemExit("no C compiler (cc/gcc) for the callgrind shim")
    (tmp / "shim.c").write_text(SHIM)
    lib = tmp / "libshim.so"
    proc = subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", str(lib), str(tmp / "shim.c")],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"cannot build the callgrind shim: {proc.stderr.strip()[-300:]}")
    (tmp / "wrap.py").write_text(WRAPPER)
    return lib


def instructions(tree: Path, lib: Path, tmp: Path, url: str, seeds: Path, n: int,
                 tag: str) -> tuple[int, set[str]]:
    """Instructions callgrind counted while ``n`` records went through the stages, and the
    modules first imported meanwhile."""
    out = tmp / f"cg-{tag}-{n}"
    run_dir = tmp / f"run-{tag}-{n}"
    imported = tmp / f"imported-{tag}-{n}.txt"
    pin = ["taskset", "-c", str(CLIENT_CORE)] if pinning() and shutil.which("taskset") else []
    cmd = [*pin, "valgrind", "--tool=callgrind", "--instr-atstart=no",
           f"--callgrind-out-file={out}.%p", sys.executable, str(tmp / "wrap.py"), str(lib),
           str(imported), *generate_cmd(url, seeds, run_dir, n, 64)[2:]]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tree,
                          env={**os.environ, "PYTHONPATH": str(tree)})
    stats = json.loads((run_dir / "stats.json").read_text()) if proc.returncode == 0 else {}
    if int(stats.get("llm", {}).get("requests", 0)) != n:
        raise SystemExit(f"{tag}: generate failed or sent the wrong number of requests: "
                         f"{proc.stderr.strip()[-400:]}")
    dumps = sorted(tmp.glob(f"{out.name}.*.1"))  # the dump made at the end of run_stages
    for line in dumps[-1].read_text().splitlines() if dumps else ():
        if line.startswith("totals:"):
            return int(line.split()[1]), set(imported.read_text().split())
    raise SystemExit(f"{tag}: no callgrind dump for the loop in {tmp}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="a0338fe", help="git revision to compare with")
    ap.add_argument("--small", type=int, default=100)
    ap.add_argument("--requests", type=int, default=400)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-instr-"))
    base_tree = tmp / "base"
    subprocess.run(["git", "worktree", "add", "--detach", "-f", str(base_tree), args.base],
                   cwd=ROOT, check=True, capture_output=True)
    proc, url = start_server(tmp)
    rows = []
    warnings: list[str] = []
    try:
        lib = build_shim(tmp)
        seeds = make_seeds(tmp, 2 * args.requests)
        for tag, tree in (("base", base_tree), ("this tree", ROOT)):
            small, first = instructions(tree, lib, tmp, url, seeds, args.small,
                                        tag.replace(" ", "-"))
            big, then = instructions(tree, lib, tmp, url, seeds, args.requests,
                                     tag.replace(" ", "-"))
            rows.append((tag, (big - small) / (args.requests - args.small)))
            if first != then:
                warnings.append(f"{tag}: modules imported while counting in one size only "
                                f"(their import counts as per-request cost): "
                                f"{', '.join(sorted(first ^ then))}")
    finally:
        proc.terminate()
        subprocess.run(["git", "worktree", "remove", "--force", str(base_tree)], cwd=ROOT,
                       capture_output=True)
    base = rows[0][1]
    print(f"synth generate loop, instructions per request (callgrind, {args.small} vs "
          f"{args.requests} requests; base {args.base})\n")
    print("| side | instructions per request | x base |")
    print("|---|---|---|")
    for tag, per in rows:
        print(f"| {tag} | {per / 1e6:.3f} M | {per / base:.2f} |")
    for warning in warnings:
        print(f"\nwarning: {warning}")


if __name__ == "__main__":
    main()
