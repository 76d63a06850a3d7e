"""Score-first diversity selection (DEITA's Repr Filter, XCoder's diversity sampling).

The rule: walk the samples from the highest fused score down; keep a sample only if its cosine
**similarity** to every sample already kept is **at most** τ; stop at the budget.

Sign convention: similarity is the dot product of L2-normalised embeddings, in [-1, 1]; higher
means more alike. τ = 0.9 rejects a sample whose similarity to any kept one is > 0.9 (an angle
under ~25.8°) and keeps one at exactly 0.9. DEITA's code calls τ a "distance" threshold but
compares the cosine similarity, with the same direction as here; cosine *distance* would be
1 − similarity, which we never use.

Exactness: the decision is defined on the exact dot product of the float32 vectors (each
product is exact in float64 and ``math.fsum`` rounds the sum once). The fast path computes
similarities in float32 BLAS; a float32 dot product of d terms is within d·2⁻²² of the exact one
for unit vectors, so only pairs that close to τ are recomputed exactly. Any correct
implementation of the rule — the one-at-a-time :func:`select_reference` below, or the blocked
:func:`select_diverse` — therefore picks exactly the same samples, whatever BLAS does.

Speed: candidates are taken in batches; each batch is compared with the kept matrix (grown in
blocks, scanned in chunks) by one matrix product, candidates already rejected are dropped before
the next chunk, and the survivors are checked against each other with one small Gram matrix
where a rejected candidate blocks nobody.
"""

from __future__ import annotations

import math

import numpy as np

DEFAULT_BATCH = 1024
KEPT_CHUNK = 8192
GROW_BLOCK = 4096


def normalize_rows(emb: np.ndarray) -> np.ndarray:
    """float32 rows scaled to unit length (zero rows stay zero)."""
    emb = np.asarray(emb, dtype=np.float32)
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(emb / norms, dtype=np.float32)


def exact_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """The dot product of two float32 vectors, correctly rounded."""
    return math.fsum((a.astype(np.float64) * b.astype(np.float64)).tolist())


def float32_margin(emb: np.ndarray) -> float:
    """A bound on |float32 dot − exact dot| for any two rows of ``emb``.

    γ_d·‖a‖‖b‖ with γ_d = d·u/(1 − d·u), u = 2⁻²⁴ (Higham's bound for any summation order),
    doubled for safety.
    """
    d = emb.shape[1]
    u = 2.0**-24
    gamma = d * u / (1 - d * u)
    top = float(np.max(np.linalg.norm(emb, axis=1))) if emb.size else 0.0
    return 2.0 * gamma * top * top + 1e-12


def select_reference(emb: np.ndarray, order: np.ndarray, tau: float,
                     budget: int | None = None) -> np.ndarray:
    """The definition, one candidate at a time with exact similarities (slow; for tests)."""
    kept: list[int] = []
    for i in order:
        if budget is not None and len(kept) >= budget:
            break
        if all(exact_similarity(emb[i], emb[j]) <= tau for j in kept):
            kept.append(int(i))
    return np.array(kept, dtype=np.int64)


class _Kept:
    """The kept embeddings, grown in blocks so appends do not copy every time."""

    def __init__(self, dim: int) -> None:
        self.matrix = np.empty((0, dim), dtype=np.float32)
        self.size = 0

    def append(self, rows: np.ndarray) -> None:
        need = self.size + rows.shape[0]
        if need > self.matrix.shape[0]:
            cap = max(need, 2 * self.matrix.shape[0], GROW_BLOCK)
            grown = np.empty((cap, self.matrix.shape[1]), dtype=np.float32)
            grown[: self.size] = self.matrix[: self.size]
            self.matrix = grown
        self.matrix[self.size: need] = rows
        self.size = need


def _too_similar(sims: np.ndarray, rows: np.ndarray, cols: np.ndarray, cand: np.ndarray,
                 other: np.ndarray, tau: float, margin: float) -> np.ndarray:
    """Boolean matrix: exact similarity > τ, from float32 ``sims`` plus exact checks near τ.

    ``rows``/``cols`` map sims' rows and columns to row indices of ``cand``/``other``.
    """
    over = sims > tau + margin
    near = (sims > tau - margin) & ~over
    if near.any():
        for r, c in zip(*np.nonzero(near), strict=True):
            over[r, c] = exact_similarity(cand[rows[r]], other[cols[c]]) > tau
    return over


def select_diverse(emb: np.ndarray, order: np.ndarray, tau: float, budget: int | None = None,
                   batch_size: int = DEFAULT_BATCH) -> np.ndarray:
    """Indices kept by the score-first similarity rule, in the order they were kept.

    Args:
        emb: (n, d) embeddings, float32, rows L2-normalised (see :func:`normalize_rows`).
        order: candidate indices in the order to consider them (see ``fusion.score_order``).
        tau: keep a candidate iff its cosine similarity to every kept one is ≤ tau.
        budget: stop after this many are kept (None: no limit).
        batch_size: candidates compared per matrix product.
    """
    emb = np.ascontiguousarray(emb, dtype=np.float32)
    order = np.asarray(order, dtype=np.int64)
    limit = len(order) if budget is None else min(budget, len(order))
    margin = float32_margin(emb)
    kept = _Kept(emb.shape[1])
    kept_idx: list[np.ndarray] = []
    n_kept = 0
    pos = 0
    while pos < len(order) and n_kept < limit:
        cand_idx = order[pos: pos + batch_size]
        pos += len(cand_idx)
        cand = emb[cand_idx]
        alive = np.ones(len(cand_idx), dtype=bool)
        for start in range(0, kept.size, KEPT_CHUNK):
            rows = np.flatnonzero(alive)
            if rows.size == 0:
                break
            block = kept.matrix[start: min(start + KEPT_CHUNK, kept.size)]
            sims = cand[rows] @ block.T
            cols = np.arange(start, start + block.shape[0])
            bad = _too_similar(sims, rows, cols, cand, kept.matrix, tau, margin).any(axis=1)
            alive[rows[bad]] = False
        rows = np.flatnonzero(alive)
        if rows.size == 0:
            continue
        survivors = cand[rows]
        conflict = _too_similar(survivors @ survivors.T, np.arange(rows.size),
                                np.arange(rows.size), survivors, survivors, tau, margin)
        # Only earlier candidates can block a later one.
        conflict = np.asarray(np.tril(conflict, -1), dtype=bool)
        has_conflict = conflict.any(axis=1)
        accept: np.ndarray = np.logical_not(has_conflict)
        for i in np.flatnonzero(has_conflict):
            accept[i] = not (conflict[i, :i] & accept[:i]).any()
        chosen = rows[accept][: limit - n_kept]
        kept.append(cand[chosen])
        kept_idx.append(cand_idx[chosen])
        n_kept += chosen.size
    if not kept_idx:
        return np.empty(0, dtype=np.int64)
    return np.concatenate(kept_idx).astype(np.int64)
