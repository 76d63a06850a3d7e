"""Client throughput, every side in one run against one instant local server.

One OpenAI-compatible instant-reply server (tests/fake_openai.py, its own process, pinned to
core 0 where the machine has two or more; the clients run on core 1) answers, in one run:

- ``server``: the server's own capacity (requests per second of its CPU time, measured while
  the raw loop drives it): no client can go faster than this;
- ``raw aiohttp``: a bare aiohttp + orjson loop with a semaphore (the wire's floor);
- ``bare SDK``: ``openai.AsyncOpenAI`` with a semaphore (no cache, retries or accounting);
- ``synth client``: synth's LLMClient (cache lookup, SQLite journal, retries, accounting);
- ``synth generate``: ``synth generate --task codegen --no-discriminator --verify off`` as a
  subprocess (seed sampling, prompt rendering, requests, parse, echo check, cache, dataset
  write; no sandbox runs: the fake server's replies are no programs, and execution is not the
  request path this measures);
- ``curator``: bespokelabs-curator (backend openai), installed by this benchmark into its own
  virtualenv (default /tmp/curator-venv; never a dependency of synth); the row is skipped with
  the reason when it cannot be installed or run.

Reported per side: requests/s, client CPU ms per request (CPU time of the client process, or
of the child process for subprocess sides) and ratios to each reference. ``--profile`` prints a
cProfile top-10 of the synth generate path.

    python benchmarks/bench_client.py [--requests 1000] [--concurrency 64] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import openai  # noqa: E402
import orjson  # noqa: E402

from synth.config import LLMConfig  # noqa: E402
from synth.llm.client import LLMClient, SamplingParams  # noqa: E402
from synth.store import RunStore  # noqa: E402

MODEL = "fake-model"
SERVER_CORE, CLIENT_CORE = 0, 1
PINNED = False  # set by main once the cores are known


def pinning() -> bool:
    return (hasattr(os, "sched_setaffinity")
            and {SERVER_CORE, CLIENT_CORE} <= os.sched_getaffinity(0))


def start_server(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    port_file = tmp / "port"
    pin = (lambda: os.sched_setaffinity(0, {SERVER_CORE})) if pinning() else None
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fake_openai.py"),
                             "--port-file", str(port_file)], preexec_fn=pin)
    while not port_file.exists():
        time.sleep(0.02)
    return proc, f"http://127.0.0.1:{port_file.read_text()}/v1"


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def messages(i: int, tag: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"request {tag} {i}: write a function"}]


async def raw_aiohttp(base_url: str, n: int, concurrency: int, tag: str) -> None:
    import aiohttp

    sem = asyncio.Semaphore(concurrency)
    headers = {"Authorization": "Bearer x", "Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async def one(i: int) -> None:
            body = orjson.dumps({"model": MODEL, "messages": messages(i, tag), "max_tokens": 64})
            async with sem, session.post(f"{base_url}/chat/completions", data=body,
                                         headers=headers) as resp:
                data = orjson.loads(await resp.read())
                assert data["choices"][0]["message"]["content"]

        await asyncio.gather(*(one(i) for i in range(n)))


async def bare_sdk(base_url: str, n: int, concurrency: int, tag: str) -> None:
    client = openai.AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0, timeout=600.0)
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            await client.chat.completions.create(
                model=MODEL, messages=messages(i, tag), max_tokens=64)  # type: ignore[arg-type]

    await asyncio.gather(*(one(i) for i in range(n)))
    await client.close()


async def synth_client(base_url: str, n: int, concurrency: int, tag: str,
                       run_dir: Path) -> None:
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


def in_process(fn: Any, *args: Any) -> tuple[float, float]:
    cpu0, t0 = time.process_time(), time.perf_counter()
    asyncio.run(fn(*args))
    return time.perf_counter() - t0, time.process_time() - cpu0


def child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def subprocess_side(cmd: list[str], env: dict[str, str] | None = None,
                    timeout: float = 900) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    pin = (lambda: os.sched_setaffinity(0, {CLIENT_CORE})) if PINNED else None
    cpu0, t0 = child_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, preexec_fn=pin)
    return time.perf_counter() - t0, child_cpu() - cpu0, proc


def make_seeds(tmp: Path, n: int) -> Path:
    """A seeds file of ``n`` distinct small functions (synth seeds extract over generated files)."""
    src = tmp / "seedsrc"
    src.mkdir()
    for i in range(n):
        (src / f"m{i}.py").write_text(textwrap.dedent(f"""
            def compute_{i}(values, limit={i % 17 + 1}):
                \"\"\"Sum the values below the limit, scaled by {i}.\"\"\"
                total = 0
                for v in values:
                    if v < limit:
                        total += v * {i}
                return total
            """))
    out = tmp / "seeds"
    proc = subprocess.run([sys.executable, "-m", "synth", "seeds", "extract", str(src),
                           "--run-dir", str(out)], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    if proc.returncode != 0:
        raise SystemExit(f"seeds extract failed: {proc.stderr[-500:]}")
    return out / "seeds.jsonl"


def generate_cmd(url: str, seeds: Path, run_dir: Path, n: int, concurrency: int) -> list[str]:
    return ["-m", "synth", "generate", "--task", "codegen", "--no-discriminator",
            "--verify", "off", "--base-url", url, "--model", MODEL, "--seeds", str(seeds),
            "--num", str(n), "--concurrency", str(concurrency), "--run-dir", str(run_dir)]


CURATOR_SCRIPT = """
import sys, time
from bespokelabs import curator
url, n, concurrency, tag = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
llm = curator.LLM(model_name="fake-model", backend="openai",
                  generation_params={"max_tokens": 64},
                  backend_params={"base_url": url, "api_key": "x",
                                  "max_requests_per_minute": 10_000_000,
                                  "max_tokens_per_minute": 10_000_000_000,
                                  "max_concurrent_requests": concurrency,
                                  "require_all_responses": False})
out = llm([f"request {tag} {i}: write a function" for i in range(n)])
print("rows", len(out.dataset) if hasattr(out, "dataset") else len(out))
"""


def curator_python(venv: Path) -> tuple[Path | None, str]:
    """The curator virtualenv's python, installing it on first use; (None, why) on failure."""
    py = venv / "bin" / "python"
    probe = [str(py), "-c", "import bespokelabs.curator"]
    if py.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return py, ""
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True,
                       capture_output=True, timeout=300)
        pip = subprocess.run([str(py), "-m", "pip", "install", "-q", "bespokelabs-curator"],
                             capture_output=True, text=True, timeout=1200)
    except (subprocess.SubprocessError, OSError) as exc:
        return None, f"cannot create {venv}: {exc}"
    if pip.returncode != 0:
        return None, f"pip install bespokelabs-curator failed: {pip.stderr.strip()[-300:]}"
    return py, ""


def profile_generate(url: str, seeds: Path, tmp: Path, n: int, concurrency: int) -> str:
    out = tmp / "generate.prof"
    subprocess.run([sys.executable, "-m", "cProfile", "-o", str(out),
                    *generate_cmd(url, seeds, tmp / "run-prof", n, concurrency)],
                   capture_output=True, text=True, cwd=ROOT,
                   env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
    import io
    import pstats

    buf = io.StringIO()
    stats = pstats.Stats(str(out), stream=buf)
    stats.sort_stats("tottime").print_stats(10)
    stats.sort_stats("cumulative").print_callers("dataclasses.py.*\\(asdict\\)|secrets.py.*\\(redact\\)|deepcopy|iterencode")
    return buf.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--curator-venv", type=Path, default=Path("/tmp/curator-venv"))
    ap.add_argument("--no-curator", action="store_true")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    n, c = args.requests, args.concurrency
    tmp = Path(tempfile.mkdtemp(prefix="bench-client-"))
    global PINNED
    pinned = PINNED = pinning()
    if pinned:
        os.sched_setaffinity(0, {CLIENT_CORE})
    proc, url = start_server(tmp)
    rows: dict[str, tuple[float, float] | str] = {}
    profile = ""
    try:
        seeds = make_seeds(tmp, 2 * n)  # more than needed: extract drops near duplicates
        srv0 = proc_cpu(proc.pid)
        rows["raw aiohttp"] = in_process(raw_aiohttp, url, n, c, "raw")
        server_cpu = proc_cpu(proc.pid) - srv0
        rows["bare SDK"] = in_process(bare_sdk, url, n, c, "sdk")
        rows["synth client"] = in_process(synth_client, url, n, c, "ours", tmp / "run-client")
        wall, cpu, gen = subprocess_side(
            [sys.executable, *generate_cmd(url, seeds, tmp / "run-gen", n, c)],
            env={"PYTHONPATH": str(ROOT)})
        stats = json.loads((tmp / "run-gen" / "stats.json").read_text()) \
            if gen.returncode == 0 else {}
        sent = int(stats.get("llm", {}).get("requests", 0))
        rows["synth generate"] = (wall, cpu) if sent == n else \
            f"generate failed or sent {sent} of {n}: {gen.stderr.strip()[-300:]}"
        if args.no_curator:
            rows["curator"] = "skipped (--no-curator)"
        else:
            py, why = curator_python(args.curator_venv)
            if py is None:
                rows["curator"] = f"skipped: {why}"
            else:
                wall, cpu, cur = subprocess_side(
                    [str(py), "-c", CURATOR_SCRIPT, url, str(n), str(c), "cur"],
                    env={"CURATOR_DISABLE_CACHE": "1", "CURATOR_CACHE_DIR": str(tmp / "cc"),
                         "OPENAI_API_KEY": "x", "HF_HUB_OFFLINE": "1"})
                rows["curator"] = (wall, cpu) if cur.returncode == 0 and f"rows {n}" in \
                    cur.stdout else f"skipped: curator run failed: {cur.stderr.strip()[-300:]}"
        if args.profile:
            profile = profile_generate(url, seeds, tmp, n, c)
    finally:
        proc.terminate()

    import aiohttp

    where = (f"server on core {SERVER_CORE}, clients on core {CLIENT_CORE}" if pinned
             else "no pinning (fewer than 2 cores)")
    print(f"machine: {platform.machine()} cores={os.cpu_count()} python="
          f"{platform.python_version()} openai={openai.__version__} "
          f"aiohttp={aiohttp.__version__}; {where}")
    print(f"{n} requests at concurrency {c}, one run (a shared machine: absolute numbers are "
          "noisy, ratios within the run are the point)")
    print(f"server capacity: {n / server_cpu:.0f} req/s of its CPU "
          f"({1000 * server_cpu / n:.2f} ms CPU/request)")
    print()
    refs = {k: v for k, v in rows.items() if isinstance(v, tuple)}
    cols = [r for r in ("raw aiohttp", "bare SDK", "curator") if r in refs]
    print("| side | req/s | client CPU ms/req | " +
          " | ".join(f"CPU x vs {r}" for r in cols) + " | req/s vs server capacity |")
    print("|---|---|---|" + "---|" * len(cols) + "---|")
    for name, v in rows.items():
        if not isinstance(v, tuple):
            print(f"| {name} | {v} |")
            continue
        wall, cpu = v
        ratios = " | ".join(f"{(cpu / n) / (refs[r][1] / n):.2f}" for r in cols)
        print(f"| {name} | {n / wall:.0f} | {1000 * cpu / n:.2f} | {ratios} | "
              f"{(n / wall) / (n / server_cpu):.2f} |")
    if profile:
        print("\ncProfile of synth generate (top 10 by own time):\n")
        print(profile)


if __name__ == "__main__":
    main()
