"""Embedded-model generation speed: the portable llama.cpp build synth installs vs a native one.

Both sides in one run, on the same machine and prompt: each build serves SmolLM2-135M-Instruct
through synth's EmbeddedServer (smoke completion included), answers ``--requests`` chat
completions one at a time with ``max_tokens`` tokens at temperature 0, and the table gives the
median completion tokens per second over ``--reps`` repetitions, with the ratio to the anchor.

The installed llama-cpp-python is the portable build (``make llama``). A native build is given
as a wheel (``--native-wheel``, e.g. built with ``pip wheel --no-binary llama-cpp-python``); it
is unpacked into a temporary folder that is put first on the server's PYTHONPATH.

Run: ``.venv/bin/python benchmarks/bench_server.py --native-wheel /tmp/native-wheel/*.whl``
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parents[1]))

from synth.llm.server import EmbeddedServer  # noqa: E402

PROMPT = "Write a Python function that returns the n-th Fibonacci number, with a docstring."


def cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "?"
    model = next((ln.split(":", 1)[1].strip() for ln in text.splitlines()
                  if ln.startswith("model name")), platform.processor())
    flags = next((ln.split(":", 1)[1].split() for ln in text.splitlines()
                  if ln.startswith("flags")), [])
    wanted = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_int8") if f in flags]
    return f"{model}; {os.cpu_count()} cores; {' '.join(wanted) or 'no avx2'}"


def tokens_per_s(base_url: str, model: str, requests: int, max_tokens: int) -> float:
    tokens = 0
    start = time.perf_counter()
    with httpx.Client(timeout=600) as http:
        for _ in range(requests):
            resp = http.post(f"{base_url}/chat/completions", json={
                "model": model, "max_tokens": max_tokens, "temperature": 0.0,
                "messages": [{"role": "user", "content": PROMPT}]})
            resp.raise_for_status()
            tokens += int(resp.json()["usage"]["completion_tokens"])
    return tokens / (time.perf_counter() - start)


def measure(label: str, pythonpath: str | None, args: argparse.Namespace) -> list[float]:
    old = os.environ.get("PYTHONPATH")
    if pythonpath is not None:
        os.environ["PYTHONPATH"] = pythonpath
    try:
        with tempfile.TemporaryDirectory() as tmp, \
                EmbeddedServer(log_path=Path(tmp) / "server.log",
                               n_threads=args.threads) as server:
            tokens_per_s(server.base_url, server.model, 1, 8)  # warm-up
            runs = [tokens_per_s(server.base_url, server.model, args.requests, args.max_tokens)
                    for _ in range(args.reps)]
    finally:
        if pythonpath is not None:
            if old is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = old
    print(f"  {label}: " + ", ".join(f"{r:.1f}" for r in runs), file=sys.stderr)
    return runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--native-wheel", type=Path, help="a native llama-cpp-python wheel")
    ap.add_argument("--requests", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()

    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as target:
        if args.native_wheel is not None:
            subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                            "--no-cache-dir", "--target", target, str(args.native_wheel)],
                           check=True)
            results["native (GGML_NATIVE=ON)"] = measure("native", target, args)
        results["portable (synth's make)"] = measure("portable", None, args)

    anchor = next(iter(results.values()))
    base = statistics.median(anchor)
    print(f"\nmachine: {cpu_flags()}")
    print(f"{args.requests} completions x {args.max_tokens} tokens, median of {args.reps}\n")
    print("| build | tokens/s (median) | ratio to anchor |")
    print("|---|---|---|")
    for name, runs in results.items():
        med = statistics.median(runs)
        print(f"| {name} | {med:.1f} | {med / base:.2f} |")


if __name__ == "__main__":
    main()
