"""KCenterGreedy: identical picks to a straightforward reference, ties and edge cases included."""

from __future__ import annotations

import numpy as np
import pytest

from synth.errors import ConfigError, InputError
from synth.seeds.coreset import exact_distances, kcenter_greedy, prepare, squared_norms


def naive_kcenter(x: np.ndarray, k: int, first: list[int], metric: str = "euclidean"
                  ) -> tuple[list[int], list[float]]:
    """Google's loop: after each pick, recompute every point's distance to the new centre."""
    x = prepare(x, metric)
    sq = squared_norms(x)
    chosen: list[int] = []
    radii: list[float] = []
    min_d = np.full(len(x), np.inf, dtype=np.float32)
    masked = min_d
    for i in range(k):
        c = first[i] if i < len(first) else int(np.argmax(masked))
        chosen.append(c)
        min_d = np.minimum(min_d, exact_distances(x, sq, x[c], sq[c]))
        masked = min_d.copy()
        masked[chosen] = -np.inf  # a point is never chosen twice; argmax: lowest index on ties
        r = float(masked.max()) if len(chosen) < len(x) else 0.0
        radii.append(r * r / 2 if metric == "cosine" else r)
    return chosen, radii


def brute_force_kcenter(x: np.ndarray, k: int, first: int) -> list[int]:
    """Every step, the distance of every point to every chosen centre, from scratch."""
    sq = squared_norms(x)
    chosen = [first]
    while len(chosen) < k:
        dist = np.stack([exact_distances(x, sq, x[c], sq[c]) for c in chosen]).min(axis=0)
        dist[chosen] = -np.inf
        chosen.append(int(np.argmax(dist)))
    return chosen


def blobs(rng: np.random.Generator, n: int, d: int, centres: int, spread: float) -> np.ndarray:
    means = rng.standard_normal((centres, d)) * 4
    return (means[rng.integers(0, centres, n)] + spread * rng.standard_normal((n, d))
            ).astype(np.float32)


DATASETS = {
    "gauss": lambda rng: rng.standard_normal((1500, 48)).astype(np.float32),
    # Small integers: many exactly equal distances, so tie-breaking decides most picks.
    "integer_ties": lambda rng: rng.integers(1, 4, (1200, 6)).astype(np.float32),
    "duplicates": lambda rng: np.repeat(rng.standard_normal((300, 16)), 4, axis=0
                                        ).astype(np.float32),
    "blobs": lambda rng: blobs(rng, 2000, 32, 25, 0.3),
    "large_offset": lambda rng: (rng.standard_normal((800, 24)) + 1000).astype(np.float32),
}


@pytest.mark.parametrize("name", sorted(DATASETS))
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("engine", ["lazy", "prune"])
def test_same_picks_and_radii_as_naive_reference(name: str, metric: str, engine: str) -> None:
    x = DATASETS[name](np.random.default_rng(7))
    k = 120
    ours = kcenter_greedy(x, k, metric=metric, seed=3, engine=engine)
    ref, radii = naive_kcenter(x, k, [int(ours.indices[0])], metric)
    assert ours.indices.tolist() == ref
    np.testing.assert_array_equal(ours.radii, np.array(radii))
    assert np.all(np.diff(ours.radii) <= 0), "the coverage radius never grows"


@pytest.mark.parametrize("engine", ["lazy", "prune"])
def test_every_point_selected_when_k_is_n(engine: str) -> None:
    x = np.random.default_rng(0).integers(0, 2, (40, 3)).astype(np.float32)  # 8 distinct points
    res = kcenter_greedy(x, 40, seed=1, engine=engine)
    assert sorted(res.indices.tolist()) == list(range(40))
    assert res.indices.tolist() == brute_force_kcenter(x, 40, int(res.indices[0]))
    assert res.radii[7] == 0.0 and res.radii[-1] == 0.0


@pytest.mark.parametrize("engine", ["lazy", "prune"])
def test_initial_centres_are_kept_first_and_extended_like_the_reference(engine: str) -> None:
    x = DATASETS["blobs"](np.random.default_rng(1))
    initial = [5, 900, 17]
    res = kcenter_greedy(x, 60, initial=initial, engine=engine)
    assert res.indices[:3].tolist() == initial
    ref, radii = naive_kcenter(x, 60, initial)
    assert res.indices.tolist() == ref
    np.testing.assert_array_equal(res.radii, radii)
    # Extending a coreset = continuing the same greedy run.
    full = kcenter_greedy(x, 80, initial=[int(res.indices[0])], engine=engine)
    ext = kcenter_greedy(x, 80, initial=full.indices[:50].tolist(), engine=engine)
    assert ext.indices.tolist() == full.indices.tolist()
    assert kcenter_greedy(x, 2, initial=initial).indices.tolist() == initial[:2]


def test_seed_drives_the_first_centre() -> None:
    x = DATASETS["gauss"](np.random.default_rng(2))
    a, b = kcenter_greedy(x, 10, seed=5), kcenter_greedy(x, 10, seed=5)
    assert a.indices.tolist() == b.indices.tolist()
    firsts = {int(kcenter_greedy(x, 1, seed=s).indices[0]) for s in range(6)}
    assert len(firsts) > 1


@pytest.mark.parametrize("engine", ["lazy", "prune"])
def test_matches_sklearn_pairwise_distances_loop(engine: str) -> None:
    """The loop WaveCoder runs (Google's kCenterGreedy): pairwise_distances per pick."""
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    x = DATASETS["blobs"](np.random.default_rng(4))
    res = kcenter_greedy(x, 150, seed=0, engine=engine)
    chosen = [int(res.indices[0])]
    min_d = None
    for _ in range(149):
        dist = sklearn_metrics.pairwise_distances(x, x[[chosen[-1]]])[:, 0]
        min_d = dist if min_d is None else np.minimum(min_d, dist)
        masked = min_d.copy()
        masked[chosen] = -np.inf
        chosen.append(int(np.argmax(masked)))
    assert res.indices.tolist() == chosen


def test_torch_device_makes_the_same_picks() -> None:
    pytest.importorskip("torch")
    x = DATASETS["integer_ties"](np.random.default_rng(3))
    a = kcenter_greedy(x, 100, seed=2)
    b = kcenter_greedy(x, 100, seed=2, device="cpu")
    assert a.indices.tolist() == b.indices.tolist()
    np.testing.assert_array_equal(a.radii, b.radii)


def test_on_pick_reports_progress() -> None:
    x = DATASETS["gauss"](np.random.default_rng(0))
    seen: list[tuple[int, float]] = []
    res = kcenter_greedy(x, 5, on_pick=lambda i, r: seen.append((i, r)))
    assert [i for i, _ in seen] == [1, 2, 3, 4, 5]
    assert [r for _, r in seen] == res.radii.tolist()


@pytest.mark.parametrize("kwargs", [
    {"k": 0}, {"k": 11}, {"k": 3, "metric": "manhattan"}, {"k": 3, "initial": [1, 1]},
    {"k": 3, "initial": [10]}, {"k": 3, "engine": "magic"},
])
def test_bad_arguments_are_config_errors(kwargs: dict) -> None:
    x = np.random.default_rng(0).standard_normal((10, 4))
    with pytest.raises(ConfigError):
        kcenter_greedy(x, **kwargs)


def test_bad_embeddings_are_input_errors() -> None:
    with pytest.raises(InputError, match="NaN"):
        kcenter_greedy(np.array([[0.0, np.nan], [1.0, 1.0]]), 1)
    with pytest.raises(InputError, match="all zeros"):
        kcenter_greedy(np.array([[0.0, 0.0], [1.0, 1.0]]), 1, metric="cosine")
    with pytest.raises(InputError, match="2-D"):
        kcenter_greedy(np.zeros(5), 1)


def test_both_engines_skip_most_work_on_clustered_data() -> None:
    x = blobs(np.random.default_rng(5), 4000, 32, 40, 0.5)
    lazy = kcenter_greedy(x, 200, seed=0)
    assert lazy.work["pairs_screened"] < 0.5 * 4000 * 200  # a scan screens 4000 per pick
    prune = kcenter_greedy(x, 200, seed=0, engine="prune")
    assert prune.work["rows_screened"] < 0.3 * 4000 * 200
    assert prune.work["pruned_picks"] > 100
    assert lazy.indices.tolist() == prune.indices.tolist()
