"""KCenterGreedy coreset selection over embeddings (WaveCoder's CodeOcean seed picker).

WaveCoder (Yu et al. 2023) picks diverse raw-code seeds with the k-Center-Greedy method of Sener &
Savarese ("Active Learning for Convolutional Neural Networks: A Core-Set Approach", 2018), using
Google's ``kCenterGreedy``: each pick is the point farthest from its nearest chosen centre, and
every pick computes the distances of all ``n`` points to the new centre with
``sklearn.metrics.pairwise_distances``: one full pass over the ``n × d`` matrix per pick.

This module makes the **same picks** with far less work, without giving up exactness:

* **Distance definition.** The distance of a row ``x`` to a centre ``c`` is what the reference
  computes for float32 input: ``sqrt32(float32(max(0, (|x|² − 2·x·c) + |c|²)))`` with squared
  norms and dot product in float64 (:func:`exact_distances`). Ties in the running minimum are
  broken like ``np.argmax``: the lowest index wins. A chosen row is never picked again.
* **Cheap screen, exact decision.** Candidate distances are screened in float32 (matrix
  products) against a rigorous rounding-error bound; only pairs that may set a new minimum are
  recomputed exactly. Every bound is padded for float32/float64 rounding, so a skipped pair
  provably would not change a minimum: picks are identical, not approximately equal.
* **Lazy evaluation** (``engine="lazy"``, the default). Each row keeps its exact minimum over
  the centres chosen up to its last refresh: an upper bound of its true minimum. A max-heap on
  these bounds yields the argmax after refreshing only the rows that reach its top, in batches,
  against only the centres they have not seen. Rows far from the top are never touched again.
* **Triangle-inequality pruning** (``engine="prune"``). Each row remembers its nearest centre
  ``a(x)``; a new centre ``c`` can only lower ``m(x)`` if ``d(c, a(x)) < 2·m(x)``, so rows with
  ``m(x) ≤ d(c, a(x)) / 2`` (whole clusters at once) are skipped; when most rows survive, a
  plain float32 scan is used. On sentence embeddings distances are concentrated (MiniLM code
  vectors: nearest-centre distances ~0.9–1.2 against centre–centre ~1.3–1.4), so this skips
  little; the lazy engine is much faster there and on Gaussian data (see
  ``benchmarks/bench_coreset.py``). It is kept as the scan baseline with exact pruning.

Memory is the float32 matrix (``n × d``), the chosen centres (``k × d``) and a few ``O(n)``
arrays. With ``metric="cosine"`` the rows are L2-normalised first and Euclidean k-center is
run on them: ``|a − b|² = 2·(1 − cos(a, b))`` for unit vectors, so the order of distances is
the cosine order; radii are reported as cosine distances.

A ``device`` (``"cuda"``, ``"cpu"``, …) runs a scan per pick with torch on that device (a GPU
scans faster than it branches); the same bounds and exact recomputation keep its picks
identical too.
"""

from __future__ import annotations

import contextlib
import heapq
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from synth.errors import ConfigError, InputError

METRICS = ("euclidean", "cosine")
ENGINES = ("lazy", "prune")

_U32 = 2.0 ** -24  # unit roundoff of float32
_U64 = 2.0 ** -53  # unit roundoff of float64
_CHUNK = 4096  # rows per block when a whole-matrix float64 pass is needed (bounded memory)
# Pruning is given up for this many picks after a pick where more than half the points were
# candidates; the scan that replaces it makes the same picks.
_SCAN_STREAK = 16
_SCAN_FRACTION = 0.5


@dataclass(frozen=True)
class CoresetResult:
    """What :func:`kcenter_greedy` returns.

    Attributes:
        indices: the selected row indices in pick order (int64, length k); given initial
            centres come first.
        radii: the coverage radius after each pick (float64, length k): the largest distance
            of any point to its nearest selected centre, in the requested metric.
        metric: ``"euclidean"`` or ``"cosine"``.
        work: counters of the work done: ``scan_picks`` (picks that read the whole matrix),
            ``pruned_picks``, ``rows_screened`` (vectors read for a float32 screen) and
            ``rows_exact`` (vectors whose distance was computed exactly).
    """

    indices: np.ndarray
    radii: np.ndarray
    metric: str
    work: dict[str, int] = field(default_factory=dict)


def exact_distances(rows: np.ndarray, rows_sq: np.ndarray, centre: np.ndarray,
                    centre_sq: float) -> np.ndarray:
    """The reference distances of float32 ``rows`` to one float32 ``centre``, as float32.

    This is the definition every pick is made on: ``sklearn.metrics.pairwise_distances``'s
    arithmetic for float32 input (squared norms and dot products in float64, the result
    rounded to float32 before the square root).

    Args:
        rows: ``(m, d)`` float32.
        rows_sq: ``(m,)`` float64 squared norms of ``rows`` (from :func:`squared_norms`).
        centre: ``(d,)`` float32.
        centre_sq: float64 squared norm of ``centre``.
    """
    m = rows.shape[0]
    return pair_distances(rows, rows_sq, np.broadcast_to(centre, (m, centre.shape[0])),
                          np.full(m, centre_sq))


def pair_distances(a: np.ndarray, a_sq: np.ndarray, b: np.ndarray,
                   b_sq: np.ndarray) -> np.ndarray:
    """Reference distances between row ``i`` of ``a`` and row ``i`` of ``b`` (float32).

    Both operands are made contiguous float64 so every pair goes through the same reduction
    whatever batch it is computed in: a pair's distance never depends on its neighbours.
    """
    a64 = np.ascontiguousarray(a, dtype=np.float64)
    b64 = np.ascontiguousarray(b, dtype=np.float64)
    sq = a_sq - 2.0 * np.einsum("ij,ij->i", a64, b64)
    sq += b_sq
    np.maximum(sq, 0.0, out=sq)
    return np.sqrt(sq.astype(np.float32))


def squared_norms(x: np.ndarray) -> np.ndarray:
    """Float64 squared row norms of a float32 matrix, computed in bounded-memory blocks."""
    out = np.empty(x.shape[0], dtype=np.float64)
    for start in range(0, x.shape[0], _CHUNK):
        block = x[start:start + _CHUNK].astype(np.float64)
        out[start:start + _CHUNK] = np.einsum("ij,ij->i", block, block)
    return out


def prepare(embeddings: Any, metric: str) -> np.ndarray:
    """The float32, C-contiguous matrix the selection runs on (rows normalised for cosine)."""
    if metric not in METRICS:
        raise ConfigError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    x = np.ascontiguousarray(np.asarray(embeddings), dtype=np.float32)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise InputError(f"embeddings must be a non-empty 2-D array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise InputError("embeddings contain NaN or infinite values")
    if metric == "cosine":
        norms = np.sqrt(squared_norms(x))
        zero = np.flatnonzero(norms == 0)
        if zero.size:
            raise InputError(f"embedding row {int(zero[0])} is all zeros: its cosine distance "
                             "is undefined")
        x = (x / norms[:, None].astype(np.float32)).astype(np.float32)
    return x


def to_metric(radius: float, metric: str) -> float:
    """A Euclidean radius on the prepared matrix expressed in ``metric``."""
    return radius * radius / 2.0 if metric == "cosine" else radius


def kcenter_greedy(embeddings: Any, k: int, *, metric: str = "euclidean", seed: int = 0,
                   initial: Sequence[int] | None = None, device: str | None = None,
                   engine: str = "lazy",
                   on_pick: Callable[[int, float], None] | None = None) -> CoresetResult:
    """Select ``k`` rows by k-Center-Greedy: each pick is the row farthest from its nearest centre.

    Args:
        embeddings: ``(n, d)`` array (any float dtype; computed in float32).
        k: total number of centres wanted, initial ones included (``1 ≤ k ≤ n``).
        metric: ``"euclidean"`` or ``"cosine"``.
        seed: drives the random first centre when ``initial`` is empty.
        initial: centres that are already chosen (e.g. the surviving coreset of a refresh);
            they come first in the result, in the given order. If there are ``k`` or more,
            the first ``k`` are returned.
        device: a torch device name to run the selection on with torch; None uses numpy.
        engine: ``"lazy"`` (default: refresh only rows that reach the top of a heap of upper
            bounds) or ``"prune"`` (a float32 scan per pick, skipping rows by the triangle
            inequality). Both make the reference's picks; they differ only in speed.
        on_pick: called after every pick with (number of centres so far, coverage radius).

    Returns:
        The selected indices and the coverage radius after each pick.
    """
    x = prepare(embeddings, metric)
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ConfigError(f"k must be between 1 and the number of embeddings ({n}), got {k}")
    init = [int(i) for i in (initial or ())]
    if len(set(init)) != len(init):
        raise ConfigError("initial centres contain duplicates")
    bad = [i for i in init if not 0 <= i < n]
    if bad:
        raise ConfigError(f"initial centre {bad[0]} is out of range for {n} embeddings")
    if not init:
        init = [int(np.random.default_rng(seed).integers(n))]
    if engine not in ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    runner: _Engine
    if device is not None:
        runner = _TorchEngine(x, k, device)
    elif engine == "lazy":
        runner = _LazyEngine(x, k)
    else:
        runner = _PruneEngine(x, k)
    indices = np.empty(k, dtype=np.int64)
    radii = np.empty(k, dtype=np.float64)
    with _single_threaded_blas():
        _run(runner, init, indices, radii, metric, n, on_pick)
    return CoresetResult(indices=indices, radii=radii, metric=metric, work=dict(runner.work))


def _single_threaded_blas() -> Any:
    """One BLAS thread for the selection's many small matrix products.

    Waking a second BLAS thread for each small product costs more than it saves; on a loaded
    2-core machine it made the selection 12× slower (threadpoolctl, when installed).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _run(runner: _Engine, init: list[int], indices: np.ndarray, radii: np.ndarray, metric: str,
         n: int, on_pick: Callable[[int, float], None] | None) -> None:
    k = indices.size
    far = 0
    for pos in range(k):
        c = init[pos] if pos < len(init) else far
        runner.add(c)
        indices[pos] = c
        far, radius = runner.farthest() if pos + 1 < n else (0, 0.0)
        radii[pos] = to_metric(radius, metric)
        if on_pick is not None:
            on_pick(pos + 1, radii[pos])


class _Engine:
    """Holds the running minimum distances; ``add`` a centre, ask for the ``farthest`` row."""

    work: Counter[str]

    def add(self, c: int) -> None:
        raise NotImplementedError

    def farthest(self) -> tuple[int, float]:
        raise NotImplementedError


class _Bounds:
    """Rounding-error constants shared by both engines (see the module docstring)."""

    def __init__(self, d: int, max_norm: float) -> None:
        # Any summation order of d products in float32 errs by at most gamma·Σ|x_i c_i|.
        self.gamma32 = (d + 2) * _U32 / (1 - (d + 2) * _U32)
        self.max_norm = max_norm
        # Error of the float64 squared distance in exact_distances, and its square root: the
        # most a reference distance can sit below the true distance in absolute terms.
        self.err64 = 4.0 * (d + 4) * _U64 * (2.0 * max_norm) ** 2 + 1e-300
        self.slack = math.sqrt(self.err64)

    def screen(self, c_norm: float) -> float:
        """Slack for ``fl32(|x|² − 2x·c) + |c|²`` against the true squared distance."""
        return (2.0 * self.gamma32 * self.max_norm * c_norm
                + 16.0 * _U32 * (self.max_norm + c_norm) ** 2 + 2.0 * self.err64)

    def reach(self, m: np.ndarray) -> np.ndarray:
        """Squared distance below which a centre might beat a current minimum ``m``.

        A reference distance is at least ``true·(1−u)^1.5 − slack``, so beating ``m`` needs a
        true distance below ``m·(1+2u) + slack``. Padded by 1e-6 for the float32 store.
        """
        r = m.astype(np.float64) * (1.0 + 2.0 * _U32) + self.slack
        r = r * r * (1.0 + 1e-6)
        r[m == -np.inf] = -np.inf  # a chosen centre: nothing can lower it
        return r.astype(np.float32)


def _screen(dots: np.ndarray, rows_sq32: np.ndarray, centres_sq: np.ndarray,
            reach: np.ndarray, margin: np.float32) -> tuple[np.ndarray, np.ndarray]:
    """(row, centre) pairs whose exact distance may be a row's new minimum.

    ``dots`` (rows × centres, float32, overwritten) becomes ``|x|² − 2x·c + |c|²``, within
    ``margin`` of the true squared distance. A pair matters only if it may beat the row's
    current minimum (``reach``) and may be the smallest of the row's new pairs: no more than
    ``2·margin`` above the row's smallest screened value.
    """
    dots *= -2.0
    dots += rows_sq32[:, None]
    dots += centres_sq.astype(np.float32)[None, :]
    # The last margin also covers the float32 rounding of the reference distances (a pair
    # with the smallest rounded distance may be up to ~1e-5·|x|² above the smallest true one;
    # margin ≥ 2·gamma32·max_norm² ≈ 4.6e-5·max_norm² for d = 384).
    limit = np.minimum(reach, dots.min(axis=1) + 2 * margin) + margin
    rows, cols = np.nonzero(dots < limit[:, None])
    return rows, cols


class _PruneEngine(_Engine):
    """A float32 scan per pick that skips rows the triangle inequality rules out."""

    def __init__(self, x: np.ndarray, k: int) -> None:
        n, d = x.shape
        self.x = x
        self.sq = squared_norms(x)
        self.sq32 = self.sq.astype(np.float32)
        norms = np.sqrt(self.sq)
        self.norms = norms
        self.bounds = _Bounds(d, float(norms.max()))
        self.min_dist = np.full(n, np.inf, dtype=np.float32)  # -inf marks a chosen centre
        self.reach2 = np.full(n, np.inf, dtype=np.float32)
        self.owner = np.zeros(n, dtype=np.int32)
        self.centres = np.empty((k, d), dtype=np.float32)
        self.centre_sq = np.empty(k, dtype=np.float64)
        self.count = 0
        self.scan_left = 0
        self.work = Counter()

    def farthest(self) -> tuple[int, float]:
        i = int(np.argmax(self.min_dist))
        return i, float(self.min_dist[i])

    def add(self, c: int) -> None:
        j = self.count
        row = self.x[c]
        self.centres[j] = row
        self.centre_sq[j] = self.sq[c]
        self.count += 1
        if j == 0:
            self._first(c)
            return
        cand: np.ndarray | None = None
        if self.scan_left > 0:
            self.scan_left -= 1
        else:
            cand = self._prune(c, j)
            if cand.size > _SCAN_FRACTION * self.x.shape[0]:
                self.scan_left = _SCAN_STREAK
                cand = None
        if cand is None:
            self.work["scan_picks"] += 1
            self.work["rows_screened"] += self.x.shape[0]
            dots = self.x @ row
            sq32 = self.sq32
            reach = self.reach2
        else:
            self.work["pruned_picks"] += 1
            self.work["rows_screened"] += cand.size
            if cand.size == 0:
                self._finish(c)
                return
            dots = self.x.take(cand, axis=0) @ row
            sq32 = self.sq32[cand]
            reach = self.reach2[cand]
        # Screen in float32: |x|² − 2x·c + |c|² minus its error bound must reach below the
        # current minimum; everything else provably keeps its minimum.
        dots *= -2.0
        dots += sq32
        limit = reach - np.float32(self.sq[c] - self.bounds.screen(float(self.norms[c])))
        hit = np.flatnonzero(dots < limit)
        if cand is not None:
            hit = cand[hit]
        if hit.size:
            self._update(hit, c, j)
        self._finish(c)

    def _first(self, c: int) -> None:
        n = self.x.shape[0]
        self.work["scan_picks"] += 1
        self.work["rows_exact"] += n
        row, sq = self.x[c], self.sq[c]
        for start in range(0, n, _CHUNK):
            stop = min(start + _CHUNK, n)
            self.min_dist[start:stop] = exact_distances(self.x[start:stop], self.sq[start:stop],
                                                        row, sq)
        self.reach2 = self.bounds.reach(self.min_dist)
        self._finish(c)

    def _prune(self, c: int, j: int) -> np.ndarray:
        """Rows whose minimum the new centre ``c`` might lower (triangle inequality)."""
        b = self.bounds
        dots = self.centres[:j] @ self.x[c]
        sq = self.centre_sq[:j] + self.sq[c] - 2.0 * dots.astype(np.float64)
        centre_norms = np.sqrt(self.centre_sq[:j])
        sq -= 2.0 * b.gamma32 * centre_norms * self.norms[c] + 2.0 * b.err64
        lower = np.sqrt(np.maximum(sq, 0.0))  # ≤ true distance from c to each earlier centre
        # A row can move to c only if its minimum exceeds (d(c, owner)/2 − slack)/(1+2u).
        thresh = ((lower / 2.0 - b.slack) / (1.0 + 2.0 * _U32) * (1.0 - 1e-6)).astype(np.float32)
        return np.flatnonzero(self.min_dist >= thresh.take(self.owner))

    def _update(self, rows: np.ndarray, c: int, j: int) -> None:
        self.work["rows_exact"] += rows.size
        new = exact_distances(self.x.take(rows, axis=0), self.sq[rows], self.x[c], self.sq[c])
        better = new < self.min_dist[rows]
        rows, new = rows[better], new[better]
        self.min_dist[rows] = new
        self.reach2[rows] = self.bounds.reach(new)
        self.owner[rows] = j

    def _finish(self, c: int) -> None:
        # A chosen centre is never picked again and never needs updating.
        self.min_dist[c] = -np.inf
        self.reach2[c] = -np.inf


class _LazyEngine(_Engine):
    """Lazy k-center: refresh only the rows that reach the top of a max-heap of upper bounds.

    ``m[x]`` is the exact minimum distance of row ``x`` over the first ``ver[x]`` centres, so an
    upper bound of its true minimum. The heap is ordered by ``(-m[x], x)``; the top entry, once
    refreshed against the centres added since ``ver[x]``, is the exact argmax (no other row
    can exceed its bound, and a row with an equal bound and a lower index would sit above it).
    Rows far from the top are never touched again, which is what makes the picks cheap when
    distances are concentrated (sentence embeddings), where triangle-inequality pruning cannot
    skip much. Refreshes run in small batches: a float32 GEMM screen against the missing
    centres with a rigorous rounding bound, then exact distances for the pairs that may lower
    the minimum.
    """

    batch = 16  # stale rows refreshed together; larger batches refresh rows not yet needed

    def __init__(self, x: np.ndarray, k: int) -> None:
        n, d = x.shape
        self.x = x
        self.sq = squared_norms(x)
        self.sq32 = self.sq.astype(np.float32)
        self.bounds = _Bounds(d, float(np.sqrt(self.sq.max())))
        self.margin = np.float32(self.bounds.screen(self.bounds.max_norm))
        self.min_dist = np.full(n, np.inf, dtype=np.float32)
        self.ver = np.zeros(n, dtype=np.int64)
        self.selected = np.zeros(n, dtype=bool)
        self.centres = np.empty((k, d), dtype=np.float32)
        self.centre_sq = np.empty(k, dtype=np.float64)
        self.count = 0
        self.heap: list[tuple[float, int]] = []
        self.work = Counter()

    def add(self, c: int) -> None:
        self.centres[self.count] = self.x[c]
        self.centre_sq[self.count] = self.sq[c]
        self.count += 1
        self.selected[c] = True
        if self.count == 1:
            n = self.x.shape[0]
            row, sq = self.x[c], self.sq[c]
            for start in range(0, n, _CHUNK):
                stop = min(start + _CHUNK, n)
                self.min_dist[start:stop] = exact_distances(
                    self.x[start:stop], self.sq[start:stop], row, sq)
            self.ver[:] = 1
            self.work["rows_exact"] += n
            self.heap = [(-float(v), i) for i, v in enumerate(self.min_dist.tolist())]
            heapq.heapify(self.heap)

    def farthest(self) -> tuple[int, float]:
        heap, ver, count = self.heap, self.ver, self.count
        while heap:
            stale: list[int] = []
            while heap and len(stale) < self.batch:
                x = heap[0][1]
                if self.selected[x]:
                    heapq.heappop(heap)
                elif ver[x] < count:
                    stale.append(heapq.heappop(heap)[1])
                else:
                    break
            if not stale:
                break
            rows = np.array(stale, dtype=np.int64)
            self._refresh(rows)
            for value, x in zip(self.min_dist[rows].tolist(), stale, strict=True):
                heapq.heappush(heap, (-value, x))
        if not heap:
            return 0, 0.0
        x = heap[0][1]
        return x, float(self.min_dist[x])

    def _refresh(self, rows: np.ndarray) -> None:
        """Bring ``min_dist[rows]`` up to date with every centre chosen so far.

        Rows are grouped by how many centres they miss (within a factor 2), so a row that is
        nearly current does not pay for the oldest row's range.
        """
        rows = rows[np.argsort(-self.ver[rows], kind="stable")]  # fewest missing first
        lags = self.count - self.ver[rows]
        first = 0
        while first < rows.size:
            last = int(np.searchsorted(lags, 2 * lags[first], side="right"))
            self._refresh_group(rows[first:last])
            first = last

    def _refresh_group(self, rows: np.ndarray) -> None:
        start = int(self.ver[rows].min())
        centres = self.centres[start:self.count]
        self.work["refreshes"] += rows.size
        self.work["pairs_screened"] += rows.size * centres.shape[0]
        # Centres a row already incorporated are screened again (the groups keep that waste
        # below 2x); they cannot lower an exact minimum, so the result is unchanged.
        screen = self.x.take(rows, axis=0) @ centres.T
        i, j = _screen(screen, self.sq32[rows], self.centre_sq[start:self.count],
                       self.bounds.reach(self.min_dist[rows]), self.margin)
        if i.size:
            self.work["rows_exact"] += i.size
            r = rows[i]
            new = pair_distances(self.x.take(r, axis=0), self.sq[r], centres[j],
                                 self.centre_sq[start + j])
            np.minimum.at(self.min_dist, r, new)
        self.ver[rows] = self.count


class _TorchEngine(_Engine):
    """The scan variant on a torch device: one float32 pass per pick, exact recheck of hits."""

    def __init__(self, x: np.ndarray, k: int, device: str) -> None:
        try:
            import torch
        except ImportError as exc:
            raise ConfigError("--device needs torch: pip install 'synth[embed]'") from exc
        try:
            self.dev = torch.device(device)
            self.x = torch.from_numpy(x).to(self.dev)
        except (RuntimeError, ValueError) as exc:
            raise ConfigError(f"torch device {device!r} is not usable: {exc}") from exc
        self.torch = torch
        n, d = x.shape
        sq = squared_norms(x)
        self.sq = torch.from_numpy(sq).to(self.dev)
        self.sq32 = self.sq.float()
        self.bounds = _Bounds(d, float(np.sqrt(sq.max())))
        self.norm_c = np.sqrt(sq)
        self.sq_host = sq
        self.work = Counter()
        self.min_dist = torch.full((n,), float("inf"), dtype=torch.float32, device=self.dev)
        self.reach2 = torch.full((n,), float("inf"), dtype=torch.float32, device=self.dev)

    def farthest(self) -> tuple[int, float]:
        # torch.argmax does not promise the first maximum; take the smallest index at the max.
        top = self.min_dist.max()
        i = int(self.torch.nonzero(self.min_dist == top)[0, 0])
        return i, float(top)

    def add(self, c: int) -> None:
        torch = self.torch
        row = self.x[c]
        sq_c = float(self.sq_host[c])
        # TF32 would void the float32 error bound; force full-precision matmuls here.
        old = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision("highest")
        try:
            screen = self.sq32 - 2.0 * (self.x @ row)
        finally:
            torch.set_float32_matmul_precision(old)
        limit = self.reach2 - (sq_c - self.bounds.screen(float(self.norm_c[c])))
        hit = torch.nonzero(screen < limit).flatten()
        self.work["scan_picks"] += 1
        self.work["rows_screened"] += self.x.shape[0]
        self.work["rows_exact"] += hit.numel()
        row64 = row.double()
        for part in torch.split(hit, _CHUNK):
            sq = self.sq[part] - 2.0 * (self.x[part].double() @ row64)
            sq += sq_c
            new = torch.sqrt(sq.clamp_min(0.0).float())
            better = new < self.min_dist[part]
            part, new = part[better], new[better]
            self.min_dist[part] = new
            reach = self.bounds.reach(new.cpu().numpy())
            self.reach2[part] = torch.from_numpy(reach).to(self.dev)
        self.min_dist[c] = float("-inf")
        self.reach2[c] = float("-inf")
