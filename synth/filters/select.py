"""The selection stage: fuse scores, order score-first, keep diverse samples up to a budget.

Needs every record before it can yield any (``needs_all``). Reads ``scores`` and the texts;
writes ``scores["fused"]`` and ``meta["select_rank"]`` (0 = kept first) on kept records, and
rejects the others with ``too_similar`` (cosine similarity > τ to a kept sample) or
``over_budget`` (never reached because the budget was filled first).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import numpy as np

from synth.config import SelectConfig
from synth.embed import Embedder, EmbeddingCache, embed_texts
from synth.filters.diversity import normalize_rows, select_diverse
from synth.filters.fusion import fuse, record_scores, score_order
from synth.pipeline import Stage
from synth.records import Record

log = logging.getLogger("synth")


def resolve_keys(records: Sequence[Record], cfg: SelectConfig) -> tuple[str, str | None]:
    """The score names to fuse: the configured ones, else DEITA's when present, else offline."""
    present = set().union(*(r.scores for r in records)) if records else set()
    complexity = cfg.complexity_key or ("complexity" if "complexity" in present
                                        else "ast_complexity")
    if cfg.quality_key is not None:
        quality = cfg.quality_key or None
    else:
        quality = "quality" if "quality" in present else None
    return complexity, quality


def embed_text(record: Record, with_response: bool) -> str:
    text = record.instruction + ("\n" + record.input if record.input else "")
    return text + ("\n" + record.response if with_response else "")


class DiversitySelect(Stage):
    """DEITA's score-first Repr Filter with an exact, vectorised similarity check.

    Args:
        config: budget, τ, fusion and which scores to fuse.
        embedder: turns instruction (optionally + response) texts into vectors.
        cache: the run directory's embedding cache (None: embed everything every time).
    """

    name = "select"
    needs_all = True

    def __init__(self, config: SelectConfig, embedder: Embedder,
                 cache: EmbeddingCache | None = None) -> None:
        super().__init__()
        self.config = config
        # Explicit score keys must exist before selection runs; defaults are chosen from the
        # records (complexity if present, else ast_complexity).
        self.reads = tuple(f"scores.{k}" for k in (config.complexity_key, config.quality_key)
                           if k)
        self.writes = ("scores.fused", "select_rank")
        self.embedder = embedder
        self.cache = cache

    def run(self, records: Iterator[Record]) -> Iterator[Record]:
        recs = list(records)
        if not recs:
            return
        cfg = self.config
        c_key, q_key = resolve_keys(recs, cfg)
        fused = fuse(record_scores(recs, c_key),
                     record_scores(recs, q_key) if q_key else None, cfg.fusion, cfg.alpha)
        counts = self.ctx.stats.stages[self.name].counts
        counts["nan:fused"] += int(np.isnan(fused).sum())
        log.info("select: %d records, score %s%s (%s), tau %.3f, budget %s", len(recs), c_key,
                 f" x {q_key}" if q_key else "", cfg.fusion, cfg.tau, cfg.budget)
        order = score_order(fused)
        emb = normalize_rows(embed_texts([embed_text(r, cfg.embed_response) for r in recs],
                                         self.embedder, self.cache))
        chosen = select_diverse(emb, order, cfg.tau, cfg.budget, cfg.batch_size)
        rank = {int(i): k for k, i in enumerate(chosen)}
        # Everything up to the last kept candidate was considered; what follows never was.
        if cfg.budget is not None and len(chosen) >= cfg.budget and len(chosen):
            reached = int(np.flatnonzero(order == chosen[-1])[0])
        else:
            reached = len(order) - 1
        position = np.empty(len(order), dtype=np.int64)
        position[order] = np.arange(len(order))
        for i, record in enumerate(recs):
            record.scores["fused"] = float(fused[i])
            if i in rank:
                record.meta["select_rank"] = rank[i]
                yield record
            else:
                self.reject(record, "too_similar" if position[i] <= reached else "over_budget")
