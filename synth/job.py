"""The Job: source → stages → sink, and everything around a run that is written once.

A Job owns one run of one command: the run store (request cache + record states, locked for
this process), the :class:`~synth.pipeline.RunContext` (counters, the event loop), the endpoint
(embedded server or a URL, the model, a checked client), progress, Ctrl-C/SIGTERM, and writing
the outputs — also after an interruption, so everything that finished is on disk. Every command
(``generate``, ``score``/``select``/``filter``, ``decontam``, ``seeds extract``) and every step
of ``synth run`` is a Job with its own stages (:mod:`synth.jobs`).

::

    with Job(run_dir, "score", llm=llm_config) as job:
        client = job.client()                       # endpoint + model + check, once
        job.run(Source.dataset(path), [HeuristicScores(), DeitaScores(client, ...)])

Before the first record (and so before the first request) :meth:`Job.check` walks the chain:
every field a stage ``reads`` must be given by the source or written by an earlier stage, else
a :class:`~synth.errors.ConfigError` names the stage and the missing field.

Interruption: Ctrl-C and SIGTERM stop a run the same way (SIGTERM is turned into
:class:`KeyboardInterrupt` while :meth:`Job.run` runs): the sink writes what finished, then the
interruption propagates so the command line exits with 130 (143 for SIGTERM).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import itertools
import logging
import signal
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from synth.config import LLMConfig, SecretsConfig, as_dict
from synth.errors import ConfigError, Terminated
from synth.executors import Executor, current
from synth.filters.secrets import SecretsPolicy, attach, policy_for
from synth.pipeline import Progress, RunContext, Stage, run_stages, write_outputs
from synth.records import Record
from synth.store import RunStore

log = logging.getLogger("synth")

T = TypeVar("T")

# Fields every record has (Record attributes); scores are ``scores.NAME``, meta keys their name.
RECORD_FIELDS = frozenset({"id", "seed", "task", "lang", "instruction", "input", "response"})


def record_fields(record: Record) -> frozenset[str]:
    """The fields ``record`` carries: non-empty attributes, ``scores.NAME``, meta keys, extra
    columns (by name)."""
    names = {f for f in RECORD_FIELDS if getattr(record, f)}
    names |= {f"scores.{k}" for k in record.scores}
    names |= set(record.meta) | set(record.meta.get("extra") or {})
    return frozenset(names)


@dataclass
class Source:
    """Where a job's records come from.

    Attributes:
        records: the records, read lazily.
        fields: what every record carries (see :func:`record_fields`); None: look at the first
            record (a dataset's columns are what its rows hold).
        total: how many records, when known (progress and the plan).
        describe: what to write into config.json about the input (``{"input": path}``).
    """

    records: Iterable[Record]
    fields: frozenset[str] | None = None
    total: int | None = None
    describe: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def dataset(cls, path: Path, materialize: bool = False,
                secrets: SecretsPolicy | None = None) -> Source:
        """Rows of an instruction dataset (anything :func:`synth.io.read_records` reads).

        ``materialize`` reads every row now: needed when the job writes to the same directory
        it reads (RUN/dataset is replaced when the job finishes). ``secrets`` checks every row
        as it is read (redacted or left out; see :mod:`synth.filters.secrets`).
        """
        from synth.io.rows import read_records

        records: Iterable[Record] = read_records(path)
        if secrets is not None:
            records = secrets.rows(records)
        total = None
        if materialize:
            records = list(records)
            total = len(records)
        return cls(records, None, total, {"input": str(path)})


class Sink:
    """Where kept records go. The default keeps them in the run store and writes the dataset,
    rejects, stats and config from it at the end (:func:`synth.pipeline.write_outputs`)."""

    def put(self, job: Job, record: Record) -> None:
        job.store.put_result(record, "kept")

    def close(self, job: Job, interrupted: bool) -> dict[str, Any]:
        """Write the outputs (also after an interruption or error: ``interrupted`` True);
        returns the stats."""
        return write_outputs(job.ctx, job.config, job.title, interrupted, job.card_sections,
                             job.description, job.out_dir, job.output)


class Job:
    """One run of one command in a run directory.

    Args:
        run_dir: the run directory (created if missing; locked while the job is open).
        command: the command name, recorded in the store and the default card title.
        llm: the endpoint configuration; needed only when a stage calls :meth:`client`.
        progress: where progress goes (silent by default).
        seed: the run's random seed (stages read ``ctx.seed``).
        title: the dataset card's title.
        out_dir: where the outputs go (dataset/, rejects.jsonl, stats.json, config.json);
            default the run directory. ``synth run`` gives each step its own, under one store.
        secrets: secrets/personal-data policy (a SecretsConfig or a SecretsPolicy; None: the
            default, redact). Every record is checked before the store keeps it, every LLM
            reply before it is cached (in this process, whatever the executor); counts go to
            stats.json and a card section.
        output: row/file format, licence allow-list, hub repo
            (:class:`synth.io.formats.OutputConfig`); default raw parquet, every licence.
        executor: where fan-out work runs (:mod:`synth.executors`); default the current one
            (local unless the command line chose ``--executor ray``). The store, the stages'
            order-dependent logic and the outputs stay in this process whatever it is.
    """

    def __init__(self, run_dir: Path, command: str, *, llm: LLMConfig | None = None,
                 progress: Progress | None = None, seed: int = 0,
                 title: str | None = None, out_dir: Path | None = None,
                 secrets: SecretsConfig | SecretsPolicy | None = None,
                 output: Any = None, executor: Executor | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.out_dir = Path(out_dir) if out_dir is not None else self.run_dir
        self.command = command
        self.output = output
        self.llm = llm or LLMConfig()
        self.progress = progress
        self.seed = seed
        self.title = title or f"synth {command}"
        self.description: str | None = None
        self.executor = executor or current()
        self.config: dict[str, Any] = {"run_dir": str(self.run_dir)}
        if self.executor.name != "local":
            self.config |= self.executor.describe()
        self.card_sections: list[str] = []
        self.secrets = secrets if isinstance(secrets, SecretsPolicy) else policy_for(secrets)
        self.config |= as_dict(SecretsConfig(self.secrets.mode, tuple(self.secrets.allow)))
        self.embedded = False
        self._stack = contextlib.ExitStack()
        self._store: RunStore | None = None
        self._ctx: RunContext | None = None
        self._client: Any = None
        self._before: list[Callable[[bool], None]] = []
        self._after: list[Callable[[dict[str, Any]], None]] = []

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> Job:
        try:
            self._store = self._stack.enter_context(RunStore(self.run_dir))
            self._store.begin(self.command)
            self._ctx = RunContext(self._store, self.progress, self.seed)
            self._stack.callback(self._ctx.close)
            attach(self.secrets, self._ctx)
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    @property
    def store(self) -> RunStore:
        if self._store is None:
            raise RuntimeError("Job used outside `with`")
        return self._store

    @property
    def ctx(self) -> RunContext:
        if self._ctx is None:
            raise RuntimeError("Job used outside `with`")
        return self._ctx

    def enter(self, cm: contextlib.AbstractContextManager[T]) -> T:
        """Keep ``cm`` (a sandbox, an embedding cache) open until the job closes."""
        return self._stack.enter_context(cm)

    def before_outputs(self, fn: Callable[[bool], None]) -> None:
        """Call ``fn(incomplete)`` just before the outputs are written (card sections, config);
        ``incomplete`` is True after an interruption or an error."""
        self._before.append(fn)

    def after_outputs(self, fn: Callable[[dict[str, Any]], None]) -> None:
        """Call ``fn(stats)`` once the outputs are written (summaries beside the dataset)."""
        self._after.append(fn)

    # -- endpoint ----------------------------------------------------------------------------

    def client(self, offline: bool = False, assume_embedded: bool = False) -> Any:
        """The checked LLM client of this job (the endpoint is opened on the first call).

        Records the resolved endpoint (URL without credentials, model) in config.json, and the
        client's admission (window, limits, budget) and cost in stats.json. ``offline``: no
        endpoint is opened or contacted (dry runs, queue-only ``--batch``).
        """
        if self._client is None:
            from synth.llm.cost import run_cost
            from synth.llm.endpoint import connect

            conn = connect(self._stack, self.llm, self.run_dir, self.store, self.ctx.stats.llm,
                           self.ctx.loop, offline=offline, assume_embedded=assume_embedded)
            self._client, self.embedded = conn.client, conn.embedded
            attach(self.secrets, self.ctx, self._client)  # replies redacted before caching
            # Cache misses go out through the executor (Ray: sender actors holding slices of
            # the limits); replies come back here and are redacted and journaled before use.
            self._client.transport = self.executor.llm_transport(conn.client.base_url, self.llm)
            self.config |= as_dict(conn.config)
            admission = conn.client.admission
            self.ctx.stats.extra["admission"] = admission.snapshot  # window, limits, budget
            self.ctx.stats.extra["cost"] = functools.partial(run_cost, self.store,
                                                             admission.meter)
        return self._client

    # -- running -----------------------------------------------------------------------------

    @staticmethod
    def check(fields: Iterable[str], stages: Sequence[Stage]) -> None:
        """Fail with ConfigError when a stage reads a field nothing before it provides."""
        have = set(fields)
        where = "the input"
        for stage in stages:
            missing = [f for f in stage.reads if f not in have]
            if missing:
                raise ConfigError(
                    f"stage {stage.name} reads {', '.join(missing)}, which {where} does not "
                    f"provide (available: {', '.join(sorted(have)) or 'nothing'})")
            have |= set(stage.writes)
            where = f"the input and the stages before {stage.name}"

    def run(self, source: Source, stages: Sequence[Stage], sink: Sink | None = None,
            total: int | None = None) -> dict[str, Any]:
        """Check the chain, pull every record through ``stages`` into ``sink``, write outputs.

        Returns the stats (also in ``stats.json``). Ctrl-C or SIGTERM: the outputs are written
        with what finished, then KeyboardInterrupt propagates.
        """
        sink = sink or Sink()
        from synth.filters.licenses import license_stages

        # --license-allow: the licence filter goes first, before any request is made.
        stages = license_stages(self.output) + list(stages)
        records = iter(source.records)
        fields = source.fields
        if fields is None:
            first = next(records, None)
            if first is not None:  # an empty input has nothing to check
                records = itertools.chain([first], records)
                fields = record_fields(first)
        if fields is not None:
            self.check(fields, stages)
        self.config |= source.describe
        interrupted: KeyboardInterrupt | None = None
        finished = False
        stats: dict[str, Any] = {}
        with _signals_as_interrupt(self.ctx):
            try:
                # What start-up allocated (modules, vocabularies, templates, the seeds' index)
                # stays out of the collector's passes while records flow: the full passes of
                # a long run otherwise walk all of it again and again.
                gc.freeze()
                try:
                    run_stages(records, list(stages), self.ctx,
                               total if total is not None else source.total,
                               put=lambda r: sink.put(self, r))
                finally:
                    gc.unfreeze()
                finished = True
            except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM as Terminated
                interrupted = exc
                log.warning("interrupted: writing what finished so far")
            finally:
                # Also after an error: what finished is written, marked incomplete.
                for fn in self._before:
                    fn(not finished)
                from synth.io.card import secrets_section

                section = secrets_section({"secrets": self.secrets.to_dict()})
                if section:
                    self.card_sections.append(section)
                stats = sink.close(self, not finished)
                for after in self._after:
                    after(stats)
        if interrupted is not None:
            raise interrupted  # the same one: the command line tells SIGTERM from Ctrl-C
        return stats


@contextlib.contextmanager
def _signals_as_interrupt(ctx: RunContext) -> Iterator[None]:
    """Ctrl-C (SIGINT) and SIGTERM stop a run: KeyboardInterrupt (``Terminated`` for SIGTERM)
    is raised in the main thread, and also remembered on ``ctx``.

    Remembered because Python prints and ignores an exception raised inside a weakref
    callback or a ``__del__`` (asyncio drops every finished task from a WeakSet), so a Ctrl-C
    landing there would be lost and the run would go on to exit 0; ``run_stages`` raises the
    remembered one at the next record instead.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        ctx.interrupt = Terminated if signum == signal.SIGTERM else KeyboardInterrupt
        raise ctx.interrupt

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old_handler in previous.items():
            signal.signal(sig, old_handler)
