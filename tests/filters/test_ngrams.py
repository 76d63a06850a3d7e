"""The fast n-gram index against a brute-force pairwise computation of the same definition."""

from __future__ import annotations

import random
from typing import Any

import pytest
from nltk.util import ngrams as nltk_ngrams

from synth.errors import ConfigError
from synth.filters.benchmarks import Benchmark
from synth.filters.ngrams import NgramIndex, parse_sizes, word_ngrams


def nltk_grams(text: str, sizes: tuple[int, ...]) -> set[tuple[str, ...]]:
    """XCoder's generate_grams, with nltk's own padding."""
    grams: set[tuple[str, ...]] = set()
    for n in sizes:
        grams.update(nltk_ngrams(text.split(), n, pad_left=True, pad_right=True,
                                 left_pad_symbol="<start>", right_pad_symbol="<end>"))
    return grams


def brute_force(tests: list[str], trains: list[str],
                sizes: tuple[int, ...]) -> dict[tuple[int, int], int]:
    tg = [nltk_grams(t, sizes) for t in tests]
    rg = [nltk_grams(t, sizes) for t in trains]
    return {(i, j): len(r & t) for j, t in enumerate(tg) for i, r in enumerate(rg) if r & t}


def random_texts(rng: random.Random, n: int, vocab: list[str], max_len: int) -> list[str]:
    seps = [" ", "  ", "\n", "\t", " \n "]
    return ["".join(rng.choice(vocab) + rng.choice(seps) for _ in range(rng.randint(0, max_len)))
            for _ in range(n)]


EDGE_TEXTS = ["", "   ", "a", "a b", "<start> a", "a <end>", "<end> <start>", "A a A a",
              "x\u00a0y", "x\x1cy z", "é ü ß"]


@pytest.mark.parametrize("sizes", [(4, 5), (1,), (2, 3), (1, 4), (5,), (3, 7)])
def test_word_ngrams_equal_nltk(sizes: tuple[int, ...]) -> None:
    rng = random.Random(1)
    for text in EDGE_TEXTS + random_texts(rng, 50, list("abcde") + ["<start>", "<end>"], 12):
        assert word_ngrams(text, sizes) == nltk_grams(text, sizes), repr(text)


@pytest.mark.parametrize("sizes", [(4, 5), (1,), (2, 3), (1, 4), (3, 7)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_index_equals_brute_force_on_random_texts(sizes: tuple[int, ...], seed: int) -> None:
    # A tiny vocabulary forces many shared grams, repeats and padding matches.
    rng = random.Random(seed)
    vocab = ["a", "b", "c", "d", "<start>", "<end>", "B"]
    tests = random_texts(rng, 15, vocab, 14) + EDGE_TEXTS
    trains = random_texts(rng, 120, vocab + ["zz", "yy"], 16) + EDGE_TEXTS
    ov = NgramIndex(tests, sizes).overlaps(trains)
    got = {(int(i), int(j)): int(c) for i, j, c in zip(ov.train, ov.test, ov.shared, strict=True)}
    assert got == brute_force(tests, trains, sizes)
    index = NgramIndex(tests, sizes)
    for i, j, s in zip(ov.train, ov.test, ov.score, strict=True):
        assert s == got[(int(i), int(j))] / len(nltk_grams(tests[j], sizes))
    assert index.test_sizes.tolist() == [len(nltk_grams(t, sizes)) for t in tests]


def test_index_equals_brute_force_on_code_alpaca(code_alpaca_rows: list[dict[str, Any]],
                                                 he: Benchmark) -> None:
    rows = random.Random(0).sample(code_alpaca_rows, 600)
    trains = [" ".join([r["instruction"], r["input"], r["output"]]) for r in rows]
    tests = he.texts(["prompt", "solution"])
    ov = NgramIndex(tests).overlaps(trains)
    got = {(int(i), int(j)): int(c) for i, j, c in zip(ov.train, ov.test, ov.shared, strict=True)}
    expected = brute_force(tests, trains, (4, 5))
    assert len(expected) > 100  # the check means something: real overlaps exist
    assert got == expected


def test_index_on_empty_batch_and_no_overlap() -> None:
    index = NgramIndex(["one two three four five"])
    assert len(index.overlaps([])) == 0
    assert len(index.overlaps(["nothing in common here at all"])) == 0


@pytest.mark.parametrize("spec", ["", "0", "a,b", "-1,4"])
def test_parse_sizes_rejects_bad(spec: str) -> None:
    with pytest.raises(ConfigError):
        parse_sizes(spec)


def test_parse_sizes() -> None:
    assert parse_sizes("5,4,4") == (4, 5)
    assert parse_sizes([13]) == (13,)
