"""Filters: stages that score, select, deduplicate and decontaminate records.

Decontamination and leakage measurement live here:

- ``benchmarks``: the benchmark registry (HumanEval built in; others from jsonl/parquet files or,
  when online, the Hugging Face hub).
- ``ngrams``: XCoder's padded word n-grams and the fast inverted index that finds every
  (training sample, benchmark item) pair sharing one, in a single pass over the training data.
- ``decontam``: the exact-substring (Aho–Corasick) and n-gram decontamination filter stages.
- ``tli``: XCoder's Test Leakage Indicator (TLI-mean@k, TLI-max@k, top leaking pairs) and its
  JSON/Markdown report.
"""
