"""Diversity selection: synth's blocked selection vs a DEITA-style one-at-a-time loop.

The reference follows DEITA's ``IterativeFilter.filter`` (hkust-nlp/deita,
``src/deita/selection/filter/base.py``) with its defaults: batch_size 1, chunk_size 100000,
torch on the CPU. For every candidate in score order it gathers the embeddings of everything kept
so far (``embeddings[filtered_indices]``), converts each chunk to a torch tensor, L2-normalises
both sides, multiplies, and rejects the candidate when any similarity is > τ. It is rewritten
here, not imported (DEITA pulls in training dependencies). One addition so that both sides
implement the same definition: pairs whose float32 similarity is within the float32 error bound
of τ are decided on the exact dot product, as synth does (the count of such pairs is printed).

Data: n vectors in clusters whose spread straddles τ (so selection both keeps and rejects),
scores from two random 1–6 integer scores multiplied (DEITA's c × q; many ties). Run:

    python benchmarks/bench_diversity.py                 # 50k x 384, tau 0.9, budgets 6k/10k
    python benchmarks/bench_diversity.py --n 5000 --budgets 1000 --repeats 1   # quick
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from synth.filters.diversity import (  # noqa: E402
    exact_similarity,
    float32_margin,
    normalize_rows,
    select_diverse,
)
from synth.filters.fusion import score_order  # noqa: E402


def make_data(n: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Clustered unit vectors (one cluster per ~4 samples) and DEITA-like tied scores."""
    rng = np.random.default_rng(seed)
    n_clusters = max(n // 4, 1)
    centres = normalize_rows(rng.normal(size=(n_clusters, dim)))
    member = rng.integers(0, n_clusters, n)
    # Noise per dimension σ gives a within-cluster similarity of about 1 / (1 + d σ²): from
    # ~0.97 down to ~0.80 across clusters, around τ = 0.9.
    sigma = rng.uniform(0.009, 0.028, n_clusters)[member][:, None]
    emb = normalize_rows(centres[member] + rng.normal(size=(n, dim)) * sigma)
    complexity = rng.integers(1, 7, n).astype(np.float64)
    quality = rng.integers(1, 7, n).astype(np.float64)
    return emb, complexity * quality


class DeitaLike:
    """DEITA's IterativeFilter loop (batch_size 1, chunked, torch), see the module docstring."""

    def __init__(self, tau: float, budget: int, chunk_size: int = 100_000) -> None:
        self.tau = tau
        self.budget = budget
        self.chunk_size = chunk_size
        self.near_pairs = 0

    def _similarity(self, cur: object, existing: np.ndarray) -> object:
        import torch

        out = torch.zeros((1, existing.shape[0]), dtype=torch.float32)
        for i in range(0, existing.shape[0], self.chunk_size):
            chunk = torch.tensor(existing[i: i + self.chunk_size], dtype=torch.float32)
            a = cur / cur.norm(dim=1)[:, None]  # type: ignore[attr-defined]
            b = chunk / chunk.norm(dim=1)[:, None]
            sims = torch.mm(a, b.t())
            out[:, i: i + sims.size(1)] = sims
        return out

    def filter(self, emb_sorted: np.ndarray) -> list[int]:
        import torch

        margin = float32_margin(emb_sorted)
        kept = [0]
        for i in range(1, emb_sorted.shape[0]):
            cur = torch.tensor(emb_sorted[i: i + 1], dtype=torch.float32)
            existing = emb_sorted[kept]
            sims = self._similarity(cur, existing)[0]
            over = sims > self.tau + margin
            reject = bool(over.any())
            if not reject:
                near = torch.nonzero((sims > self.tau - margin) & ~over).flatten().tolist()
                self.near_pairs += len(near)
                reject = any(exact_similarity(emb_sorted[i], existing[j]) > self.tau
                             for j in near)
            if not reject:
                kept.append(i)
                if len(kept) >= self.budget:
                    break
        return kept[: self.budget]


def numpy_one_at_a_time(emb: np.ndarray, order: np.ndarray, tau: float,
                        budget: int) -> np.ndarray:
    """A lean one-at-a-time loop: preallocated kept matrix, one matrix-vector product per
    candidate. Shows how much of the gap is DEITA's per-step overhead and how much is batching."""
    margin = float32_margin(emb)
    kept = np.empty((budget, emb.shape[1]), dtype=np.float32)
    idx: list[int] = []
    for i in order:
        c = emb[i]
        sims = kept[: len(idx)] @ c
        if (sims > tau + margin).any():
            continue
        near = np.flatnonzero(sims > tau - margin)
        if any(exact_similarity(c, kept[j]) > tau for j in near):
            continue
        kept[len(idx)] = c
        idx.append(int(i))
        if len(idx) >= budget:
            break
    return np.array(idx, dtype=np.int64)


def timed(fn: Callable[[], np.ndarray], repeats: int) -> tuple[list[float], np.ndarray]:
    times = []
    result = np.empty(0)
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return times, result


def machine() -> str:
    import torch

    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{cpu}, {os.cpu_count()} cores, load {load:.1f}; Python {platform.python_version()},"
            f" numpy {np.__version__}, torch {torch.__version__} ({torch.get_num_threads()} "
            "threads)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--tau", type=float, default=0.9)
    ap.add_argument("--budgets", default="6000,10000")
    ap.add_argument("--repeats", type=int, default=5, help="runs of ours (median reported)")
    ap.add_argument("--ref-repeats", type=int, default=1, help="runs of the reference")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    emb, fused = make_data(args.n, args.dim, args.seed)
    order = score_order(fused)
    emb_sorted = np.ascontiguousarray(emb[order])  # DEITA sorts the frame before filtering
    print(f"# diversity selection, {args.n} x {args.dim} float32, tau {args.tau}")
    print(f"# {machine()}")
    rows = []
    for budget in (int(b) for b in args.budgets.split(",")):
        ours_t, ours = timed(lambda b=budget: select_diverse(emb, order, args.tau, b),
                             args.repeats)
        lean_t, lean = timed(lambda b=budget: numpy_one_at_a_time(emb, order, args.tau, b), 1)
        ref = DeitaLike(args.tau, budget)
        ref_t, ref_kept = timed(lambda r=ref: np.array(r.filter(emb_sorted)), args.ref_repeats)
        ref_idx = order[ref_kept]
        same = np.array_equal(ref_idx, ours)
        diff = len(set(ref_idx.tolist()) ^ set(ours.tolist()))
        same = same and np.array_equal(lean, ours)
        rows.append((budget, ours_t, ref_t, lean_t, len(ours), len(ref_idx), same, diff,
                     ref.near_pairs // max(args.ref_repeats, 1)))
    print()
    print("| budget | kept | DEITA-like loop (s) | numpy one-at-a-time (s) | synth (s) |"
          " speed-up vs DEITA-like | vs numpy loop | same selection (all three) |"
          " near-τ pairs decided exactly |")
    print("|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    for budget, ours_t, ref_t, lean_t, n_ours, n_ref, same, diff, near in rows:
        r, o, le = statistics.median(ref_t), statistics.median(ours_t), lean_t[0]
        print(f"| {budget} | {n_ours} | {r:.2f} (n={len(ref_t)}) | {le:.2f} (n=1) | {o:.3f} "
              f"(median of {len(ours_t)}: {min(ours_t):.3f}–{max(ours_t):.3f}) | {r / o:.0f}× | "
              f"{le / o:.1f}× | {'yes' if same else f'NO ({diff} differ, ref kept {n_ref})'} "
              f"| {near} |")


if __name__ == "__main__":
    main()
