"""Client throughput: synth's LLMClient vs bare AsyncOpenAI calls, against an instant server.

Both sides send the same number of distinct chat requests to the same local instant-reply
OpenAI-compatible server (tests/fake_openai.py, a separate process) at each concurrency, in one
run. The anchor is the bare SDK with a semaphore (no cache, no retries, no accounting); ours adds
the SQLite response journal, tenacity, rate accounting and stats. Reported: requests/s and
client CPU ms per request (process CPU time of this process only; the server runs elsewhere),
medians over --repeats.

    python benchmarks/bench_client.py [--requests 2000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import openai

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from synth.config import LLMConfig  # noqa: E402
from synth.llm.client import LLMClient, SamplingParams  # noqa: E402
from synth.store import RunStore  # noqa: E402

MODEL = "fake-model"


def start_server(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    port_file = tmp / "port"
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fake_openai.py"),
                             "--port-file", str(port_file)])
    while not port_file.exists():
        time.sleep(0.02)
    return proc, f"http://127.0.0.1:{port_file.read_text()}/v1"


def messages(i: int, tag: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"request {tag} {i}: write a function"}]


async def bare(base_url: str, n: int, concurrency: int, tag: str) -> None:
    client = openai.AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0)
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            await client.chat.completions.create(model=MODEL, messages=messages(i, tag),  # type: ignore[arg-type]
                                                 max_tokens=64)

    await asyncio.gather(*(one(i) for i in range(n)))
    await client.close()


async def ours(base_url: str, n: int, concurrency: int, tag: str, run_dir: Path) -> None:
    with RunStore(run_dir) as store:
        client = LLMClient(base_url, MODEL, store, LLMConfig(concurrency=concurrency), Counter())
        params = SamplingParams(max_tokens=64)
        # a window of 2x concurrency tasks, like TaskStage, instead of n tasks at once
        pending: set[asyncio.Task[object]] = set()
        for i in range(n):
            pending.add(asyncio.create_task(client.complete(messages(i, tag), params)))
            if len(pending) >= 2 * concurrency:
                _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        await asyncio.gather(*pending)
        await client.aclose()


def measure(fn, *args) -> tuple[float, float]:  # noqa: ANN001
    cpu0, t0 = time.process_time(), time.perf_counter()
    asyncio.run(fn(*args))
    return time.perf_counter() - t0, time.process_time() - cpu0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--concurrency", type=int, nargs="*", default=[1, 16, 64, 256])
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-client-"))
    proc, url = start_server(tmp)
    rows = []
    try:
        for c in args.concurrency:
            n = args.requests
            res: dict[str, list[tuple[float, float]]] = {"bare": [], "ours": []}
            for r in range(args.repeats):
                res["bare"].append(measure(bare, url, n, c, f"b{c}-{r}"))
                res["ours"].append(measure(ours, url, n, c, f"o{c}-{r}", tmp / f"run-{c}-{r}"))
            med = {k: (statistics.median(w for w, _ in v), statistics.median(cpu for _, cpu in v))
                   for k, v in res.items()}
            rows.append((c, n, med["bare"], med["ours"]))
    finally:
        proc.terminate()
    print(f"machine: {platform.machine()} {platform.processor() or ''} cores={os.cpu_count()} "
          f"python={platform.python_version()} openai={openai.__version__}")
    print(f"{args.requests} requests per cell, median of {args.repeats}; anchor = bare AsyncOpenAI")
    print()
    print("| concurrency | bare req/s | ours req/s | ours/bare | bare CPU ms/req "
          "| ours CPU ms/req |")
    print("|---|---|---|---|---|---|")
    for c, n, (bw, bc), (ow, oc) in rows:
        print(f"| {c} | {n / bw:.0f} | {n / ow:.0f} | {bw / ow:.2f} | {1000 * bc / n:.2f} | "
              f"{1000 * oc / n:.2f} |")


if __name__ == "__main__":
    main()
