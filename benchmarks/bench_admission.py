"""Admission and Batch API at scale: AIMD against fake fleets, 10,000 requests through batches.

1. AIMD convergence: synth's LLMClient (adaptive window, ceiling --ceiling) against two
   in-process fake fleets: one answering 429 above a fixed capacity, one that queues (serves
   ``capacity`` at a time, latency grows with concurrency, never refuses). Prints the window
   and completed requests per time slot.
2. Batch API: --batch-requests requests queued in a run store, submitted (split into files),
   status polled, collected into the request cache, against tests/fake_openai.py (a separate
   process). Prints wall time per step and this process's peak RSS.

    python benchmarks/bench_admission.py [--batch-requests 10000] [--ceiling 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from synth.config import LLMConfig  # noqa: E402
from synth.llm import batch  # noqa: E402
from synth.llm.client import LLMClient, SamplingParams, cache_key  # noqa: E402
from synth.llm.cost import CostMeter  # noqa: E402
from synth.llm.limits import Admission  # noqa: E402
from synth.llm.wire import HttpxWire  # noqa: E402
from synth.store import RunStore  # noqa: E402


def reply() -> dict[str, object]:
    return {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "ok"}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}}


async def drive(kind: str, capacity: int, service_s: float, ceiling: int, seconds: float,
                store: RunStore, slot_s: float) -> list[tuple[float, int, int, int]]:
    """(t, window, in flight, completed in slot) every slot_s seconds for ``seconds``."""
    in_flight = 0
    slots = asyncio.Semaphore(capacity)

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight
        if kind == "429":
            if in_flight >= capacity:
                return httpx.Response(429, json={"error": {"message": "over capacity"}})
            in_flight += 1
            await asyncio.sleep(service_s)
            in_flight -= 1
        else:
            async with slots:
                await asyncio.sleep(service_s)
        return httpx.Response(200, json=reply())

    cfg = LLMConfig(concurrency=ceiling, backoff_base_s=0.005, backoff_max_s=0.05,
                    max_attempts=100)
    admission = Admission(ceiling, None, None, CostMeter(store))
    wire = HttpxWire(httpx.AsyncClient(transport=httpx.MockTransport(handler)), cfg.timeout_s)
    client = LLMClient("http://mock.local/v1", "m", store, cfg, Counter(), admission=admission,
                       wire=wire)
    done = 0
    stop = time.monotonic() + seconds
    counter = 0

    async def worker() -> None:
        nonlocal done, counter
        while time.monotonic() < stop:
            counter += 1
            await client.complete([{"role": "user", "content": f"{kind} {counter}"}],
                                  SamplingParams(max_tokens=16))
            done += 1

    workers = [asyncio.create_task(worker()) for _ in range(ceiling)]
    rows = []
    t0 = time.monotonic()
    last = 0
    while time.monotonic() < stop:
        await asyncio.sleep(slot_s)
        rows.append((round(time.monotonic() - t0, 1), admission.window.size,
                     admission.window.in_flight, done - last))
        last = done
    await asyncio.gather(*workers)
    await client.aclose()
    return rows


def aimd(ceiling: int, seconds: float) -> None:
    for kind, capacity, service in (("429", 4, 0.05), ("queue", 4, 0.1)):
        with tempfile.TemporaryDirectory() as tmp, RunStore(Path(tmp)) as store:
            store.begin("bench")
            rows = asyncio.run(drive(kind, capacity, service, ceiling, seconds, store, 0.5))
        ideal = capacity / service
        print(f"\n## fleet '{kind}': capacity {capacity}, service {service} s "
              f"(ideal {ideal:.0f} req/s), window ceiling {ceiling}")
        print("| t (s) | window | in flight | req/s |")
        print("|---|---|---|---|")
        for t, w, f, n in rows:
            print(f"| {t} | {w} | {f} | {n / 0.5:.0f} |")


def start_fake(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    port_file = tmp / "port"
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fake_openai.py"),
                             "--port-file", str(port_file)])
    deadline = time.monotonic() + 20
    while not port_file.exists():
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("fake server did not start")
        time.sleep(0.05)
    return proc, f"http://127.0.0.1:{port_file.read_text()}/v1"


def batch_bench(n: int) -> None:
    from synth.llm.client import SamplingParams as P

    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_fake(Path(tmp))
        try:
            with RunStore(Path(tmp) / "run") as store:
                store.begin("bench")
                t0 = time.monotonic()
                rows = []
                for i in range(n):
                    messages = [{"role": "user", "content": f"Write function number {i}."}]
                    key = cache_key("fake-model", messages, P(max_tokens=64), 0)
                    body = {"model": "fake-model", "messages": messages, "max_tokens": 64,
                            "temperature": 0.0, "top_p": 1.0}
                    rows.append((key, f"r{i}", "bench", json.dumps(body)))
                store.batch_add_requests(rows)
                t1 = time.monotonic()
                ids = batch.submit(store, url, max_requests=max(n // 4, 1))
                t2 = time.monotonic()
                for _ in range(3):
                    batch.status(store, url)
                t3 = time.monotonic()
                got = batch.collect(store, url, CostMeter(store, 0.15, 0.60, batch=True))
                t4 = time.monotonic()
                cached = store.count_responses()
                spent = store.spent()[0]
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\n## Batch API, {n} requests against tests/fake_openai.py")
    print("| step | wall (s) |")
    print("|---|---|")
    print(f"| queue in store | {t1 - t0:.2f} |")
    print(f"| submit ({len(ids)} files, split at {max(n // 4, 1)}) | {t2 - t1:.2f} |")
    print(f"| status x3 (fake answers on the 3rd) | {t3 - t2:.2f} |")
    print(f"| collect into the cache | {t4 - t3:.2f} |")
    print(f"\nanswers cached {cached}/{n}, succeeded {got.succeeded}, failed {got.failed}, "
          f"cost at gpt-4o-mini batch price ${spent:.4f}; peak RSS of this process "
          f"{rss:.0f} MiB")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch-requests", type=int, default=10_000)
    ap.add_argument("--ceiling", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=6.0)
    args = ap.parse_args()
    aimd(args.ceiling, args.seconds)
    batch_bench(args.batch_requests)


if __name__ == "__main__":
    main()
