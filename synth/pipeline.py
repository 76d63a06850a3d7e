"""The Stage interface and the runner that pulls records through a chain of stages.

A stage reads an iterator of records and yields records. Records a stage drops are not yielded:
the stage calls :meth:`Stage.reject` with a reason code, and the run store keeps them (they end
up in ``rejects.jsonl``). Counting in/out/rejected per stage happens here, once, so stages only
decide (the shape of datatrove's filters).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import json
import logging
import sys
import time
from abc import ABC, abstractmethod
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synth.llm.cost import scoped
from synth.records import Record
from synth.store import RunStore, write_json

log = logging.getLogger("synth")


@dataclass
class StageStats:
    """What one stage saw: records in, records out, drops per reason, and other events.

    ``counts`` holds events that drop nothing, e.g. ``nan:complexity:no_logprobs`` for a score
    that could not be computed, or ``method:complexity:logprobs``.
    """

    records_in: int = 0
    records_out: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    counts: Counter[str] = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"in": self.records_in, "out": self.records_out,
                             "rejected": dict(sorted(self.rejected.items()))}
        if self.counts:
            d["counts"] = dict(sorted(self.counts.items()))
        return d


@dataclass
class Stats:
    """Counters of one invocation; written to ``stats.json``."""

    stages: dict[str, StageStats] = field(default_factory=lambda: defaultdict(StageStats))
    llm: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)
    # Stage-specific summaries written under their own key: a JSON-able value, or a callable
    # returning one (so a stage can keep live counters and serialise them when asked).
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            **{k: v() if callable(v) else v for k, v in self.extra.items()},
            "stages": {name: s.to_dict() for name, s in self.stages.items()},
            "llm": dict(sorted(self.llm.items())),
            "wall_time_s": round(time.monotonic() - self.started, 3),
        }


class Progress:
    """Reports progress; the base class is silent (used by tests and libraries)."""

    def start(self, total: int | None) -> None:
        """Called once before the first record."""

    def advance(self, stats: Stats) -> None:
        """Called after each record leaves the last stage or is rejected."""

    def close(self) -> None:
        """Called once at the end, also after an interruption."""


def progress_fields(stats: Stats, done: int, total: int | None,
                    elapsed: float) -> dict[str, Any]:
    """What a progress line shows: done/total, rates, tokens, cost, ETA, window, rejects."""
    elapsed = max(elapsed, 1e-9)
    admission = stats.extra.get("admission")
    adm = admission() if callable(admission) else {}
    rejects: Counter[str] = Counter()
    for st in stats.stages.values():
        rejects.update(st.rejected)
    eta = None
    if total and done:
        eta = round(elapsed / done * max(total - done, 0), 1)
    meter = adm.get("cost", {})
    return {"done": done, "total": total, "req_s": round(stats.llm["requests"] / elapsed, 3),
            "tokens_in": stats.llm["tokens_in"], "tokens_out": stats.llm["tokens_out"],
            "cache_hits": stats.llm["cache_hits"], "retries": stats.llm["retries"],
            "cost_usd": meter.get("usd"), "eta_s": eta, "window": adm.get("window"),
            "window_max": adm.get("window_max"), "rejects": dict(rejects.most_common()),
            "elapsed_s": round(elapsed, 1)}


class LogProgress(Progress):
    """Log lines at most every ``every`` seconds, for runs without a terminal.

    ``fmt`` ``json`` writes one JSON object per line on stderr (for unattended jobs).
    """

    def __init__(self, every: float = 10.0, fmt: str = "text") -> None:
        self.every = every
        self.fmt = fmt
        self.total: int | None = None
        self.done = 0
        self._last = 0.0
        self._t0 = time.monotonic()

    def start(self, total: int | None) -> None:
        self.total = total
        self._t0 = time.monotonic()

    def advance(self, stats: Stats) -> None:
        self.done += 1
        now = time.monotonic()
        if now - self._last >= self.every or self.done == self.total:
            self._last = now
            f = progress_fields(stats, self.done, self.total, now - self._t0)
            if self.fmt == "json":
                sys.stderr.write(json.dumps({"event": "progress", **f}) + "\n")
                sys.stderr.flush()
                return
            log.info("progress %d/%s records, %.2f req/s, tokens in=%d out=%d, cache hits=%d, "
                     "cost %s, window %s/%s, ETA %s s, rejects %s",
                     f["done"], f["total"] if f["total"] is not None else "?", f["req_s"],
                     f["tokens_in"], f["tokens_out"], f["cache_hits"],
                     "?" if f["cost_usd"] is None else f"${f['cost_usd']:.4f}", f["window"],
                     f["window_max"], f["eta_s"], f["rejects"] or "-")


class BarProgress(Progress):
    """A rich progress bar: done/total, requests per second, tokens."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress

        self._bar = RichProgress(
            TextColumn("[bold]generate"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
            transient=False,
        )
        self._task: Any = None
        self._done = 0
        self._t0 = time.monotonic()

    def start(self, total: int | None) -> None:
        self._t0 = time.monotonic()
        self._bar.start()
        self._task = self._bar.add_task("generate", total=total, info="")

    def advance(self, stats: Stats) -> None:
        self._done += 1
        f = progress_fields(stats, self._done, None, time.monotonic() - self._t0)
        cost = "" if f["cost_usd"] is None else f"  ${f['cost_usd']:.4f}"
        window = "" if f["window"] is None else f"  window {f['window']}/{f['window_max']}"
        rejects = sum(f["rejects"].values())
        info = (f"{f['req_s']:.2f} req/s  tok {f['tokens_in']}→{f['tokens_out']}  "
                f"cached {f['cache_hits']}{cost}{window}  rejected {rejects}")
        self._bar.update(self._task, advance=1, info=info)

    def close(self) -> None:
        self._bar.stop()


@contextlib.contextmanager
def step_progress(label: str) -> Iterator[tuple[Callable[[int, int], None],
                                                Callable[[int, float], None]]]:
    """``(on_embed(done, total), on_pick(i, radius))`` callbacks for steps that are not record
    streams (embedding, coreset picks): a rich bar on a terminal, log lines otherwise."""
    bar: Any = None
    if sys.stderr.isatty():
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        bar = RichProgress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(),
                           TimeElapsedColumn(), TextColumn("{task.fields[info]}"),
                           transient=True)
    tasks: dict[str, Any] = {}

    def on_embed(done: int, total: int) -> None:
        if bar is None:
            log.info("embedded %d/%d seeds", done, total)
            return
        if "embed" not in tasks:
            tasks["embed"] = bar.add_task("embed", total=total, info="embedding")
        bar.update(tasks["embed"], completed=done)

    def on_pick(i: int, radius: float) -> None:
        if bar is None:
            return
        if "pick" not in tasks:
            tasks["pick"] = bar.add_task("pick", total=None, info="")
        bar.update(tasks["pick"], completed=i, info=f"coreset radius {radius:.4f}")

    if bar is not None:
        bar.start()
    try:
        yield on_embed, on_pick
    finally:
        if bar is not None:
            bar.stop()


def default_progress(fmt: str = "text") -> Progress:
    """A bar on a terminal, log lines otherwise (JSON lines with ``fmt="json"``)."""
    if fmt == "json":
        return LogProgress(fmt="json")
    return BarProgress() if sys.stderr.isatty() else LogProgress()


class RunContext:
    """What stages share during one invocation: the store, the counters and one event loop.

    All async stages run on the same loop so HTTP connection pools are reused across stages.
    """

    def __init__(self, store: RunStore, progress: Progress | None = None, seed: int = 0) -> None:
        self.store = store
        self.stats = Stats()
        self.progress = progress or Progress()
        self.seed = seed
        self._runner: asyncio.Runner | None = None
        # Set by the job's signal handler (Ctrl-C, SIGTERM); see check_interrupt.
        self.interrupt: type[KeyboardInterrupt] | None = None

    def check_interrupt(self) -> None:
        """Raise the interruption a signal asked for, in case Python swallowed it where it
        first landed (a weakref callback or ``__del__`` prints it and goes on)."""
        if self.interrupt is not None:
            raise self.interrupt

    @property
    def loop(self) -> asyncio.Runner:
        if self._runner is None:
            self._runner = asyncio.Runner()
        return self._runner

    def close(self) -> None:
        if self._runner is not None:
            self._runner.close()
            self._runner = None


class Stage(ABC):
    """One step of the pipeline: ``run(records) -> records``.

    Subclasses set ``name`` and implement :meth:`run`; dropped records go through
    :meth:`reject`. A stage that needs every record before yielding any (a coreset, a diversity
    selection) says so by setting ``needs_all = True``.
    """

    name: str = "stage"
    needs_all: bool = False
    # Fields this stage needs on its input records and fields it adds (Record attributes,
    # ``scores.NAME``, meta keys); the Job checks a chain with them before it runs.
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()

    def __init__(self) -> None:
        self._ctx: RunContext | None = None

    def bind(self, ctx: RunContext) -> None:
        self._ctx = ctx

    @property
    def ctx(self) -> RunContext:
        if self._ctx is None:
            raise RuntimeError(f"stage {self.name} used before bind()")
        return self._ctx

    @abstractmethod
    def run(self, records: Iterator[Record]) -> Iterator[Record]:
        """Read records, yield the ones that go on."""

    def reject(self, record: Record, reason: str) -> None:
        """Drop ``record`` with ``reason``: counted, stored, written to rejects.jsonl."""
        record.meta["rejected"] = {"stage": self.name, "reason": reason}
        self.ctx.stats.stages[self.name].rejected[reason] += 1
        self.ctx.store.put_result(record, "rejected", self.name, reason)
        self.ctx.progress.advance(self.ctx.stats)


class Filter(Stage):
    """A stage that only decides: :meth:`keep` returns a bool or ``(bool, reason)``.

    A filter that decides many records faster together (vectorized matching, one model call per
    batch) sets ``batch_size`` > 1 and overrides :meth:`keep_batch`; records still leave in input
    order.
    """

    default_reason: str = "filtered"
    batch_size: int = 1

    @abstractmethod
    def keep(self, record: Record) -> bool | tuple[bool, str]:
        """Whether ``record`` goes on, optionally with the reason when it does not."""

    def keep_batch(self, records: list[Record]) -> list[bool | tuple[bool, str]]:
        """:meth:`keep` for each of ``records``; override to decide them together."""
        return [self.keep(record) for record in records]

    def run(self, records: Iterator[Record]) -> Iterator[Record]:
        batch: list[Record] = []
        for record in records:
            batch.append(record)
            if len(batch) >= self.batch_size:
                yield from self._decide(batch)
                batch = []
        if batch:
            yield from self._decide(batch)

    def _decide(self, batch: list[Record]) -> Iterator[Record]:
        verdicts = self.keep_batch(batch) if len(batch) > 1 else [self.keep(batch[0])]
        for record, verdict in zip(batch, verdicts, strict=True):
            ok, reason = verdict if isinstance(verdict, tuple) else (verdict, self.default_reason)
            if ok:
                yield record
            else:
                self.reject(record, reason)


class AsyncStage(Stage):
    """A stage whose work per record is a coroutine (an LLM call, a sandboxed run).

    Keeps up to ``window`` records in flight and yields each as soon as it completes: one slow
    request never holds back the others (no lock-step batches). Results come out in completion
    order; the store orders outputs by input position.
    """

    def __init__(self, window: int) -> None:
        super().__init__()
        if window < 1:
            raise ValueError("window must be >= 1")
        self.window = window

    @abstractmethod
    async def process(self, record: Record) -> Record | None:
        """Work on one record; return it to go on, or call :meth:`reject` and return None."""

    async def _scoped(self, record: Record) -> Record | None:
        scoped(record.id, self.name, record.task)  # requests are booked to this record, stage
        return await self.process(record)

    def run(self, records: Iterator[Record]) -> Iterator[Record]:
        runner = self.ctx.loop
        loop = runner.get_loop()
        pending: set[asyncio.Task[Record | None]] = set()
        done: list[asyncio.Task[Record | None]] = []
        # Finished tasks report themselves (one callback each), so a wake costs what finished,
        # not a pass over every task in flight as asyncio.wait does.
        finished: collections.deque[asyncio.Task[Record | None]] = collections.deque()
        wake = asyncio.Event()

        def on_done(task: asyncio.Task[Record | None]) -> None:
            finished.append(task)
            wake.set()

        source = iter(records)
        exhausted = False
        try:
            while True:
                while not exhausted and len(pending) < self.window:
                    try:
                        record = next(source)
                    except StopIteration:
                        exhausted = True
                        break
                    task = loop.create_task(self._scoped(record))
                    task.add_done_callback(on_done)
                    pending.add(task)
                if not pending:
                    return
                if not finished:
                    # What finished since the last wait is committed while waiting again.
                    self.ctx.store.flush_soon(loop)
                    # (the loop itself, not runner.run: that looks up the SIGINT handler and
                    # wraps the wait in a task of its own every time, ~500 waits per 1,000
                    # records; the job's own handler deals with Ctrl-C)
                    loop.run_until_complete(wake.wait())
                done = list(finished)
                finished.clear()
                wake.clear()  # (callbacks run only inside the loop: none can be missed here)
                pending.difference_update(done)
                for i, task in enumerate(done):
                    if task.exception() is not None:
                        # the first failure stops the run: the others that finished with it
                        # are the same story, retrieved here so asyncio does not log them
                        for other in done[i + 1:]:
                            other.exception()
                    result = task.result()
                    if result is not None:
                        yield result
                done = []
                self.ctx.check_interrupt()
        finally:
            for task in done:  # siblings that failed with the error that stops the run
                if not task.cancelled():
                    task.exception()
            for task in pending:
                task.cancel()
            if pending and not loop.is_closed():
                runner.run(_gather_quietly(pending))


async def _gather_quietly(tasks: Iterable[asyncio.Task[Any]]) -> None:
    await asyncio.gather(*tasks, return_exceptions=True)


def _counted(records: Iterable[Record], bump: Callable[[], None]) -> Iterator[Record]:
    for record in records:
        bump()
        yield record


def run_stages(source: Iterable[Record], stages: list[Stage], ctx: RunContext,
               total: int | None = None, put: Callable[[Record], None] | None = None) -> int:
    """Pull every record through ``stages`` and hand each survivor to ``put``.

    ``put`` defaults to storing the record as kept in the run store. Returns the number of
    records kept. Interruptions (Ctrl-C) propagate after everything that finished has been
    stored; nothing already produced is lost. Use :class:`synth.job.Job` to run a chain: it
    checks it first and writes the outputs.
    """
    stream: Iterable[Record] = source
    for stage in stages:
        stage.bind(ctx)
        st = ctx.stats.stages[stage.name]
        stream = _counted(stream, functools.partial(_inc_in, st))
        stream = _counted(stage.run(iter(stream)), functools.partial(_inc_out, st))
    kept = 0
    ctx.progress.start(total)
    try:
        for record in stream:
            if put is None:
                ctx.store.put_result(record, "kept")
            else:
                put(record)
            kept += 1
            ctx.progress.advance(ctx.stats)
            ctx.check_interrupt()
    finally:
        ctx.progress.close()
        ctx.store.flush()
    return kept


def write_outputs(ctx: RunContext, config: dict[str, Any], title: str, interrupted: bool = False,
                  card_sections: list[str] | None = None,
                  description: str | None = None, out_dir: Path | None = None,
                  output: Any = None) -> dict[str, Any]:
    """Write the outputs from the store: dataset, rejects, stats, config, card and plots.

    They go to ``out_dir`` (default: the run directory). ``output`` (a
    :class:`synth.io.formats.OutputConfig`) says the row and file format. The card and its
    plots are built last, from the output directory alone (:func:`synth.report.build_report`,
    what ``synth report`` reruns). Called at the end of every run, also after Ctrl-C or an
    error, so everything that finished is on disk. Returns the stats written to ``stats.json``.
    """
    from synth.io.dataset import write_dataset, write_rejects
    from synth.io.formats import OutputConfig
    from synth.llm.client import RETRYABLE_REASONS
    from synth.report import CARD_FILE, build_report, card_facts

    output = output or OutputConfig()
    store = ctx.store
    stats = ctx.stats.to_dict()
    stats["kept"] = store.count_results("kept")
    # Records whose request failed for reasons outside it (connection, 5xx, 429, a garbled
    # body) are not final rejects: a rerun sends them again. Counted apart so that the exit
    # code and the last line can say the run is incomplete.
    left = store.count_results("rejected", reasons=RETRYABLE_REASONS)
    stats["rejected"] = store.count_results("rejected") - left
    stats["left_to_retry"] = left
    stats["interrupted"] = interrupted
    out = out_dir or store.run_dir
    config = config | {"output": output.as_config()}
    write_json(out / "config.json", config)
    write_json(out / CARD_FILE, card_facts(config, title, description, card_sections))
    write_dataset((rec for _, _, rec in store.iter_results("kept")), out / "dataset",
                  None, store.score_names(), output=output)
    write_rejects(store, out / "rejects.jsonl")
    write_json(out / "stats.json", stats)
    build_report(out)
    return stats


def _inc_in(st: StageStats) -> None:
    st.records_in += 1


def _inc_out(st: StageStats) -> None:
    st.records_out += 1
