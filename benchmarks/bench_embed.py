"""Embeddings: synth's Embedder vs plain sentence-transformers fp32, same model, one run.

Texts are real code: every function and class of synth's own source (the shape of seeds). For
1 and 2 torch threads, in one run, the sides alternating ``--repeat`` times (medians):

- ``anchor``: ``SentenceTransformer.encode(texts)`` as a user calls it: fp32, its default batch
  of 32 sorted by characters, the default all-MiniLM-L6-v2;
- ``synth fp32``: :class:`synth.embed.Embedder` in fp32 (token-count batches, on CPU at most
  ``CPU_BATCH_TOKENS`` padded tokens each): what a CPU without native bf16 gets;
- ``synth``: the same with ``precision="auto"`` (bf16 only where the CPU has native bf16).

Then the agreement of forced bf16 with fp32 on a sample (mean/min cosine, top-1 neighbour
agreement, KCenterGreedy picks overlap): emulated bf16 is slow on CPUs without avx512_bf16/AMX,
so the sample is small there.

``--seeds RUN/seeds.jsonl`` embeds the seeds of a run instead (``synth seeds extract``'s output:
1-15-line windows or whole functions, the texts synth really embeds).

    python benchmarks/bench_embed.py [--n 600] [--agreement-n 300] [--seeds FILE] [--repeat 3]
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from synth.embed import Embedder, cpu_bf16_flags, token_lengths  # noqa: E402
from synth.seeds.coreset import kcenter_greedy  # noqa: E402


def code_units(limit: int) -> list[str]:
    out: list[str] = []
    for path in sorted((ROOT / "synth").rglob("*.py")):
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                seg = ast.get_source_segment(source, node)
                if seg:
                    out.append(seg)
    if not out:
        raise SystemExit("no code units found")
    while len(out) < limit:  # repeat with a marker so every text is distinct
        out += [f"# copy {len(out)}\n{t}" for t in out[: limit - len(out)]]
    return out[:limit]


def seed_texts(path: Path, limit: int) -> list[str]:
    out = []
    with path.open() as fh:
        for line in fh:
            text = json.loads(line).get("seed", "")
            if text:
                out.append(text)
            if len(out) == limit:
                break
    if not out:
        raise SystemExit(f"no seeds in {path}")
    return out


def agreement(a: np.ndarray, b: np.ndarray, k: int,
              starts: int = 10) -> tuple[float, float, float, list[float]]:
    """Mean and min cosine, top-1 neighbour agreement, and the KCenterGreedy picks overlap
    for ``starts`` random first picks: one run's overlap is all or little (a near-tie decided
    the other way early changes every pick after it), so one start says little."""
    cos = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    sa, sb = a @ a.T, b @ b.T
    np.fill_diagonal(sa, -2)
    np.fill_diagonal(sb, -2)
    top1 = float(np.mean(sa.argmax(axis=1) == sb.argmax(axis=1)))
    overlaps = []
    for seed in range(starts):
        pa = set(kcenter_greedy(a, k, metric="cosine", seed=seed).indices.tolist())
        pb = set(kcenter_greedy(b, k, metric="cosine", seed=seed).indices.tolist())
        overlaps.append(len(pa & pb) / k)
    return float(cos.mean()), float(cos.min()), top1, overlaps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--agreement-n", type=int, default=300)
    ap.add_argument("--seeds", type=Path, help="a seeds.jsonl to embed instead of synth's code")
    ap.add_argument("--repeat", type=int, default=3, help="runs per side (medians)")
    args = ap.parse_args()
    import torch

    texts = seed_texts(args.seeds, args.n) if args.seeds else code_units(args.n)
    what = f"seeds from {args.seeds}" if args.seeds else "code units from synth/"
    ours = Embedder()
    model = ours._load()
    ours_fp32 = Embedder(precision="fp32")
    ours_fp32._model = model  # the same weights: only the precision differs
    model.encode(texts[:16])  # warm-up (and the per-thread model copies loaded)
    ours.encode(texts[:16])
    ours_fp32.encode(texts[:16])
    sides: list[tuple[str, Callable[[], np.ndarray]]] = [
        ("anchor", lambda: model.encode(texts, convert_to_numpy=True)),
        ("synth fp32", lambda: ours_fp32.encode(texts)),
        ("synth", lambda: ours.encode(texts)),
    ]
    rows = []
    for threads in (1, 2):
        if threads > (os.cpu_count() or 1):
            continue
        torch.set_num_threads(threads)
        rates: dict[str, list[float]] = {name: [] for name, _ in sides}
        vectors: dict[str, np.ndarray] = {}
        for _ in range(args.repeat):  # the sides alternate, so drift hits each alike
            for name, fn in sides:
                t0 = time.perf_counter()
                with torch.no_grad():
                    vectors[name] = fn()
                rates[name].append(len(texts) / (time.perf_counter() - t0))
        med = {name: statistics.median(r) for name, r in rates.items()}
        cos = float(np.mean(np.sum(vectors["anchor"] * vectors["synth"], axis=1)))
        rows.append((threads, med["anchor"], med["synth fp32"], med["synth"], cos))
        print(f"threads={threads}: " + ", ".join(f"{k} {v:.1f}/s" for k, v in med.items()),
              flush=True)
    torch.set_num_threads(os.cpu_count() or 1)
    sample = texts[: args.agreement_n]
    fp32 = Embedder(precision="fp32").encode(sample)
    t0 = time.perf_counter()
    bf16 = Embedder(precision="bf16").encode(sample)
    t_bf16 = time.perf_counter() - t0
    mean_cos, min_cos, top1, overlap = agreement(fp32, bf16, max(2, len(sample) // 10))

    flags = cpu_bf16_flags()
    print(f"machine: {platform.machine()} cores={os.cpu_count()} torch={torch.__version__} "
          f"native bf16: {', '.join(flags) or 'no'}; auto precision = "
          f"{'bf16' if ours._bf16 else 'fp32'}")
    print(f"{len(texts)} {what} (mean {np.mean([len(t) for t in texts]):.0f} chars, "
          f"{np.mean(token_lengths(model, texts)):.0f} tokens); medians of {args.repeat} "
          "runs on a shared machine")
    print("anchor: SentenceTransformer.encode(texts) as a user calls it (fp32, its default "
          "batch of 32 sorted by characters); synth fp32: token batches alone")
    print()
    print("| threads | anchor seeds/s | synth fp32 seeds/s | synth seeds/s | synth fp32 x anchor "
          "| synth x anchor | mean cosine to anchor |")
    print("|---|---|---|---|---|---|---|")
    for threads, b, f, m, c in rows:
        print(f"| {threads} | {b:.1f} | {f:.1f} | {m:.1f} | {f / b:.2f}x | {m / b:.2f}x "
              f"| {c:.6f} |")
    print()
    print(f"forced bf16 vs fp32 on {len(sample)} units ({len(sample) / t_bf16:.1f} seeds/s "
          f"in bf16 here): mean cosine {mean_cos:.5f}, min {min_cos:.5f}, top-1 neighbour "
          f"agreement {top1:.3f}, KCenterGreedy picks overlap (k={max(2, len(sample) // 10)}, "
          f"{len(overlap)} first picks) mean {np.mean(overlap):.2f}, median "
          f"{np.median(overlap):.2f}, min {min(overlap):.2f}")


if __name__ == "__main__":
    main()
