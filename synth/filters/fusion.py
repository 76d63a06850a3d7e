"""One score per sample from complexity and quality, and the score-first order.

- ``product`` (DEITA): complexity × quality, on the raw scores (DEITA multiplies its 1–6
  expectations directly).
- ``weighted`` (XCoder): α·norm(c) + (1 − α)·norm(q), each min-max normalised over the dataset.

A sample with either score NaN gets a NaN fused score; NaN sorts after every number. Ties keep
input order, so the order (and hence the selection) is deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from synth.errors import ConfigError
from synth.records import Record

FUSIONS = ("product", "weighted")


def minmax(values: np.ndarray) -> np.ndarray:
    """Min-max normalise to [0, 1] ignoring NaN (kept as NaN); a constant column becomes 0."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[~np.isnan(values)]
    if finite.size == 0:
        return values.copy()
    lo, hi = float(finite.min()), float(finite.max())
    if hi == lo:
        return np.where(np.isnan(values), np.nan, 0.0)
    return (values - lo) / (hi - lo)


def fuse(complexity: np.ndarray, quality: np.ndarray | None, method: str = "product",
         alpha: float = 0.5) -> np.ndarray:
    """Fused scores; ``quality`` None means rank by complexity alone."""
    c = np.asarray(complexity, dtype=np.float64)
    if quality is None:
        return c.copy()
    q = np.asarray(quality, dtype=np.float64)
    if method == "product":
        return c * q
    if method == "weighted":
        if not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"--alpha must be in [0, 1], got {alpha}")
        return alpha * minmax(c) + (1.0 - alpha) * minmax(q)
    raise ConfigError(f"--fusion must be one of {', '.join(FUSIONS)}, got {method!r}")


def score_order(fused: np.ndarray) -> np.ndarray:
    """Indices by fused score descending, NaN last, ties in input order."""
    fused = np.asarray(fused, dtype=np.float64)
    nan = np.isnan(fused)
    # lexsort: the last key is the primary one.
    return np.lexsort((np.arange(fused.size), -np.where(nan, 0.0, fused), nan))


def record_scores(records: Sequence[Record], key: str) -> np.ndarray:
    """``scores[key]`` of each record; missing counts as NaN."""
    return np.array([float(r.scores.get(key, np.nan)) for r in records], dtype=np.float64)


def fused_scores(records: Sequence[Record], complexity_key: str = "complexity",
                 quality_key: str | None = "quality", method: str = "product",
                 alpha: float = 0.5) -> np.ndarray:
    """Fused scores of records from two named scores (``quality_key`` None: the first alone)."""
    c = record_scores(records, complexity_key)
    q = record_scores(records, quality_key) if quality_key else None
    return fuse(c, q, method, alpha)
