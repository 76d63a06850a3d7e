"""How long ``synth report`` takes to rebuild a card and its plots on a large run.

Synthesizes a run directory (N kept rows as parquet, N/5 records dropped at selection in the
store, stats/config/card facts), then times :func:`synth.report.build_report` twice (cold
includes importing pyarrow/matplotlib) and checks the rebuild is byte-identical.

    python benchmarks/bench_report.py [--rows 100000] [--format raw|alpaca|messages]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--format", default="raw")
    ap.add_argument("--keep", type=Path, help="Write the run here (default: a temp dir).")
    args = ap.parse_args()

    from synth.io.dataset import write_dataset
    from synth.io.formats import OutputConfig
    from synth.records import Record
    from synth.report import CARD_FILE, build_report
    from synth.store import RunStore

    rng = random.Random(0)
    langs = ["python"] * 6 + ["rust", "go", "typescript", "java", "cpp"]
    tasks = ["codegen", "summarize", "translate", "repair"]
    lics = ["MIT", "Apache-2.0", "PSF-2.0", "BSD-3-Clause", "GPL-3.0", "unknown"]

    def record(i: int) -> Record:
        lang, task = rng.choice(langs), rng.choice(tasks)
        return Record(
            id=f"{i:08d}", seed="def f(x):\n    return x\n" * rng.randint(1, 8), task=task,
            lang=lang, instruction="Write a function. " * rng.randint(2, 60),
            input="", response="```\ncode\n```\nExplanation. " * rng.randint(1, 80),
            scores={"complexity": rng.uniform(1, 6), "quality": rng.uniform(1, 6),
                    "ast_complexity": float(rng.randint(0, 30))},
            meta={"index": i, "model": "Qwen2.5-Coder-7B-Instruct", "template": task,
                  "template_hash": hashlib.sha256(task.encode()).hexdigest()[:12],
                  "provenance": {"root": "/src", "path": f"m{i}.py", "license":
                                 rng.choice(lics)}})

    tmp = tempfile.TemporaryDirectory()
    run = args.keep or Path(tmp.name) / "run"
    run.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    write_dataset((record(i) for i in range(args.rows)), run / "dataset", None,
                  ["ast_complexity", "complexity", "quality"],
                  output=OutputConfig(format=args.format))
    dropped = args.rows // 5
    with RunStore(run) as store:
        store.begin("filter")
        store.db.execute("BEGIN")
        for j in range(dropped):
            store.put_result(record(args.rows + j), "rejected", "select", "too_similar")
        store.db.execute("COMMIT")
    stages = {"heuristics": {"in": args.rows + dropped, "out": args.rows + dropped,
                             "rejected": {}},
              "select": {"in": args.rows + dropped, "out": args.rows,
                         "rejected": {"too_similar": dropped}}}
    (run / "stats.json").write_text(json.dumps({"stages": stages, "llm": {"requests": 0},
                                                "wall_time_s": 1.0}))
    (run / "config.json").write_text(json.dumps({"SelectConfig": {"tau": 0.9, "budget": None},
                                                 "output": {"format": args.format}}))
    (run / CARD_FILE).write_text(json.dumps({"title": "bench", "command": "synth filter"}))
    print(f"synthesized {args.rows} rows + {dropped} select rejects in "
          f"{time.monotonic() - t0:.1f} s")

    times = []
    cpu = []
    digests = []
    for _ in range(2):
        t, c = time.monotonic(), time.process_time()
        built = build_report(run)
        times.append(time.monotonic() - t)
        cpu.append(time.process_time() - c)
        files = [built["card"], *built["plots"]]
        digests.append(hashlib.sha256(b"".join(p.read_bytes() for p in files)).hexdigest())
    print("| rows | format | report (cold) | report (warm) | identical |")
    print("|---:|---|---:|---:|---|")
    print(f"| {args.rows} | {args.format} | {times[0]:.2f} s | {times[1]:.2f} s | "
          f"{digests[0] == digests[1]} |")


if __name__ == "__main__":
    main()
