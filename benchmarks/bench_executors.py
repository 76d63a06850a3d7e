"""Local vs Ray (local mode) on the same small job: wall time (Ray's overhead) and equal rows.

In one process, for each executor: extract seeds from this repository's ``synth`` package, then
``generate`` codegen samples with the discriminator loop and the verify step (each
sample's tests in the sandbox: Ray tasks on Ray) against the fake endpoint
(``tests/fake_openai.py``, ``--delay`` seconds per request), then ``decontam`` the result.
Ray runs as a local instance with ``--cpus`` CPUs started once (its start-up time is reported
separately). Rows of every step must be equal; the table shows seconds per step.

    python benchmarks/bench_executors.py [--num 40] [--delay 0.05] [--cpus 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from conftest import start_fake  # noqa: E402

from synth import jobs  # noqa: E402
from synth.config import GenerateConfig, LLMConfig, SeedsConfig  # noqa: E402
from synth.executors import Executor, use  # noqa: E402
from synth.filters.benchmarks import humaneval  # noqa: E402
from synth.io.seeds import write_seeds  # noqa: E402
from synth.seeds.extract import extract_seeds  # noqa: E402


def job(executor: Executor, work: Path, url: str, num: int) -> dict[str, float]:
    times: dict[str, float] = {}
    t = time.perf_counter()
    seeds = work / "seeds.jsonl"
    write_seeds(extract_seeds([ROOT / "synth"], SeedsConfig(per_file=3), Counter(),
                              executor=executor), seeds)
    times["extract"] = time.perf_counter() - t
    with use(executor):
        t = time.perf_counter()
        jobs.generate(work / "gen", GenerateConfig(task="codegen", num=num, seed=1),
                      LLMConfig(base_url=url, concurrency=8), seeds)
        times["generate"] = time.perf_counter() - t
        t = time.perf_counter()
        jobs.decontam(work / "gen" / "dataset", work / "dec", [humaneval()])
        times["decontam"] = time.perf_counter() - t
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--num", type=int, default=40)
    ap.add_argument("--delay", type=float, default=0.05)
    ap.add_argument("--cpus", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        fake = start_fake(base, delay=args.delay)
        try:
            local = job(Executor(), base / "local", fake.base_url, args.num)
            t = time.perf_counter()
            from synth.executors.ray import RayExecutor

            rx = RayExecutor(num_cpus=args.cpus, actors=2)
            start = time.perf_counter() - t
            try:
                on_ray = job(rx, base / "ray", fake.base_url, args.num)
            finally:
                rx.close()
        finally:
            fake.proc.terminate()
            fake.proc.wait()
        same = {}
        for name in ("seeds.jsonl", "gen/dataset/jsonl/train.jsonl",
                     "dec/dataset/jsonl/train.jsonl"):
            a = (base / "local" / name).read_text()
            b = (base / "ray" / name).read_text()
            same[name] = (a == b, len(a.splitlines()))
    print(f"Ray local mode, {args.cpus} CPUs; fake endpoint delay {args.delay}s; "
          f"{args.num} seeds; Ray start-up {start:.2f} s\n")
    print("| step | local s | ray s | overhead s | rows | equal |")
    print("|---|---:|---:|---:|---:|---|")
    files = dict(zip(("extract", "generate", "decontam"), same.values(), strict=True))
    for step in ("extract", "generate", "decontam"):
        eq, rows = files[step]
        print(f"| {step} | {local[step]:.2f} | {on_ray[step]:.2f} | "
              f"{on_ray[step] - local[step]:+.2f} | {rows} | {'yes' if eq else 'NO'} |")
    total_l, total_r = sum(local.values()), sum(on_ray.values())
    print(f"| total | {total_l:.2f} | {total_r:.2f} | {total_r - total_l:+.2f} | | |")
    if not all(eq for eq, _ in same.values()):
        raise SystemExit("rows differ between executors")


if __name__ == "__main__":
    main()
