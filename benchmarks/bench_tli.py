"""TLI speed: synth's one-pass n-gram index vs XCoder's pairwise set intersections.

Both sides compute XCoder's TLI (word 4/5-grams with nltk-style padding, top-1) of a training set
against HumanEval's 164 prompts, on the same data in one run:

- pairwise: XCoder's ``compute_TLI.py`` algorithm — gram sets for every sample, then
  ``len(train & test)`` for every (test, train) pair with a top-k heap per test item. It is
  quadratic, so it runs at small sizes and its 1M time is extrapolated linearly from the largest
  size measured (the work is exactly proportional to the number of training samples).
- ours: :func:`synth.filters.tli.compute_tli` on in-memory records, and end to end at full
  size: ``synth tli --train FILE.jsonl`` in a fresh process (reading, TLI, report).

Training data: the real Code Alpaca rows (shared/data/code_alpaca), resampled with perturbations
(15% of words replaced by words drawn from the corpus, inputs swapped between rows) to the
requested size, so the n-gram statistics stay those of a real instruction set.

Run: ``python benchmarks/bench_tli.py [--sizes 2000,10000] [--full 1000000] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from synth.filters.benchmarks import Benchmark, humaneval  # noqa: E402
from synth.filters.ngrams import word_ngrams  # noqa: E402
from synth.filters.tli import compute_tli  # noqa: E402
from synth.io.rows import row_to_record  # noqa: E402


def find_code_alpaca() -> Path:
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "data" / "code_alpaca"
        if candidate.is_dir():
            return candidate
    raise SystemExit("shared/data/code_alpaca not found beside the repository")


def load_rows() -> list[dict[str, str]]:
    root = find_code_alpaca()
    rows: list[dict[str, str]] = []
    for name in ("code_alpaca_2k.jsonl", "new_codealpaca.jsonl"):
        with open(root / name, encoding="utf-8") as fh:
            rows += [json.loads(line) for line in fh if line.strip()]
    return rows


def synthesize(rows: list[dict[str, str]], n: int, seed: int = 0) -> list[dict[str, str]]:
    """``n`` Code-Alpaca-like rows: resampled, 15% of words replaced, inputs swapped."""
    rng = random.Random(seed)
    pool = [w for r in rows for w in r["instruction"].split()]
    out = []
    for i in range(n):
        base = rows[rng.randrange(len(rows))]
        words = [rng.choice(pool) if rng.random() < 0.15 else w
                 for w in base["instruction"].split()]
        inp = rows[rng.randrange(len(rows))]["input"] if rng.random() < 0.3 else base["input"]
        out.append({"id": f"syn-{i}", "instruction": " ".join(words), "input": inp,
                    "output": base["output"]})
    return out


def pairwise_tli(train_texts: list[str], test_texts: list[str], k: int = 1) -> float:
    """XCoder's algorithm: every (test, train) pair's set intersection, a heap per test."""
    train = [word_ngrams(t) for t in train_texts]
    leakage = []
    for test in (word_ngrams(t) for t in test_texts):
        heap: list[tuple[float, int]] = []
        size = len(test)
        for i, g in enumerate(train):
            sim = len(g & test) / size
            if len(heap) < k:
                heapq.heappush(heap, (sim, i))
            else:
                heapq.heappushpop(heap, (sim, i))
        leakage.append(float(np.mean([s for s, _ in heap])))
    return float(np.mean(leakage))


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, float, Any]:
    """Median wall and CPU seconds of ``repeats`` calls, and the last value."""
    walls, cpus, value = [], [], None
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        value = fn()
        cpus.append(time.process_time() - c0)
        walls.append(time.perf_counter() - w0)
    return statistics.median(walls), statistics.median(cpus), value


def cli_tli(path: Path, out: Path) -> dict[str, Any]:
    """``synth tli`` in a fresh process, as a user runs it."""
    code = "from synth.cli import app; app()"
    subprocess.run([sys.executable, "-c", code, "tli", "--train", str(path), "--out", str(out)],
                   check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    return json.loads(out.read_text())


def timed_child(fn: Callable[[], Any], repeats: int) -> tuple[float, float, Any]:
    """Like :func:`timed` for work done in child processes (CPU from RUSAGE_CHILDREN)."""
    walls, cpus, value = [], [], None
    for _ in range(repeats):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        w0 = time.perf_counter()
        value = fn()
        walls.append(time.perf_counter() - w0)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
    return statistics.median(walls), statistics.median(cpus), value


def in_memory(rows: list[dict[str, str]], he: Benchmark,
              repeats: int) -> tuple[float, float, dict[str, Any]]:
    """Ours on records already in memory (their construction is not timed)."""
    recs = [row_to_record(r, i, "bench") for i, r in enumerate(rows)]
    return timed(lambda: compute_tli(recs, he), repeats)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="2000,10000", help="sizes run by both sides")
    ap.add_argument("--full", type=int, default=1_000_000, help="size run by ours only")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    he = humaneval()
    tests = he.texts(["prompt"])
    data = synthesize(load_rows(), max(sizes + [args.full]))
    rows: list[tuple[str, str, str, str, str]] = []
    load0 = os.getloadavg()[0]

    def row(n: str, pair: str, wall: float, cpu: float, ratio: str, tli: float,
            same: str) -> None:
        rows.append((n, pair, f"{wall:.2f} / {cpu:.2f}", ratio, f"{tli:.5f}", same))

    last_pair = (0, 0.0, 0.0)
    for n in sizes:
        sub = data[:n]
        texts = [r["instruction"] + " " + r["input"] for r in sub]
        recs = [row_to_record(r, i, "bench") for i, r in enumerate(sub)]
        pw, pc, v_pair = timed(lambda texts=texts: pairwise_tli(texts, tests), args.repeats)
        ow, oc, rep = timed(lambda recs=recs: compute_tli(recs, he), args.repeats)
        same = abs(rep["tli_mean"] - v_pair) <= 1e-12 * max(1.0, v_pair)
        assert same, f"TLI differs at N={n}: {rep['tli_mean']} vs {v_pair}"
        row(f"{n:,}", f"{pw:.2f} / {pc:.2f}", ow, oc, f"{pw / ow:.0f}x", v_pair, "yes")
        last_pair = (n, pw, pc)

    n_p, pw, pc = last_pair
    ow, oc, rep_full = in_memory(data[:args.full], he, args.repeats)
    scale = args.full / n_p
    row(f"{args.full:,} in memory", f"~{pw * scale:.0f} / ~{pc * scale:.0f} (extrapolated "
        f"from N={n_p:,})", ow, oc, f"~{pw * scale / ow:.0f}x", rep_full["tli_mean"], "n/a")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.jsonl"
        with open(path, "w", encoding="utf-8") as fh:
            for r in data[:args.full]:
                fh.write(json.dumps(r) + "\n")
        del data  # the CLI run should not share the machine's memory with our copy
        ew, ec, rep_e2e = timed_child(lambda: cli_tli(path, Path(tmp) / "tli.json"),
                                      args.repeats)
    row(f"{args.full:,} `synth tli` from jsonl", "-", ew, ec, "-", rep_e2e["tli_mean"],
        "yes" if rep_e2e["tli_mean"] == rep_full["tli_mean"] else "NO")

    print(f"# TLI: {len(tests)} HumanEval prompts x N Code-Alpaca-like training samples\n")
    print(f"machine: {platform.platform()}, {os.cpu_count()} cpus, python "
          f"{platform.python_version()}, numpy {np.__version__}; load average "
          f"{load0:.1f} at start, {os.getloadavg()[0]:.1f} at end (the cores are shared, so "
          f"wall times include waiting; CPU seconds do not); medians of {args.repeats} runs\n")
    print("| N train | pairwise (XCoder) wall / CPU s | synth wall / CPU s | speed-up (wall) "
          "| TLI-mean@1 | same value |")
    print("|---|---:|---:|---:|---:|:---:|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
