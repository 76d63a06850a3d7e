"""Diversity selection: the vectorised version picks exactly what the definition picks."""

from __future__ import annotations

import numpy as np
import pytest

from synth.filters.diversity import (
    exact_similarity,
    normalize_rows,
    select_diverse,
    select_reference,
)
from synth.filters.fusion import score_order


def _clustered(seed: int, n: int = 240, d: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Clusters with spread around τ, exact duplicate rows, tied and NaN scores."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(15, d))
    emb = centers[rng.integers(0, 15, n)] + rng.normal(scale=0.35, size=(n, d))
    emb[rng.integers(0, n, 25)] = emb[rng.integers(0, n, 25)]
    scores = rng.integers(0, 4, n).astype(np.float64)  # many ties
    scores[rng.integers(0, n, 15)] = np.nan
    return normalize_rows(emb), score_order(scores)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("tau", [0.3, 0.9, 0.98])
@pytest.mark.parametrize("budget", [None, 1, 17])
def test_matches_one_at_a_time_reference(seed: int, tau: float, budget: int | None) -> None:
    emb, order = _clustered(seed)
    expected = select_reference(emb, order, tau, budget)
    assert expected.size >= (1 if budget == 1 else 2)
    for batch in (1, 5, 64, 4096):
        got = select_diverse(emb, order, tau, budget, batch_size=batch)
        np.testing.assert_array_equal(got, expected)


def test_similarity_exactly_tau_is_kept_and_just_above_is_not() -> None:
    # float32-exact vectors: e1·b = 0.5 exactly, e1·c = 0.5 + 2^-20.
    emb = np.zeros((3, 4), dtype=np.float32)
    emb[0, 0] = 1.0
    emb[1, :2] = [0.5, np.float32(np.sqrt(0.75))]
    emb[2, :2] = [0.5 + 2**-20, np.float32(np.sqrt(0.75))]
    assert exact_similarity(emb[0], emb[1]) == 0.5
    order = np.array([0, 1, 2])
    np.testing.assert_array_equal(select_diverse(emb, order, 0.5), [0, 1])
    np.testing.assert_array_equal(select_reference(emb, order, 0.5), [0, 1])


def test_rejected_candidates_do_not_block_later_ones() -> None:
    # a kept; b too close to a (rejected); c close to b but not to a: c must be kept even
    # though b and c are in the same batch (DEITA's intra-batch check would drop c).
    a = np.array([1.0, 0.0])
    b = np.array([np.cos(0.3), np.sin(0.3)])
    c = np.array([np.cos(0.6), np.sin(0.6)])
    emb = normalize_rows(np.stack([a, b, c]))
    tau = float(np.cos(0.45))
    np.testing.assert_array_equal(select_diverse(emb, np.arange(3), tau, batch_size=3), [0, 2])


def test_budget_and_empty_input() -> None:
    emb, order = _clustered(1)
    assert select_diverse(emb, order, 0.9, budget=5).size == 5
    assert select_diverse(emb, order, 0.9, budget=0).size == 0
    assert select_diverse(emb[:0], order[:0], 0.9).size == 0


def test_zero_rows_are_not_similar_to_anything() -> None:
    emb = normalize_rows(np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]]))
    np.testing.assert_array_equal(select_diverse(emb, np.arange(3), 0.9), [0, 1, 2])
