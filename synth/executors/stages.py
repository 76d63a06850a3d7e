"""Stages that fan their work out through an executor.

:class:`ShardedFilter` runs any :class:`~synth.pipeline.Filter` (decontamination, heuristic
gates) on record shards through :meth:`Executor.map_batches`: the filter is shipped to the
workers, each decides its shard with ``keep_batch``, and the verdicts come back in input order.
Counting, rejects and the store stay in the driver's stage, so stats and outputs are the local
ones.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

from synth.executors import Executor
from synth.pipeline import Filter
from synth.records import Record

Verdict = tuple[bool, str]


def _decide(inner: Filter, records: list[Record]) -> list[tuple[Verdict, Record]]:
    """On a worker: the filter's verdicts for one shard, with the records it annotated."""
    verdicts = inner.keep_batch(records) if len(records) > 1 else [inner.keep(records[0])]
    out = []
    for record, verdict in zip(records, verdicts, strict=True):
        ok, reason = verdict if isinstance(verdict, tuple) else (verdict, inner.default_reason)
        out.append(((bool(ok), reason), record))
    return out


class ShardedFilter(Filter):
    """``inner`` decided on shards of ``shard`` records by ``executor``; same name, same counts.

    ``keep_batch`` of the inner filter is called on whole shards, so a vectorised filter keeps
    its speed-up; records a filter annotates (``meta['decontam']``) come back annotated.
    """

    def __init__(self, inner: Filter, executor: Executor, shard: int = 512) -> None:
        super().__init__()
        self.inner = inner
        self.name = inner.name
        self.reads, self.writes = inner.reads, inner.writes  # the Job checks the chain on these
        self.default_reason = inner.default_reason
        self.executor = executor
        self.shard = max(shard, inner.batch_size)

    def keep(self, record: Record) -> bool | tuple[bool, str]:
        return self.inner.keep(record)

    def run(self, records: Iterator[Record]) -> Iterator[Record]:
        decided = self.executor.map_batches(functools.partial(_decide, self.inner), records,
                                            batch_size=self.shard)
        for (ok, reason), record in decided:
            if ok:
                yield record
            else:
                self.reject(record, reason)
