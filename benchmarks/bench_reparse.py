"""Re-parse from the cache: a rerun after a parser change over many cached responses.

Fills a run store with ``--n`` cached codegen replies (JSON answers, as the endpoint gives them),
then streams them back and re-parses each exactly as the loop does (parse_codegen, the echo check
against the request wording). Reported: records/s of the stream alone and of stream + parse, and
the peak RSS growth while streaming (flat memory: it must not grow with ``--n``).

``--generate M`` also times a real ``synth generate`` rerun over M records whose responses are
all cached (process start, prompt rendering, cache lookups, parse, dataset write).

    python benchmarks/bench_reparse.py [--n 100000] [--generate 0]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from synth.generators.codegen import CodegenTask, parse_codegen  # noqa: E402
from synth.generators.loop import echoed_field  # noqa: E402
from synth.prompts import Prompts  # noqa: E402
from synth.records import Record  # noqa: E402
from synth.store import RunStore  # noqa: E402


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reply(i: int) -> str:
    return json.dumps({
        "problem": f"Write a function `f_{i}` that returns the sum of the first {i} squares, "
                   "raising ValueError for negative input.",
        "solution": f"```python\ndef f_{i}(n={i}):\n    if n < 0:\n        raise ValueError\n"
                    f"    return sum(k * k for k in range(n))\n```"})


def fill(store: RunStore, n: int) -> None:
    batch = []
    for i in range(n):
        body = {"text": reply(i), "finish_reason": "stop", "tokens_in": 100, "tokens_out": 80,
                "logprobs": None}
        batch.append((f"{i:064x}", "fake-model", json.dumps(body), time.time()))
        if len(batch) == 5000:
            with store.db:
                store.db.execute("BEGIN")
                store._insert_responses(batch)
            batch = []
    if batch:
        with store.db:
            store.db.execute("BEGIN")
            store._insert_responses(batch)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--generate", type=int, default=0)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-reparse-"))
    task = CodegenTask()
    record = Record.from_seed("def f(a, b):\n    return a + b", "python", {"path": "m.py"})
    wording = task.messages(task.blank(record.for_task("codegen")), Prompts(), "json")[-1][
        "content"]
    with RunStore(tmp / "run") as store:
        t0 = time.perf_counter()
        fill(store, args.n)
        t_fill = time.perf_counter() - t0
        base = rss_mb()
        t0 = time.perf_counter()
        count = sum(1 for _ in store.iter_responses())
        t_stream = time.perf_counter() - t0
        t0 = time.perf_counter()
        ok = echoes = 0
        for _, body in store.iter_responses():
            parsed = parse_codegen(body["text"], "json")
            if isinstance(parsed, tuple):
                ok += 1
                if echoed_field({"problem": parsed[0], "solution": parsed[1]}, wording):
                    echoes += 1
        t_parse = time.perf_counter() - t0
        grown = rss_mb() - base
    assert count == args.n and ok == args.n, (count, ok)
    print(f"{args.n} cached responses (filled in {t_fill:.1f} s); one run on a shared machine")
    print()
    print("| pass | records/s | peak RSS growth MB |")
    print("|---|---|---|")
    print(f"| stream from the cache | {count / t_stream:,.0f} | - |")
    print(f"| stream + parse + echo check | {count / t_parse:,.0f} | {grown:.1f} |")
    if args.generate:
        rerun_generate(tmp, args.generate)


def rerun_generate(tmp: Path, n: int) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_client import generate_cmd, make_seeds, start_server

    proc, url = start_server(tmp)
    try:
        seeds = make_seeds(tmp, 2 * n)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, *generate_cmd(url, seeds, tmp / "gen", n, 64)]
        subprocess.run(cmd, check=True, capture_output=True, env=env)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=env)
        wall = time.perf_counter() - t0
    finally:
        proc.terminate()
    stats = json.loads((tmp / "gen" / "stats.json").read_text())
    print(f"| synth generate rerun, all {stats['llm'].get('cache_hits', 0)} responses cached "
          f"(with process start) | {n / wall:,.0f} | - |")


if __name__ == "__main__":
    main()
