"""XCoder's word n-grams and a fast index of which training samples share them with a benchmark.

The n-gram definition is XCoder's (``compute_TLI.py``, Wang et al. 2024): a text is split on
whitespace (``str.split()``, case-sensitive); for each size n it is padded with n-1 ``<start>``
tokens on the left and n-1 ``<end>`` tokens on the right (nltk's ``ngrams(..., pad_left=True,
pad_right=True)``) and every window of n tokens is a gram; a text's grams are the union over the
sizes (4 and 5 by default). The overlap of a benchmark item with a training sample is
``S(test, train) = |G_test ∩ G_train| / |G_test|``.

XCoder computes S for every (test, train) pair with Python set intersections, which is
O(|test| × |train|). :class:`NgramIndex` instead indexes the benchmark side once and streams the
training side: every training token is mapped to an integer (tokens absent from the benchmark
map to 0 and can never be part of a shared gram), windows are looked up level by level in a
prefix trie of the benchmark grams held as sorted integer arrays (numpy ``searchsorted``), so
only windows whose prefix occurs in the benchmark survive each level. The matched grams are
expanded to benchmark items through an inverted index (gram → items). The result is exact —
every shared gram is found, nothing is hashed lossily — and it costs about one pass of vector
operations over the training tokens.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain, repeat

import numpy as np

from synth.errors import ConfigError

START = "<start>"
END = "<end>"
DEFAULT_SIZES: tuple[int, ...] = (4, 5)


def parse_sizes(sizes: str | Iterable[int]) -> tuple[int, ...]:
    """N-gram sizes from ``"4,5"`` or an iterable: positive, distinct, sorted."""
    try:
        values = [int(s) for s in (sizes.split(",") if isinstance(sizes, str) else sizes)
                  if str(s).strip()]
    except ValueError as exc:
        raise ConfigError(f"n-gram sizes must be integers like 4,5, got {sizes!r}") from exc
    if not values or min(values) < 1:
        raise ConfigError(f"n-gram sizes must be positive integers, got {sizes!r}")
    return tuple(sorted(set(values)))


def word_ngrams(text: str, sizes: Sequence[int] = DEFAULT_SIZES) -> set[tuple[str, ...]]:
    """The gram set of one text, by XCoder's definition (see the module docstring).

    Straightforward Python; used on the benchmark side, for reporting shared grams, and as the
    reference the fast index is tested against.
    """
    tokens = text.split()
    grams: set[tuple[str, ...]] = set()
    for n in sizes:
        padded = [START] * (n - 1) + tokens + [END] * (n - 1)
        grams.update(tuple(padded[i:i + n]) for i in range(len(padded) - n + 1))
    return grams


@dataclass(frozen=True)
class Overlaps:
    """Every (training sample, benchmark item) pair that shares at least one gram.

    Attributes:
        train: index of the training sample in the batch passed to :meth:`NgramIndex.overlaps`.
        test: index of the benchmark item.
        shared: number of distinct grams the two share, ``|G_test ∩ G_train|``.
        score: ``shared / |G_test|``, XCoder's S(test, train).
    """

    train: np.ndarray
    test: np.ndarray
    shared: np.ndarray
    score: np.ndarray

    def __len__(self) -> int:
        return int(self.train.shape[0])


class NgramIndex:
    """An index of a benchmark's n-grams that finds overlapping training samples in bulk.

    Args:
        test_texts: one text per benchmark item.
        sizes: n-gram sizes (XCoder: 4 and 5).

    Attributes:
        test_sizes: ``|G_test|`` per item (never 0 for n ≥ 2: padding grams always exist).
    """

    def __init__(self, test_texts: Sequence[str], sizes: Sequence[int] = DEFAULT_SIZES) -> None:
        self.sizes = parse_sizes(sizes)
        self.n_tests = len(test_texts)
        self.max_n = max(self.sizes)
        # Token ids: 0 is "not in any benchmark text". The pad symbols are ordinary tokens, so a
        # literal "<start>" in a text equals the pad, exactly as with nltk.
        self.vocab: dict[str, int] = {START: 1, END: 2}
        gram_ids: dict[tuple[int, ...], int] = {}
        postings: list[list[int]] = []
        sizes_per_test = np.zeros(self.n_tests, dtype=np.int64)
        for t, text in enumerate(test_texts):
            grams = word_ngrams(text, self.sizes)
            sizes_per_test[t] = len(grams)
            for gram in grams:
                key = tuple(self.vocab.setdefault(tok, len(self.vocab) + 1) for tok in gram)
                gid = gram_ids.setdefault(key, len(gram_ids))
                if gid == len(postings):
                    postings.append([])
                postings[gid].append(t)
        self.test_sizes = sizes_per_test
        self.n_grams = len(gram_ids)
        self._width = len(self.vocab) + 1
        # CSR inverted index: grams -> benchmark items containing them.
        counts = np.fromiter((len(p) for p in postings), dtype=np.int64, count=len(postings))
        self._post_ptr = np.zeros(len(postings) + 1, dtype=np.int64)
        np.cumsum(counts, out=self._post_ptr[1:])
        self._post = np.fromiter(chain.from_iterable(postings), dtype=np.int64,
                                 count=int(self._post_ptr[-1]))
        self._build_trie(gram_ids)

    def _build_trie(self, gram_ids: dict[tuple[int, ...], int]) -> None:
        """Prefix trie of the grams: level L maps (node at L-1, token) to a node at L.

        Level 1 is a direct array token -> node; deeper levels are sorted integer keys
        ``parent * width + token`` whose position is the node id, so a lookup is a
        ``searchsorted``. ``self._gram_at[L][node]`` is the gram id of a complete gram of size L
        ending at that node, or -1.
        """
        by_size: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for n in self.sizes:
            of_size = [(k, g) for k, g in gram_ids.items() if len(k) == n]
            toks = np.array([k for k, _ in of_size], dtype=np.int64).reshape(len(of_size), n)
            gids = np.array([g for _, g in of_size], dtype=np.int64)
            by_size[n] = (toks, gids)
        first_tokens = np.unique(np.concatenate([t[:, 0] for t, _ in by_size.values()]))
        self._first = np.full(self._width, -1, dtype=np.int64)
        self._first[first_tokens] = np.arange(first_tokens.size)
        self._keys: dict[int, np.ndarray] = {}
        self._gram_at: dict[int, np.ndarray] = {}
        nodes = {n: self._first[toks[:, 0]] for n, (toks, _) in by_size.items()}
        level_size = {1: first_tokens.size}
        for level in range(1, self.max_n + 1):
            if level > 1:
                codes = {n: nodes[n] * self._width + by_size[n][0][:, level - 1]
                         for n in by_size if n >= level}
                keys = np.unique(np.concatenate(list(codes.values())))
                self._keys[level] = keys
                level_size[level] = keys.size
                for n, c in codes.items():
                    nodes[n] = np.searchsorted(keys, c)
            if level in by_size:
                gram_at = np.full(level_size[level], -1, dtype=np.int64)
                gram_at[nodes[level]] = by_size[level][1]
                self._gram_at[level] = gram_at

    def overlaps(self, train_texts: Sequence[str]) -> Overlaps:
        """All (train, test) pairs of this batch that share a gram, with counts and scores."""
        n_train = len(train_texts)
        # Splitting the space-joined batch gives every text's tokens in order; the per-text
        # lists are only counted and freed at once (keeping 20k lists alive costs more in
        # garbage-collector passes than the second split does).
        lens = np.fromiter(map(len, map(str.split, train_texts)), dtype=np.int64,
                           count=n_train)
        flat = " ".join(train_texts).split()
        ids = np.fromiter(map(self.vocab.get, flat, repeat(0)), dtype=np.int64, count=len(flat))
        # All samples back to back, each padded with max_n - 1 <start>/<end>; a window of size
        # n <= max_n therefore never mixes two samples' tokens, and windows the per-size padding
        # would not produce are rejected by the bounds check below.
        pad = self.max_n - 1
        padded_lens = lens + 2 * pad
        starts = np.zeros(n_train, dtype=np.int64)
        np.cumsum(padded_lens[:-1], out=starts[1:])
        sample_of = np.repeat(np.arange(n_train, dtype=np.int64), padded_lens)
        local = np.arange(sample_of.size, dtype=np.int64) - starts[sample_of]
        arr = np.where(local < pad, self.vocab[START], self.vocab[END])
        arr[(local >= pad) & (local < pad + lens[sample_of])] = ids

        total = arr.size
        node = self._first[arr]
        pos = np.flatnonzero(node >= 0)
        node = node[pos]
        found_pos: list[np.ndarray] = []
        found_gram: list[np.ndarray] = []
        found_n: list[int] = []
        for level in range(1, self.max_n + 1):
            if level > 1:
                ok = pos + level - 1 < total
                pos, node = pos[ok], node[ok]
                keys = self._keys[level]
                code = node * self._width + arr[pos + level - 1]
                j = np.searchsorted(keys, code)
                hit = j < keys.size
                hit[hit] = keys[j[hit]] == code[hit]
                pos, node = pos[hit], j[hit]
            if level in self._gram_at:
                gram = self._gram_at[level][node]
                m = gram >= 0
                found_pos.append(pos[m])
                found_gram.append(gram[m])
                found_n.append(level)
            if pos.size == 0:
                break
        return self._pairs(found_pos, found_gram, found_n, sample_of, local, lens, pad)

    def _pairs(self, found_pos: list[np.ndarray], found_gram: list[np.ndarray],
               found_n: list[int], sample_of: np.ndarray, local: np.ndarray, lens: np.ndarray,
               pad: int) -> Overlaps:
        samples, grams = [], []
        for pos, gram, n in zip(found_pos, found_gram, found_n, strict=True):
            s = sample_of[pos]
            loc = local[pos]
            # Valid windows of size n lie inside the sample's own n-1 padding on each side.
            valid = (loc >= pad - (n - 1)) & (loc + n <= pad + lens[s] + (n - 1))
            samples.append(s[valid])
            grams.append(gram[valid])
        empty = np.zeros(0, dtype=np.int64)
        if not samples or sum(s.size for s in samples) == 0:
            return Overlaps(empty, empty, empty, np.zeros(0, dtype=np.float64))
        # Distinct (sample, gram) pairs: a gram repeated in a sample counts once (sets).
        sg = np.unique(np.concatenate(samples) * self.n_grams + np.concatenate(grams))
        s, g = np.divmod(sg, self.n_grams)
        lo, hi = self._post_ptr[g], self._post_ptr[g + 1]
        fan = hi - lo
        rows = int(fan.sum())
        offsets = np.repeat(lo - np.cumsum(fan) + fan, fan) + np.arange(rows, dtype=np.int64)
        tests = self._post[offsets]
        pair, shared = np.unique(np.repeat(s, fan) * self.n_tests + tests, return_counts=True)
        train, test = np.divmod(pair, self.n_tests)
        shared = shared.astype(np.int64)
        return Overlaps(train, test, shared, shared / self.test_sizes[test])
