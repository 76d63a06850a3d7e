"""XCoder's Test Leakage Indicator (TLI): how much of a benchmark a training set already contains.

Definition (Wang et al. 2024, "How Do Your Code LLMs Perform?", ``compute_TLI.py``): for every
benchmark item, S(test, train) = |G_test ∩ G_train| / |G_test| over XCoder's padded word 4- and
5-grams (:mod:`synth.filters.ngrams`) is computed against every training sample; the item's
leakage is the mean of its top-k similarities (k = 1 by default); TLI-mean@k is the mean of the
items' leakages and TLI-max@k the largest. By default the training sample's user side
(instruction, plus input; the user turns of chat data) is compared with the benchmark prompt.

Ours gives the same numbers as XCoder's script but streams the training data once through
:class:`~synth.filters.ngrams.NgramIndex` instead of intersecting every pair of sets. Ties
between equally similar training samples are reported as the first one in input order.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from synth.errors import ConfigError, InputError
from synth.filters.benchmarks import Benchmark
from synth.filters.fields import USER_FIELDS, batched, check_record_fields, record_text
from synth.filters.ngrams import DEFAULT_SIZES, NgramIndex, parse_sizes, word_ngrams
from synth.records import Record


@dataclass
class _Best:
    """The current top-k (score, train index) candidates of every benchmark item."""

    k: int
    test: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    train: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    score: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float64))

    def merge(self, test: np.ndarray, train: np.ndarray, score: np.ndarray) -> None:
        test = np.concatenate([self.test, test])
        train = np.concatenate([self.train, train])
        score = np.concatenate([self.score, score])
        order = np.lexsort((train, -score, test))
        test, train, score = test[order], train[order], score[order]
        group_start = np.flatnonzero(np.r_[True, test[1:] != test[:-1]])
        rank = np.arange(test.size) - np.repeat(group_start, np.diff(np.r_[group_start,
                                                                            test.size]))
        keep = rank < self.k
        self.test, self.train, self.score = test[keep], train[keep], score[keep]


def compute_tli(records: Iterable[Record], bench: Benchmark, *,
                test_fields: Sequence[str] | None = None,
                train_fields: Sequence[str] = USER_FIELDS, k: int = 1,
                sizes: Sequence[int] = DEFAULT_SIZES, top_pairs: int = 10, max_shown: int = 20,
                batch_size: int = 20_000, train_source: str = "") -> dict[str, Any]:
    """XCoder's TLI of ``records`` against ``bench``, in one pass over the records.

    Args:
        records: the training data (read with :func:`synth.io.rows.read_records`).
        bench: the benchmark (test side).
        test_fields: benchmark fields compared (default: the benchmark's prompt).
        train_fields: record fields compared (default: the user side, instruction + input).
        k: top-k similarities averaged per benchmark item (XCoder's ``--top``).
        sizes: n-gram sizes (XCoder: 4 and 5).
        top_pairs: how many of the most similar (test, train) pairs the report lists.
        max_shown: shared n-grams listed per pair.
        batch_size: training samples matched at once (memory vs. per-batch overhead).
        train_source: shown in the report.

    Returns:
        The report: ``tli_mean``/``tli_max`` (fractions in [0, 1]), ``per_test`` (each item's
        leakage and its top-k training samples), ``top_pairs`` with shared n-grams, counts,
        parameters and wall time. :func:`tli_markdown` renders it.
    """
    if k < 1:
        raise ConfigError(f"--k must be >= 1, got {k}")
    sizes = parse_sizes(sizes)
    test_fields = tuple(test_fields or bench.prompt_fields)
    train_fields = tuple(train_fields)
    t0 = time.perf_counter()
    test_texts = bench.texts(test_fields)
    index = NgramIndex(test_texts, sizes)
    best = _Best(k)
    kept: dict[int, tuple[str, str]] = {}  # train index -> (record id, text) of candidates
    n_train = 0
    for batch in batched(records, batch_size):
        if n_train == 0:
            check_record_fields(batch[0], train_fields)
        texts = [record_text(r, train_fields) for r in batch]
        ov = index.overlaps(texts)
        best.merge(ov.test, ov.train + n_train, ov.score)
        for i in np.unique(best.train[best.train >= n_train]).tolist():
            kept[i] = (batch[i - n_train].id, texts[i - n_train])
        kept = {i: kept[i] for i in np.unique(best.train).tolist()}
        n_train += len(batch)
    if n_train == 0:
        raise InputError("the training data has no samples")

    depth = min(k, n_train)  # XCoder's heap holds min(k, #train) entries, zeros included
    per_test = []
    leakage = np.full(index.n_tests, np.nan)
    for t, item in enumerate(bench.items):
        sel = best.test == t
        top_scores = best.score[sel].tolist()
        top = [{"train_id": kept[i][0], "train_index": i, "score": s}
               for i, s in zip(best.train[sel].tolist(), top_scores, strict=True)]
        if index.test_sizes[t] > 0:  # only an empty text with n = 1 has no grams
            leakage[t] = float(np.mean(top_scores + [0.0] * (depth - len(top_scores))))
        per_test.append({"test_id": item.id, "leakage": _num(leakage[t]), "top": top})
    valid = leakage[~np.isnan(leakage)]
    if valid.size == 0:
        raise InputError("no benchmark item has any n-gram to compare (empty texts?)")

    order = np.lexsort((best.train, best.test, -best.score))[:top_pairs]
    pairs = []
    for j in order.tolist():
        t, i, s = int(best.test[j]), int(best.train[j]), float(best.score[j])
        shared = sorted(word_ngrams(test_texts[t], sizes) & word_ngrams(kept[i][1], sizes))
        pairs.append({"test_id": bench.items[t].id, "train_id": kept[i][0], "train_index": i,
                      "score": s, "n_shared": len(shared),
                      "shared_ngrams": [" ".join(g) for g in shared[:max_shown]],
                      "test_text": test_texts[t], "train_text": kept[i][1]})
    return {
        "benchmark": bench.name, "benchmark_source": bench.source, "train": train_source,
        "n_train": n_train, "n_test": index.n_tests,
        "n_test_without_ngrams": int(np.isnan(leakage).sum()),
        "k": k, "ngram_sizes": list(sizes), "train_fields": list(train_fields),
        "test_fields": list(test_fields),
        "tli_mean": float(np.mean(valid)), "tli_max": float(np.max(valid)),
        "n_test_leaking": int((valid > 0).sum()),
        "top_pairs": pairs, "per_test": per_test,
        "seconds": round(time.perf_counter() - t0, 3),
    }


def _num(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def _cell(text: str, width: int = 80) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= width else text[:width - 1] + "…"


def tli_markdown(report: dict[str, Any], pairs: int = 10) -> str:
    """A Markdown section for a TLI report (for the terminal, a file or the dataset card).

    TLI values are shown ×100, as XCoder's paper reports them.
    """
    k = report["k"]
    lines = [
        f"### Test leakage (TLI) vs {report['benchmark']}",
        "",
        f"XCoder's Test Leakage Indicator over word {'/'.join(map(str, report['ngram_sizes']))}"
        f"-grams; training fields `{' + '.join(report['train_fields'])}` vs benchmark fields "
        f"`{' + '.join(report['test_fields'])}`. Values ×100.",
        "",
        f"| benchmark | items | training samples | TLI-mean@{k} | TLI-max@{k} | items with "
        "any overlap |",
        "|---|---:|---:|---:|---:|---:|",
        f"| {report['benchmark']} | {report['n_test']} | {report['n_train']} | "
        f"{100 * report['tli_mean']:.2f} | {100 * report['tli_max']:.2f} | "
        f"{report['n_test_leaking']} |",
    ]
    top = report["top_pairs"][:pairs]
    if top:
        lines += ["", "Most similar pairs:", "",
                  "| test id | train id (row) | S ×100 | shared n-grams | example shared n-grams |",
                  "|---|---|---:|---:|---|"]
        for p in top:
            shown = "; ".join(f"`{_cell(g, 40)}`" for g in p["shared_ngrams"][:3])
            lines.append(f"| {_cell(p['test_id'], 30)} | {_cell(p['train_id'], 24)} "
                         f"({p['train_index']}) | "
                         f"{100 * p['score']:.2f} | {p['n_shared']} | {shown} |")
    return "\n".join(lines) + "\n"
