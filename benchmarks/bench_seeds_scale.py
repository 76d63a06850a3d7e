"""Seed extraction at scale: seconds over the CPython standard library, RSS over 100k files.

1. ``stdlib``: ``extract_seeds`` + ``write_seeds`` (what ``synth seeds extract`` runs) over this
   Python's standard library in each mode; median of ``--repeats`` runs, in-process wall time.
2. ``rss``: a generated corpus of ``--files`` small Python files (100 per directory, distinct
   content) is extracted in a fresh subprocess while a thread samples VmRSS against the number
   of files read. Flat RSS = streaming; what still grows is the dedup index (a 16-byte key per
   kept seed) and the file index is streamed to disk.

Usage::

    python benchmarks/bench_seeds_scale.py              # both
    python benchmarks/bench_seeds_scale.py --files 100000 --only rss
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from synth.config import SeedsConfig  # noqa: E402
from synth.io.seeds import write_seeds  # noqa: E402
from synth.seeds.extract import FileIndex, extract_seeds  # noqa: E402

CACHE = ROOT / "benchmarks" / ".cache"


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def stdlib_seconds(mode: str, repeats: int, near_dedup: float = 0.0) -> tuple[float, int, list]:
    root = Path(sysconfig.get_paths()["stdlib"])
    times, n = [], 0
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            counts: Counter[str] = Counter()
            t0 = time.perf_counter()
            index = FileIndex(Path(tmp))
            n = write_seeds(extract_seeds([root], SeedsConfig(mode=mode, near_dedup=near_dedup),
                                          counts, index=index), Path(tmp) / "seeds.jsonl")
            index.commit()
            times.append(time.perf_counter() - t0)
    return statistics.median(times), n, times


def make_corpus(path: Path, files: int) -> None:
    marker = path / f".complete-{files}"
    if marker.exists():
        return
    rng = random.Random(0)
    words = ["alpha", "beta", "gamma", "delta", "items", "total", "value", "index", "cache",
             "buffer", "parse", "render", "user", "node", "edge", "graph", "queue", "token"]
    for i in range(files):
        d = path / f"pkg{i // 100:04d}"
        if i % 100 == 0:
            d.mkdir(parents=True, exist_ok=True)
        body = []
        for j in range(rng.randint(2, 6)):
            a, b, c = rng.sample(words, 3)
            body.append(f"def {a}_{b}_{i}_{j}({c}, limit={rng.randint(1, 999)}):\n"
                        f"    \"\"\"Return the {a} of {c} for file {i}.\"\"\"\n"
                        f"    result = [{c}_item * {rng.randint(2, 50)} for {c}_item in {c}]\n"
                        f"    if len(result) > limit:\n"
                        f"        result = result[:limit]\n"
                        f"    return sum(result) + {rng.randint(0, 10_000)}\n")
        (d / f"mod_{i}.py").write_text("\n\n".join(body))
    marker.touch()


def rss_child(corpus: str, out: str, mode: str) -> None:
    """Runs in a subprocess: extract while sampling RSS; prints JSON samples."""
    counts: Counter[str] = Counter()
    samples: list[tuple[int, float]] = [(0, rss_mb())]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.25):
            samples.append((counts["files_read"], rss_mb()))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    t0 = time.perf_counter()
    index = FileIndex(Path(out))
    n = write_seeds(extract_seeds([Path(corpus)], SeedsConfig(mode=mode), counts, index=index),
                    Path(out) / "seeds.jsonl")
    index.commit()
    seconds = time.perf_counter() - t0
    done.set()
    thread.join()
    samples.append((counts["files_read"], rss_mb()))
    print(json.dumps({"seeds": n, "files": counts["files_read"], "seconds": seconds,
                      "samples": samples}))


def rss_run(files: int, mode: str) -> dict:
    corpus = CACHE / f"corpus_{files}"
    t0 = time.perf_counter()
    make_corpus(corpus, files)
    print(f"corpus of {files} files ready in {time.perf_counter() - t0:.0f} s", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([sys.executable, __file__, "--child", str(corpus), tmp, mode],
                              capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--only", choices=["stdlib", "rss"])
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        rss_child(*args.child)
        return
    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus, python "
          f"{platform.python_version()}, load average {os.getloadavg()[0]:.1f}")
    if args.only in (None, "stdlib"):
        print("\n| input | mode | seeds | median s | runs (s) |\n|---|---|---|---|---|")
        for mode, nd in (("window", 0.0), ("window", 0.85), ("function", 0.0), ("file", 0.0)):
            med, n, runs = stdlib_seconds(mode, args.repeats, nd)
            label = mode + (f" + near-dedup {nd}" if nd else "")
            print(f"| CPython stdlib | {label} | {n} | {med:.2f} | "
                  f"{', '.join(f'{t:.2f}' for t in runs)} |", flush=True)
    if args.only in (None, "rss"):
        for mode in ("window", "function"):
            r = rss_run(args.files, mode)
            marks = {}
            for files, mb in r["samples"]:
                bucket = min(r["files"], round(files / (r["files"] / 10)) * (r["files"] // 10))
                marks.setdefault(bucket, mb)
            print(f"\n{mode}: {r['files']} files → {r['seeds']} seeds in {r['seconds']:.1f} s "
                  f"({r['files'] / r['seconds']:.0f} files/s)")
            print("| files read | RSS MB |\n|---|---|")
            for files, mb in sorted(marks.items()):
                print(f"| {files} | {mb:.0f} |")
            print(f"| end | {r['samples'][-1][1]:.0f} |")


if __name__ == "__main__":
    main()
