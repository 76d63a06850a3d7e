"""Fusion of complexity and quality, min-max normalisation, and the NaN-last order."""

from __future__ import annotations

import math

import numpy as np
import pytest

from synth.errors import ConfigError
from synth.filters.fusion import fuse, fused_scores, minmax, score_order
from synth.records import Record

NAN = math.nan


def test_minmax_ignores_nan_and_maps_constants_to_zero() -> None:
    np.testing.assert_allclose(minmax(np.array([2.0, NAN, 4.0, 3.0])), [0, NAN, 1, 0.5])
    np.testing.assert_array_equal(minmax(np.array([5.0, 5.0])), [0.0, 0.0])
    assert np.isnan(minmax(np.array([NAN, NAN]))).all()


def test_product_is_deita_and_weighted_is_xcoder() -> None:
    c = np.array([1.0, 3.0, 5.0, NAN])
    q = np.array([6.0, 2.0, 4.0, 3.0])
    np.testing.assert_allclose(fuse(c, q, "product"), [6.0, 6.0, 20.0, NAN])
    # norm(c) = [0, .5, 1, nan]; norm(q) = [1, 0, .5, .25]
    np.testing.assert_allclose(fuse(c, q, "weighted", alpha=0.25),
                               [0.75, 0.125, 0.625, NAN])
    np.testing.assert_allclose(fuse(c, None), c)
    with pytest.raises(ConfigError):
        fuse(c, q, "sum")
    with pytest.raises(ConfigError):
        fuse(c, q, "weighted", alpha=1.5)


def test_order_is_descending_nan_last_ties_in_input_order() -> None:
    fused = np.array([1.0, NAN, 3.0, 1.0, 3.0, -np.inf, NAN])
    assert score_order(fused).tolist() == [2, 4, 0, 3, 5, 1, 6]


def test_fused_scores_from_records_missing_is_nan() -> None:
    recs = [Record(id="a", scores={"complexity": 2.0, "quality": 3.0}),
            Record(id="b", scores={"complexity": 2.0})]
    np.testing.assert_allclose(fused_scores(recs), [6.0, NAN])
