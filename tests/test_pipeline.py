"""AsyncStage: the window of records in flight, completion order, and the first failure."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

from synth.pipeline import AsyncStage, RunContext, run_stages
from synth.records import Record
from synth.store import RunStore


class Sleepy(AsyncStage):
    """Each record sleeps a little (later records less), some are dropped, one may fail."""

    name = "sleepy"

    def __init__(self, window: int, fail: int | None = None) -> None:
        super().__init__(window)
        self.fail = fail
        self.in_flight = self.peak = 0

    async def process(self, record: Record) -> Record | None:
        i = int(record.meta["index"])
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(0.001 * (7 - i % 7))
            if i == self.fail:
                raise ValueError(f"record {i} broke")
            if i % 5 == 0:
                self.reject(record, "every_fifth")
                return None
            return record
        finally:
            self.in_flight -= 1


def records(n: int) -> list[Record]:
    return [Record(id=f"r{i}", meta={"index": i}) for i in range(n)]


def test_every_record_once_within_the_window_in_completion_order(store: RunStore) -> None:
    ctx = RunContext(store)
    stage = Sleepy(window=8)
    kept: list[str] = []
    try:
        assert run_stages(iter(records(60)), [stage], ctx, 60, put=lambda r: kept.append(r.id)) \
            == 48
    finally:
        ctx.close()
    assert sorted(kept) == sorted(f"r{i}" for i in range(60) if i % 5)
    assert kept != sorted(kept, key=lambda r: int(r[1:]))  # completion order, not input order
    assert stage.peak == 8
    assert store.count_results("rejected") == 12  # committed by the pipeline's last flush


def test_the_first_failure_stops_the_run_and_nothing_is_left_unretrieved(
        store: RunStore, caplog: pytest.LogCaptureFixture) -> None:
    ctx = RunContext(store)
    stage = Sleepy(window=8, fail=13)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        with pytest.raises(ValueError, match="record 13 broke"):
            run_stages(iter(records(60)), [stage], ctx, 60, put=lambda r: None)
        ctx.close()
        gc.collect()
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]
    assert stage.in_flight == 0  # the others were cancelled, none left running
