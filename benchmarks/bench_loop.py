"""The generator–discriminator loop on the embedded model: acceptance per task and per rule, and
LLM calls per accepted record.

Runs ``synth generate --task T --num N`` for each task (a fresh run directory each, the embedded
SmolLM2-135M server, the same seeds for every seed task, Code Alpaca rows for evol) and prints
tables from each run's stats.json. These are measurements of a 135M model judging itself, not
of the loop's worth with a capable model: read them as what the loop does, round by round.

    python benchmarks/bench_loop.py [--num 50] [--max-tokens 512] [--tasks summarize,codegen]
    python benchmarks/bench_loop.py --report-only --out DIR   # tables from finished runs
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

TASKS = ("codegen", "summarize", "translate", "repair", "evol")
ALPACA = Path(__file__).resolve().parents[2] / "shared" / "data" / "code_alpaca" / (
    "code_alpaca_2k.jsonl")


def run_task(task: str, out: Path, num: int, max_tokens: int, seeds: Path,
             alpaca: Path) -> float:
    source = ["--input", str(alpaca)] if task == "evol" else ["--seeds", str(seeds)]
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_BASE_URL"}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "synth", "generate", "--task", task, "--num", str(num),
                    "--max-tokens", str(max_tokens), "--run-dir", str(out / task), *source],
                   check=True, env=env, capture_output=True)
    return time.perf_counter() - t0


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def few_shot_split(db_path: Path) -> dict[bool, list[int]]:
    """(records, accepted) of the last invocation, split by whether the generator was shown
    any memory case (the first two blocks of a run see the memory the run started with)."""
    split = {True: [0, 0], False: [0, 0]}
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT status, json_array_length(json_extract(record, '$.meta.few_shot.good')) + "
            "json_array_length(json_extract(record, '$.meta.few_shot.bad')) FROM results "
            "WHERE gen = (SELECT MAX(gen) FROM results)").fetchall()
    for status, shown in rows:
        cell = split[bool(shown)]
        cell[0] += 1
        cell[1] += status == "kept"
    return split


def report(out: Path, tasks: list[str]) -> None:
    stats: dict[str, dict[str, Any]] = {}
    for task in tasks:
        path = out / task / "stats.json"
        if path.exists():
            stats[task] = json.loads(path.read_text())
    print("| task | records | accepted | rate | gen calls | judge calls | calls per accepted | "
          "accepted at round 1 / 2 | round outcomes | reject reasons | wall s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for task, s in stats.items():
        d = s["discriminator"][task]
        at = d["accepted_at_round"]
        outcomes = ", ".join(f"{k} {v}" for k, v in d["round_outcomes"].items())
        reasons = ", ".join(f"{k} {v}" for k, v in d["reject_reasons"].items()) or "-"
        cpa = d["calls_per_accepted"]
        print(f"| {task} | {d['records']} | {d['accepted']} | {_pct(d['acceptance_rate'])} | "
              f"{d['calls']['generator']} | {d['calls']['judge']} | "
              f"{'-' if cpa is None else f'{cpa:.2f}'} | {at.get('1', 0)} / {at.get('2', 0)} | "
              f"{outcomes} | {reasons} | {s['wall_time_s']:.0f} |")
    print()
    print("| task | rule | yes | no | pass rate |")
    print("|---|---|---|---|---|")
    for task, s in stats.items():
        for rule, r in s["discriminator"][task]["rules"].items():
            print(f"| {task} | {rule} | {r['yes']} | {r['no']} | {_pct(r['pass_rate'])} |")
    print()
    print("| task | shown memory cases: records / accepted | shown none: records / accepted |")
    print("|---|---|---|")
    for task in stats:
        split = few_shot_split(out / task / "store.sqlite")
        print(f"| {task} | {split[True][0]} / {split[True][1]} | "
              f"{split[False][0]} / {split[False][1]} |")
    print()
    llm = {t: s["llm"] for t, s in stats.items()}
    print("| task | HTTP requests | tokens in | tokens out | memory cases (good/bad) | "
          "lag waits |")
    print("|---|---|---|---|---|---|")
    for task, s in stats.items():
        cases = s.get("memory", {}).get("cases", {}).get(task, {})
        print(f"| {task} | {llm[task].get('requests', 0)} | {llm[task].get('tokens_in', 0)} | "
              f"{llm[task].get('tokens_out', 0)} | {cases.get('good', 0)}/{cases.get('bad', 0)} | "
              f"{s.get('memory', {}).get('lag_waits', '-')} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--num", type=int, default=50)
    ap.add_argument("--max-tokens", type=int, default=512)
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--alpaca", type=Path, default=ALPACA)
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    out = args.out or Path(f"benchmarks/.cache/loop-{time.strftime('%Y%m%d-%H%M%S')}")
    print(f"machine: {platform.machine()} cores={os.cpu_count()} "
          f"python={platform.python_version()}; model smollm2-135m-instruct (embedded); "
          f"{args.num} seeds per task, max_tokens {args.max_tokens}, temperature 0, "
          "max_rounds 2, few-shot 1+1")
    if not args.report_only:
        out.mkdir(parents=True, exist_ok=True)
        seeds_dir = out / "seeds"
        subprocess.run([sys.executable, "-m", "synth", "seeds", "extract", "--run-dir",
                        str(seeds_dir)], check=True, capture_output=True)
        for task in tasks:
            wall = run_task(task, out, args.num, args.max_tokens, seeds_dir / "seeds.jsonl",
                            args.alpaca)
            print(f"{task}: {wall:.0f} s", flush=True)
    print()
    report(out, tasks)


if __name__ == "__main__":
    main()
