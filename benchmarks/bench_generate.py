"""End to end on the embedded model: synth generate vs bare sequential calls, same prompts.

Starts one embedded llama.cpp server (SmolLM2-135M-Instruct), then, in one run, for the same N
seeds and sampling parameters:

- anchor: a bare loop of AsyncOpenAI calls with synth's rendered prompts, one at a time
  (the model's own time for this work: nothing else happens);
- ours: ``synth generate`` as a subprocess against that server with a fresh run directory
  (process start, seed sampling, prompt rendering, requests, caching, parsing, dataset write).

Reported: records/minute, wall seconds, the share of synth's wall time spent outside model
requests (1 - request time / wall), and ours/anchor. The llama.cpp server serves one request at a
time, so --concurrency 1 is the honest setting for the anchor comparison.

    python benchmarks/bench_generate.py [--num 20] [--max-tokens 512]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import openai  # noqa: E402

from synth.generators.codegen import CodegenTask  # noqa: E402
from synth.io.seeds import read_seeds  # noqa: E402
from synth.llm.server import EmbeddedServer  # noqa: E402
from synth.prompts import Prompts  # noqa: E402
from synth.seeds.extract import sample_seeds  # noqa: E402


async def anchor(base_url: str, model: str, prompts: list[list[dict[str, str]]],
                 max_tokens: int, response_format: dict[str, object]) -> float:
    client = openai.AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0, timeout=600)
    t0 = time.perf_counter()
    for messages in prompts:
        await client.chat.completions.create(
            model=model, messages=messages, max_tokens=max_tokens,  # type: ignore[arg-type]
            temperature=0.0, top_p=1.0, seed=0, response_format=response_format)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - t0
    await client.close()
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--num", type=int, default=20)
    ap.add_argument("--max-tokens", type=int, default=512)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-generate-"))
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_BASE_URL"}
    subprocess.run([sys.executable, "-m", "synth", "seeds", "extract", "--run-dir", str(tmp)],
                   check=True, env=env, capture_output=True)
    seeds = list(sample_seeds(read_seeds(tmp / "seeds.jsonl"), args.num, 0))
    task = CodegenTask()
    messages = [task.messages(s.for_task("codegen"), Prompts(), "json") for s in seeds]
    with EmbeddedServer(log_path=tmp / "server.log") as server:
        bare_s = asyncio.run(anchor(server.base_url, server.model, messages, args.max_tokens,
                                    task.response_format("json_object") or {}))
        run = tmp / "run"
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "synth", "generate", "--base-url", server.base_url,
                        "--model", server.model, "--seeds", str(tmp / "seeds.jsonl"),
                        "--num", str(args.num), "--max-tokens", str(args.max_tokens),
                        "--concurrency", "1", "--answer-format", "json", "--run-dir", str(run),
                        "--no-discriminator"],  # the anchor makes one call per seed too
                       check=True, env=env, capture_output=True)
        ours_s = time.perf_counter() - t0
    stats = json.loads((run / "stats.json").read_text())
    request_s = stats["llm"]["request_ms"] / 1000
    outside = 1 - request_s / ours_s
    print(f"machine: {platform.machine()} cores={os.cpu_count()} "
          f"python={platform.python_version()}; model {server.model}; {args.num} seeds, "
          f"max_tokens {args.max_tokens}, temperature 0; kept {stats['kept']}, "
          f"rejected {stats['rejected']}, tokens out {stats['llm'].get('tokens_out', 0)}")
    print()
    print("| side | wall s | records/min | time outside model requests | vs anchor |")
    print("|---|---|---|---|---|")
    print(f"| anchor: bare sequential calls | {bare_s:.1f} | {60 * args.num / bare_s:.1f} | - | "
          "1.00 |")
    print(f"| ours: synth generate (process) | {ours_s:.1f} | {60 * args.num / ours_s:.1f} | "
          f"{100 * outside:.1f}% | {ours_s / bare_s:.2f} |")


if __name__ == "__main__":
    main()
