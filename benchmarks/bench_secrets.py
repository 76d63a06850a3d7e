"""What the secrets check costs and how often it fires: ``--secrets off`` vs ``redact``.

1. ``stdlib``: ``extract_seeds`` over this Python's standard library (the default corpus,
   window mode) with secrets off and with redact, interleaved, median of ``--repeats``; the share
   of seeds changed, the kinds found, and a sample of changed seeds (before → after).
2. ``dataset``: a ``--rows``-row instruction dataset (Code Alpaca from /work/shared/data,
   replicated) read as ``-i`` is read (``read_records``), plain vs through the policy.
3. ``planted``: recall per kind on the planted corpus of ``tests/secrets_corpus.py``.

Usage::

    python benchmarks/bench_secrets.py
    python benchmarks/bench_secrets.py --only stdlib --repeats 3 --sample 20
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from synth.config import SeedsConfig  # noqa: E402
from synth.filters.secrets import SecretScanner, SecretsPolicy  # noqa: E402
from synth.io.rows import read_records  # noqa: E402
from synth.seeds.corpus import default_corpus  # noqa: E402
from synth.seeds.extract import extract_seeds  # noqa: E402

ALPACA = Path("/work/shared/data/code_alpaca/new_codealpaca.jsonl")


def _extract(mode: str) -> tuple[float, float, list, Counter[str]]:
    counts: Counter[str] = Counter()
    t0, c0 = time.perf_counter(), time.process_time()
    seeds = list(extract_seeds(default_corpus(), SeedsConfig(secrets=mode), counts))
    return time.perf_counter() - t0, time.process_time() - c0, seeds, counts


def bench_stdlib(repeats: int, sample: int) -> None:
    times: dict[str, list[float]] = {"off": [], "redact": []}
    cpu: dict[str, list[float]] = {"off": [], "redact": []}
    runs: dict[str, tuple[list, Counter[str]]] = {}
    # Warm the page cache; the first redact run (timed) pays detect-secrets' import, as a CLI
    # run does, the later ones do not.
    _extract("off")
    for _ in range(repeats):
        for mode in ("off", "redact"):
            seconds, cpu_s, seeds, counts = _extract(mode)
            times[mode].append(seconds)
            cpu[mode].append(cpu_s)
            runs[mode] = (seeds, counts)
    off, red = statistics.median(times["off"]), statistics.median(times["redact"])
    c_off, c_red = statistics.median(cpu["off"]), statistics.median(cpu["redact"])
    seeds_off, _ = runs["off"]
    seeds_red, counts = runs["redact"]
    changed = [s for s in seeds_red if "secrets" in s.meta["provenance"]]
    kinds = {k.removeprefix("secret_"): v for k, v in counts.items() if k.startswith("secret_")}
    print("\n## stdlib seed extraction (window mode, default corpus)\n")
    print("| secrets | wall s (median) | CPU s (median) | seeds | changed | share changed |")
    print("|---|---|---|---|---|---|")
    print(f"| off | {off:.2f} | {c_off:.2f} | {len(seeds_off)} | - | - |")
    print(f"| redact | {red:.2f} | {c_red:.2f} | {len(seeds_red)} | {len(changed)} | "
          f"{len(changed) / max(1, len(seeds_red)):.2%} |")
    print(f"\nadded: wall {red - off:+.2f} s ({(red - off) / off:+.1%}), "
          f"CPU {c_red - c_off:+.2f} s ({(c_red - c_off) / c_off:+.1%}); "
          f"first redact run (with the import): wall "
          f"{times['redact'][0]:.2f} s; kinds found: {json.dumps(dict(sorted(kinds.items())))}")
    by_key = {(s.meta["provenance"]["path"], s.meta["provenance"]["start_line"]): s
              for s in seeds_off}
    print(f"\n### sample of changed seeds ({min(sample, len(changed))} of {len(changed)})\n")
    for s in changed[:sample]:
        prov = s.meta["provenance"]
        before = by_key.get((prov["path"], prov["start_line"]))
        old = before.seed.splitlines() if before else []
        new = s.seed.splitlines()
        diff = [(a, b) for a, b in zip(old, new, strict=False) if a != b]
        print(f"- {prov['path']}:{prov['start_line']} {prov['secrets']}")
        for a, b in diff[:3]:
            print(f"    - {a.strip()[:110]}\n    + {b.strip()[:110]}")


def bench_dataset(rows: int) -> None:
    base = [json.loads(x) for x in ALPACA.read_text(encoding="utf-8").splitlines() if x.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.jsonl"
        with open(path, "w", encoding="utf-8") as fh:
            for i in range(rows):
                fh.write(json.dumps(base[i % len(base)]) + "\n")
        list(read_records(path))  # warm
        t0 = time.process_time()
        n_off = sum(1 for _ in read_records(path))
        off = time.process_time() - t0
        policy = SecretsPolicy("redact")
        t0 = time.process_time()
        n_red = sum(1 for _ in policy.rows(read_records(path)))
        red = time.process_time() - t0
    stats = policy.to_dict()
    print(f"\n## -i dataset: {rows} rows (Code Alpaca x{rows / len(base):.0f})\n")
    print("| secrets | CPU s | rows |\n|---|---|---|")
    print(f"| off | {off:.2f} | {n_off} |\n| redact | {red:.2f} | {n_red} |")
    print(f"\nadded time: {red - off:+.2f} s ({(red - off) / off:+.1%}); rows changed: "
          f"{stats['redacted'].get('input', 0)} ({stats['redacted'].get('input', 0) / rows:.2%});"
          f" kinds: {json.dumps(stats['by_kind'])}")


def bench_planted() -> None:
    from secrets_corpus import DATASET_PLANTED, DATASET_ROWS, FILES, PLANTED

    scanner = SecretScanner()
    langs = {".py": "python", ".js": "javascript", ".go": "go", ".java": "java",
             ".sh": "shell", ".yaml": "yaml", ".env": ""}
    texts = dict(FILES)
    texts["rows"] = "\n".join(r["instruction"] + "\n" + r["output"] for r in DATASET_ROWS)
    planted = PLANTED + [(kind, value, "rows") for kind, value in DATASET_PLANTED]
    total: Counter[str] = Counter()
    gone: Counter[str] = Counter()
    right: Counter[str] = Counter()
    for kind, value, path in planted:
        text = texts[path]
        lang = langs.get(path[path.rfind("."):], "")
        findings = scanner.scan(text, lang)
        total[kind] += 1
        gone[kind] += value not in scanner.redact(text, lang)[0]
        pos = text.find(value)
        right[kind] += any(f.kind == kind and f.start <= pos < f.end for f in findings)
    print("\n## recall on the planted corpus (tests/secrets_corpus.py)\n")
    print("| kind | planted | value gone | under its kind | recall |\n|---|---|---|---|---|")
    for kind in sorted(total):
        print(f"| {kind} | {total[kind]} | {gone[kind]} | {right[kind]} | "
              f"{right[kind] / total[kind]:.0%} |")
    n = sum(total.values())
    print(f"| **all** | {n} | {sum(gone.values())} | {sum(right.values())} | "
          f"{sum(right.values()) / n:.0%} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=("stdlib", "dataset", "planted"))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--sample", type=int, default=15)
    args = ap.parse_args()
    if args.only in (None, "planted"):
        bench_planted()
    if args.only in (None, "stdlib"):
        bench_stdlib(args.repeats, args.sample)
    if args.only in (None, "dataset"):
        bench_dataset(args.rows)


if __name__ == "__main__":
    main()
