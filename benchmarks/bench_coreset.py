"""KCenterGreedy coreset: synth's pruned selection vs the ``pairwise_distances``-per-pick way.

The anchor is the approach of WaveCoder's copy of Google's ``kCenterGreedy``: every pick calls
``sklearn.metrics.pairwise_distances(X, X[[c]])`` and takes ``np.minimum`` with the running
minimum distances. We re-implement that loop here (same calls, same first centre, ties to the
lowest index) and run it next to ``synth.seeds.coreset.kcenter_greedy`` in one process.

Inputs (n = 50,000 × d = 384, k = 5,000 by default):

* ``real``: all-MiniLM-L6-v2 embeddings (inputs truncated at 128 word pieces) of 50k window
  seeds extracted with synth from this machine's Python sources (the standard library and the
  installed site-packages). Embedding them takes long on a CPU, so the matrix is cached in
  ``benchmarks/.cache/``.
* ``gauss``: i.i.d. standard normal float32 — no structure, the worst case for pruning.

Also timed: the plain scan (one float32 matrix-vector product per pick plus a running
minimum; not exact w.r.t. the reference) and the bandwidth bound (time to stream the matrix
once, ``X.max()``) per pick. Both of synth's engines are run (``lazy``, the default, and
``prune``, the triangle-inequality scan).

If the reference is too slow to run all k picks, ``--ref-picks P`` runs its first P picks and
extrapolates the per-pick time to k picks (each reference pick costs the same: one full pass);
the table says so. Picks are compared on the prefix that both ran.

Usage::

    python benchmarks/bench_coreset.py                  # 50k × 384, k = 5k, both inputs
    python benchmarks/bench_coreset.py --real-n 20000 --inputs real --ref-picks 500
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from synth.seeds.coreset import kcenter_greedy  # noqa: E402

CACHE = ROOT / "benchmarks" / ".cache"


POOL = 50_000  # seeds sampled from this machine's sources; the real input is a prefix of them


def real_embeddings(n: int) -> np.ndarray:
    """MiniLM embeddings of the first ``n`` of 50k real code seeds from this machine (cached).

    Vectors are cached per seed id in ``benchmarks/.cache/embeddings.sqlite`` as they are
    computed, so an interrupted or smaller run is never wasted; the matrix is saved as .npy.
    """
    out = CACHE / f"coreset_real_{n}.npy"
    if out.exists():
        return np.load(out)
    import sysconfig

    from synth.config import SeedsConfig
    from synth.embed import Embedder, EmbeddingCache, embed_cached
    from synth.seeds.extract import extract_seeds, sample_seeds

    roots = [Path(sysconfig.get_paths()["stdlib"]), Path(sysconfig.get_paths()["purelib"])]
    counts: Counter[str] = Counter()
    pool = list(sample_seeds(extract_seeds(roots, SeedsConfig(per_file=4), counts), POOL, seed=0))
    if len(pool) < n:
        raise SystemExit(f"only {len(pool)} seeds on this machine, wanted {n}")
    seeds = pool[:n]
    print(f"embedding {n} seeds from {', '.join(map(str, roots))} (cached in {CACHE})",
          flush=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    def progress(done: int, total: int) -> None:
        rate = done / max(time.perf_counter() - t0, 1e-9)
        print(f"  {done}/{total} embedded, {rate:.1f}/s", flush=True)

    with EmbeddingCache(CACHE) as cache:
        # 128 word pieces: the length all-MiniLM-L6-v2 was trained with; halves the CPU time.
        x, _ = embed_cached([r.id for r in seeds], [r.seed for r in seeds],
                            Embedder(max_seq_length=128), cache, chunk=512, on_progress=progress)
    np.save(out, x)
    return x


def reference_picks(x: np.ndarray, first: int, picks: int) -> tuple[np.ndarray, float]:
    """The ``pairwise_distances``-per-pick loop; returns its picks and seconds."""
    from sklearn.metrics import pairwise_distances

    t0 = time.perf_counter()
    min_d: np.ndarray | None = None
    chosen = [first]
    for _ in range(picks):
        dist = pairwise_distances(x, x[[chosen[-1]]], metric="euclidean")
        min_d = dist if min_d is None else np.minimum(min_d, dist)
        if len(chosen) == picks:
            break
        # Google's loop relies on chosen points having distance 0; with float32 rounding a
        # chosen point can keep ~1e-8, so mask them, as synth does (no repeated picks).
        masked = min_d.copy()
        masked[chosen] = -np.inf
        chosen.append(int(np.argmax(masked)))
    return np.array(chosen), time.perf_counter() - t0


def plain_scan(x: np.ndarray, first: int, picks: int) -> float:
    """One float32 mat-vec per pick and a running minimum: the simple fast baseline."""
    t0 = time.perf_counter()
    sq = np.einsum("ij,ij->i", x, x)
    min_d = np.full(x.shape[0], np.inf, dtype=np.float32)
    c = first
    for _ in range(picks):
        d = sq - 2.0 * (x @ x[c])
        d += sq[c]
        np.maximum(d, 0.0, out=d)
        np.sqrt(d, out=d)
        np.minimum(min_d, d, out=min_d)
        min_d[c] = -np.inf
        c = int(np.argmax(min_d))
    return time.perf_counter() - t0


def read_once(x: np.ndarray, repeats: int = 20) -> float:
    """Seconds to stream the matrix through the CPU once (``X.max()``, median): the floor of
    any method that reads every vector at every pick."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        x.max()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench(name: str, x: np.ndarray, k: int, ref_picks: int, repeats: int) -> list[dict]:
    first = int(np.random.default_rng(0).integers(x.shape[0]))
    ref_n = min(k, ref_picks)
    ref_idx, ref_s = reference_picks(x, first, ref_n)
    ref_full = ref_s * k / ref_n
    scan_full = plain_scan(x, first, ref_n) * k / ref_n
    bound_ms = 1000 * read_once(x)
    rows = [
        {"input": name, "method": "reference: pairwise_distances per pick", "s": ref_full,
         "measured": f"{ref_n}/{k}", "identical": "—"},
        {"input": name, "method": "plain float32 scan per pick (not exact)", "s": scan_full,
         "measured": f"{ref_n}/{k}", "identical": "—"},
    ]
    for engine in ("lazy", "prune"):
        times, result = [], None
        for _ in range(repeats):
            t0 = time.perf_counter()
            result = kcenter_greedy(x, k, initial=[first], engine=engine)
            times.append(time.perf_counter() - t0)
        assert result is not None
        same = bool(np.array_equal(result.indices[:ref_n], ref_idx))
        rows.append({"input": name, "method": f"synth kcenter_greedy engine={engine}",
                     "s": statistics.median(times), "measured": f"{k}/{k} ×{repeats}",
                     "identical": f"{same} ({ref_n} picks)",
                     "runs": ", ".join(f"{t:.2f}" for t in times), "work": result.work,
                     "radius": float(result.radii[-1])})
    for r in rows:
        r.update(n=x.shape[0], d=x.shape[1], k=k, ms_pick=1000 * r["s"] / k,
                 vs_ref=ref_full / r["s"], bound_ms=bound_ms)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=50_000, help="rows of the Gaussian input")
    ap.add_argument("--real-n", type=int, default=50_000, help="rows of the real input")
    ap.add_argument("--d", type=int, default=384, help="dimension of the Gaussian input")
    ap.add_argument("--k", type=float, default=0.1,
                    help="centres: a count, or a fraction of n when < 1 (default 10%%)")
    ap.add_argument("--ref-picks", type=int, default=None,
                    help="run the reference for this many picks and extrapolate (default: k)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--blas-threads", type=int, default=1,
                    help="BLAS threads for every method (1: on a shared machine a second "
                         "thread that must wait for a core slows matrix products down)")
    ap.add_argument("--inputs", default="real,gauss")
    args = ap.parse_args()
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=args.blas_threads, user_api="blas")
    rows = []
    for name in args.inputs.split(","):
        if name == "real":
            x = real_embeddings(args.real_n)
        elif name == "gauss":
            x = np.random.default_rng(1).standard_normal((args.n, args.d)).astype(np.float32)
        else:
            raise SystemExit(f"unknown input {name}")
        k = int(args.k if args.k >= 1 else round(args.k * x.shape[0]))
        rows.extend(bench(name, x, k, args.ref_picks or k, args.repeats))

    import sklearn

    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cpus, load average "
          f"{os.getloadavg()[0]:.1f}, python {platform.python_version()}, numpy "
          f"{np.__version__}, scikit-learn {sklearn.__version__}, BLAS threads "
          f"{args.blas_threads}")
    print("seconds for all k picks; ours = median of repeats; reference and scan extrapolated "
          "from the measured picks when measured < k; bound = one streaming read of X\n")
    print("| input | n × d | k | method | seconds | ms/pick | × reference | bound ms/pick "
          "| measured | identical picks |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['input']} | {r['n']} × {r['d']} | {r['k']} | {r['method']} | {r['s']:.2f} "
              f"| {r['ms_pick']:.2f} | {r['vs_ref']:.1f} | {r['bound_ms']:.2f} | "
              f"{r['measured']} | {r['identical']} |")
    for r in rows:
        if "runs" in r:
            print(f"{r['input']} {r['method']}: runs {r['runs']} s, final radius "
                  f"{r['radius']:.4f}, work {r['work']}")


if __name__ == "__main__":
    main()
