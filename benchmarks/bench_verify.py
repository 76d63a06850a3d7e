"""Execution verification: share verified, executions per second, critique fixes, mutation scores.

Two parts, one run:

1. **Sandbox throughput** through :class:`synth.generators.verify.Verifier` (cache off: every
   program distinct): N small Python programs with 3 asserts each, ``parallel`` = cores.
   Reported: executions/s, per core, and the mean wall per execution (the sandbox overhead,
   since the programs themselves take ~0 ms).
2. **The loop** (codegen, translate to JavaScript, repair; ``--verify score`` as the embedded
   default, or ``require``) on function seeds from the Python standard library:

   - against the embedded model (SmolLM2-135M, llama-cpp-python) when it is installed, or
     ``--base-url`` for any OpenAI-compatible endpoint;
   - otherwise against a scripted endpoint (stated in the output): it answers a problem from a
     small pool with a buggy solution in round 1 for one record in three and the correct one
     after a critique; translations of the seed are right or wrong in turn. Its numbers
     measure the machinery (rounds, oracle, cache, mutants), not a model.

   Reported per task and language: samples, verified share, mean mutation score; how often a
   failure critique fixed the sample in the next round; oracle confirmations; executions and
   cache hits (a second pass over the same store must execute nothing).

    python benchmarks/bench_verify.py [--num 24] [--mode require|score] [--responses K]
        [--base-url URL] [--no-discriminator] [--max-tokens 768]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from synth.config import LLMConfig, SandboxConfig, SeedsConfig  # noqa: E402
from synth.generators import get_task  # noqa: E402
from synth.generators.loop import TaskStage  # noqa: E402
from synth.generators.verify import Verifier  # noqa: E402
from synth.generators.verifystep import VerifyStep, seed_function  # noqa: E402
from synth.llm.client import LLMClient, SamplingParams  # noqa: E402
from synth.llm.wire import HttpxWire  # noqa: E402
from synth.pipeline import RunContext, run_stages  # noqa: E402
from synth.prompts import Prompts  # noqa: E402
from synth.records import Record  # noqa: E402
from synth.sandbox import Sandbox  # noqa: E402
from synth.seeds.corpus import default_corpus  # noqa: E402
from synth.seeds.extract import extract_seeds  # noqa: E402
from synth.store import RunStore  # noqa: E402

# -- 1. sandbox throughput --------------------------------------------------------------------


async def throughput(verifier: Verifier, n: int) -> dict[str, float]:
    programs = [(f"def f(x):\n    return x + {i}\n", f"assert f(1) == {i + 1}\nassert f(0) == {i}"
                 f"\nassert f(-{i}) == 0\n") for i in range(n)]
    t0 = time.perf_counter()
    results = await asyncio.gather(*(verifier.run("python", s, t) for s, t in programs))
    wall = time.perf_counter() - t0
    ok = sum(r.ok for r in results)
    cores = os.cpu_count() or 1
    return {"executions": n, "passed": ok, "wall_s": round(wall, 2),
            "exec_per_s": round(n / wall, 1), "exec_per_s_per_core": round(n / wall / cores, 1),
            "mean_box_wall_ms": round(1000 * sum(r.wall_s for r in results) / n, 1)}


# -- 2. the loop ------------------------------------------------------------------------------

# The scripted endpoint's pool: name, problem, correct / buggy Python, tests, correct / wrong
# JavaScript, oracle inputs.
POOL = [
    ("clamp", "Write `clamp(x, lo, hi)` returning x limited to [lo, hi].",
     "def clamp(x, lo, hi):\n    if x < lo:\n        return lo\n    if x > hi:\n        return hi\n"
     "    return x\n",
     "def clamp(x, lo, hi):\n    if x < lo:\n        return lo\n    if x >= hi:\n        return x\n"
     "    return x\n",
     "assert clamp(5, 0, 10) == 5\nassert clamp(-1, 0, 10) == 0\nassert clamp(11, 0, 10) == 10\n",
     "function clamp(x, lo, hi) {\n  return Math.min(Math.max(x, lo), hi);\n}\n",
     "function clamp(x, lo, hi) {\n  return Math.max(x, lo);\n}\n",
     [[5, 0, 10], [-1, 0, 10], [11, 0, 10], [0, 0, 0]]),
    ("count_vowels", "Write `count_vowels(s)` counting a, e, i, o, u (any case) in s.",
     "def count_vowels(s):\n    return sum(c in 'aeiou' for c in s.lower())\n",
     "def count_vowels(s):\n    return sum(c in 'aeiou' for c in s)\n",
     "assert count_vowels('Hello') == 2\nassert count_vowels('AEIOU') == 5\n"
     "assert count_vowels('') == 0\n",
     "function countVowels(s) {\n  return [...s.toLowerCase()].filter(c => 'aeiou'.includes(c))"
     ".length;\n}\n",
     "function countVowels(s) {\n  return [...s].filter(c => 'aeiou'.includes(c)).length;\n}\n",
     [["Hello"], ["AEIOU"], [""], ["xyz"]]),
    ("running_sum", "Write `running_sum(xs)` returning the list of prefix sums.",
     "def running_sum(xs):\n    out, total = [], 0\n    for x in xs:\n        total += x\n"
     "        out.append(total)\n    return out\n",
     "def running_sum(xs):\n    out, total = [], 0\n    for x in xs:\n        out.append(total)\n"
     "        total += x\n    return out\n",
     "assert running_sum([1, 2, 3]) == [1, 3, 6]\nassert running_sum([]) == []\n"
     "assert running_sum([5]) == [5]\n",
     "function runningSum(xs) {\n  let t = 0;\n  return xs.map(x => (t += x));\n}\n",
     "function runningSum(xs) {\n  let t = 0;\n  return xs.map(x => { const p = t; t += x; "
     "return p; });\n}\n",
     [[[1, 2, 3]], [[]], [[5]], [[-1, 1]]]),
]
JS_TESTS = "const assert = require('assert');\nassert.ok(typeof {name} === 'function');\n"


def fenced(code: str, lang: str = "python") -> str:
    return f"```{lang}\n{code}```"


class Scripted:
    """The scripted endpoint (see the module docstring)."""

    def __init__(self) -> None:
        self.calls = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.calls += 1
        user = body["messages"][1]["content"]
        rnd = 1 + sum(m["role"] == "assistant" for m in body["messages"])
        key = sum(map(ord, user[:400]))
        item = next((p for p in POOL if f"def {p[0]}(" in user), POOL[key % len(POOL)])
        name, problem, good, bad, tests, js_good, js_bad, inputs = item
        if "\nRules:\n" in user:
            rules = re.findall(r"^\d+\. (\w+): ", user, re.MULTILINE)
            text = json.dumps({**{r: {"reason": "ok", "answer": "yes"} for r in rules},
                               "verdict": "yes"})
        elif "different calls of" in user:
            text = json.dumps({"inputs": inputs})
        elif "code translation" in user:
            js = js_bad if rnd == 1 and name != "running_sum" else js_good
            js_name = re.search(r"function (\w+)", js).group(1)  # type: ignore[union-attr]
            text = json.dumps({"task_name": "code translation",
                               "instruction": "Translate this function into JavaScript.",
                               "solution": fenced(js, "javascript"),
                               "tests": fenced(JS_TESTS.replace("{name}", js_name),
                                               "javascript")})
        elif "code repair" in user:
            text = json.dumps({"task_name": "code repair", "information": bad,
                               "instruction": problem + " It gives wrong results; fix it.",
                               "solution": fenced(good) + "\nFixed.", "tests": fenced(tests)})
        else:
            solution = bad if rnd == 1 and key % 3 == 0 else good
            text = json.dumps({"problem": problem, "solution": fenced(solution),
                               "tests": fenced(tests)})
        return httpx.Response(200, json={
            "id": "x", "object": "chat.completion", "created": 0, "model": "scripted",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})


def pool_seeds() -> list[Record]:
    out = []
    for i, (name, _, good, *_rest) in enumerate(POOL):
        rec = Record.from_seed(good, "python", {"path": "pool.py", "name": name,
                                                "mode": "function"})
        rec.meta["index"] = 10_000 + i
        out.append(rec)
    return out


def seeds(n: int) -> list[Record]:
    """Runnable Python function seeds from the standard library (function mode)."""
    out: list[Record] = []
    counts: Counter[str] = Counter()
    for rec in extract_seeds(default_corpus(), SeedsConfig(seed=0, mode="function"), counts):
        if seed_function(rec) is not None and len(rec.seed) < 1500:
            rec.meta["index"] = len(out)
            out.append(rec)
        if len(out) >= n:
            break
    return out


def loop(store: RunStore, box: Sandbox, client: LLMClient, work: list[Record], mode: str,
         responses: int, json_dialect: str, max_tokens: int = 768,
         discriminate: bool = True) -> dict[str, Any]:
    tasks = {name: get_task(name, "javascript") for name in ("codegen", "translate", "repair")}
    ctx = RunContext(store, seed=0)
    step = VerifyStep(Verifier(box, store), mode, responses, seed=0)
    stage = TaskStage(tasks, client, Prompts(), SamplingParams(max_tokens=max_tokens),
                      answer_format="auto", seed=0, verify=step, first_dialect=json_dialect,
                      discriminate=discriminate)
    t0 = time.perf_counter()
    try:
        run_stages(iter(work), [stage], ctx, len(work))
    finally:
        ctx.close()
    out = step.to_json()
    out["wall_s"] = round(time.perf_counter() - t0, 2)
    out["kept"] = store.count_results("kept")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--num", type=int, default=24, help="seeds (a third per task)")
    ap.add_argument("--throughput", type=int, default=60, help="programs for part 1")
    ap.add_argument("--mode", default="require", choices=("score", "require"))
    ap.add_argument("--responses", type=int, default=1)
    ap.add_argument("--base-url", default=None)
    ap.add_argument("--model", default=None)
    ap.add_argument("--max-tokens", type=int, default=768)
    ap.add_argument("--no-discriminator", action="store_true",
                    help="skip the judge (halves the requests on a slow model)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-verify-"))
    report: dict[str, Any] = {"cores": os.cpu_count()}
    with Sandbox(SandboxConfig()) as box:
        report["sandbox_mode"] = box.mode
        with RunStore(tmp / "throughput") as store:
            store.begin("bench")
            report["throughput"] = asyncio.run(throughput(Verifier(box, store), args.throughput))
        recs = seeds(args.num)
        endpoint = args.base_url
        server = None
        if endpoint is None and importlib.util.find_spec("llama_cpp") is not None:
            from synth.llm.server import EmbeddedServer
            server = EmbeddedServer()
            server.__enter__()
            endpoint = server.base_url
        try:
            for attempt in ("first", "rerun"):
                with RunStore(tmp / "loop") as store:
                    store.begin("bench")
                    if endpoint is None:
                        report["endpoint"] = "scripted (llama-cpp-python not installed)"
                        scripted = Scripted()
                        mock = httpx.MockTransport(scripted.handler)
                        client = LLMClient("http://scripted/v1", "scripted", store,
                                           LLMConfig(concurrency=4), Counter(),
                                           wire=HttpxWire(httpx.AsyncClient(transport=mock),
                                                          LLMConfig().timeout_s))
                        dialect = "json_schema"
                        # the script can only translate and repair its own pool's functions
                        work = ([r.for_task("codegen") for r in recs]
                                + [r.for_task(t) for t in ("translate", "repair")
                                   for r in pool_seeds()])
                    else:
                        from synth.config import EMBEDDED_MODEL
                        report["endpoint"] = "embedded" if server else endpoint
                        client = LLMClient(endpoint, args.model or EMBEDDED_MODEL, store,
                                           LLMConfig(concurrency=1), Counter())
                        dialect = "json_object" if server else "json_schema"
                        names = ("codegen", "repair", "translate")
                        work = [r.for_task(names[i % 3]) for i, r in enumerate(recs)]
                    report[f"loop_{attempt}"] = loop(store, box, client, work, args.mode,
                                                     args.responses, dialect, args.max_tokens,
                                                     not args.no_discriminator)
        finally:
            if server is not None:
                server.__exit__(None, None, None)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
