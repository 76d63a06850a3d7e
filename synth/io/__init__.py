"""Every reader and writer of synth's files, and the row schema they share.

- :mod:`synth.io.schema`: every dataset column, declared once; ``to_row``/``from_row``.
- :mod:`synth.io.rows`: the one dataset reader (jsonl, json, parquet, arrow, directories).
- :mod:`synth.io.dataset`: the one dataset writer (parquet + jsonl + card) and rejects.jsonl.
- :mod:`synth.io.card`: the dataset card.
- :mod:`synth.io.seeds`: the seeds file (seeds.jsonl, coreset.jsonl).
- :mod:`synth.io.corpus`: code from Hugging Face datasets and local data files, as source files.
"""

from __future__ import annotations

from synth.io.rows import iter_rows, read_records, row_to_record
from synth.io.schema import COLUMNS, PROVENANCE, Column
from synth.io.seeds import read_seeds, write_seeds

__all__ = ["COLUMNS", "PROVENANCE", "Column", "iter_rows", "read_records", "read_seeds",
           "row_to_record", "write_seeds"]
