"""The Ray executor: the same job, its heavy work fanned out over a Ray cluster.

What runs where (the driver is the ``synth`` process; it keeps the run directory):

- **map_batches** (seed extraction over file shards, decontamination over record shards): Ray
  Data ``map_batches`` with ``preserve_order``, so results stream back in input order and the
  driver's order-dependent steps (dedup, quotas, the record order) see what a local run sees.
- **embedding**: a pool of actors, each holding the sentence-transformers model once
  (``num_gpus=1`` per actor when the cluster has GPUs); batches go out in order through
  ``ray.util.ActorPool.map``, vectors come back to the driver, which caches them in
  ``RUN/embeddings.sqlite`` chunk by chunk as before. KCenterGreedy and diversity selection
  run on the gathered matrix in the driver.
- **LLM requests**: a pool of async sender actors (no CPU reserved, spread over nodes), each
  holding an LLM client (the lean wire) and a *slice* of the global limits: concurrency
  ``C`` split as evenly as possible, RPM/TPM divided by the number of actors (floored, so the
  sum never exceeds the budget). The driver checks the cache, sends a miss to the least busy
  sender, and journals the reply in ``RUN/store.sqlite`` under the same key *before* using it.
- **sandbox**: one Ray task (1 CPU) per program; each worker builds synth's own
  :class:`~synth.sandbox.Sandbox` from the same config, so isolation (namespaces, rlimits) is
  detected and enforced on every node, and refused there as it is here.

Why the driver journals (and not actors into cache shards): one writer keeps the store what it
is locally, so a job killed on Ray resumes on Ray *or* locally without paying twice, with no
merge step and no SQLite on a network file system; replies travel to the driver anyway because
it assembles the dataset. What is lost on a kill is what is lost locally: replies in flight.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import pickle
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np

from synth.errors import ConfigError, ExecutorUnavailable, SynthError
from synth.executors import Executor

if TYPE_CHECKING:
    from synth.config import LLMConfig
    from synth.embed import Embedder
    from synth.llm.client import Completion, Message, SamplingParams
    from synth.sandbox import ExecResult, Program, Sandbox

log = logging.getLogger("synth")

T = TypeVar("T")
R = TypeVar("R")


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ExecutorUnavailable("--executor ray needs Ray: pip install 'synth[ray]'") from exc
    return ray


class RayExecutor(Executor):
    """Runs the job's fan-out work on Ray; see the module docstring for what goes where.

    Args:
        address: ``auto``, ``ray://host:10001``, or None to start a local Ray instance.
        actors: actors per pool (default: one per alive node).
        num_cpus: CPUs of a local instance started here (tests pass 2).
    """

    name = "ray"

    def __init__(self, address: str | None = None, actors: int | None = None,
                 num_cpus: int | None = None) -> None:
        ray = _ray()
        if actors is not None and actors < 1:
            raise ConfigError(f"--actors must be positive, got {actors}")
        self._started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False,
                                      "logging_level": logging.WARNING,
                                      "configure_logging": False}
            if address is None:
                kwargs["num_cpus"] = num_cpus or os.cpu_count() or 1
            else:
                # A remote cluster imports synth from this tree, whatever is installed there.
                kwargs["runtime_env"] = {"py_modules": [str(Path(__file__).parents[1])]}
            try:
                ray.init(address=address, **kwargs)
            except Exception as exc:  # Ray raises bare Exception when its processes time out
                where = f"connect to Ray at {address}" if address else "start a local Ray instance"
                raise ExecutorUnavailable(
                    f"cannot {where}: {str(exc).splitlines()[0] if str(exc) else exc!r}; "
                    "check `ray status` (or start one: `ray start --head`)") from exc
            self._started = True
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True  # results in input order, always
        ctx.enable_progress_bars = False
        self.address = address
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        self.nodes = max(len(nodes), 1)
        self.gpus = int(ray.cluster_resources().get("GPU", 0))
        self.cpus = int(ray.cluster_resources().get("CPU", 1))
        self.actors = actors or self.nodes
        self._senders: list[_SenderPool] = []
        self._embedders: list[RayEmbedder] = []

    # -- map over shards ---------------------------------------------------------------------

    def map_batches(self, fn: Callable[[list[T]], list[R]], items: Iterable[T],
                    batch_size: int = 256) -> Iterator[R]:
        # Items are taken a window at a time (a few batches per CPU), so the driver holds a
        # bounded slice of a long stream, and an upstream stage keeps streaming.
        window = batch_size * max(4 * self.cpus, 8)
        source = iter(items)
        while True:
            rows = [{"x": pickle.dumps(item)} for item in itertools.islice(source, window)]
            if not rows:
                return
            yield from self._map_window(fn, rows, batch_size)

    def _map_window(self, fn: Callable[[list[T]], list[R]], rows: list[dict[str, bytes]],
                    batch_size: int) -> Iterator[R]:
        ray = _ray()
        ds = ray.data.from_items(rows, override_num_blocks=-(-len(rows) // batch_size))
        ds = ds.map_batches(functools.partial(_apply, fn), batch_size=batch_size,
                            batch_format="pyarrow", zero_copy_batch=True)
        for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            for blob in batch.column("y").to_pylist():
                yield pickle.loads(blob)

    # -- embeddings ----------------------------------------------------------------------------

    def embedder(self, embedder: Embedder) -> Embedder:
        # CPU-only: leave a CPU free for the tasks of other stages (they would wait forever
        # behind actors holding every CPU).
        n = min(self.actors, self.gpus) if self.gpus else min(self.actors, max(1, self.cpus - 1))
        pool = RayEmbedder(embedder, max(n, 1), 1 if self.gpus else 0)
        self._embedders.append(pool)
        return cast("Embedder", pool)

    # -- LLM requests --------------------------------------------------------------------------

    def llm_transport(self, base_url: str, config: LLMConfig) -> _SenderPool:
        pool = _SenderPool(base_url, config, min(self.actors, config.concurrency))
        self._senders.append(pool)
        return pool

    # -- sandbox -------------------------------------------------------------------------------

    def sandbox(self, box: Sandbox) -> RaySandbox:
        return RaySandbox(box, self.cpus)

    def describe(self) -> dict[str, Any]:
        return {"executor": self.name, "ray_nodes": self.nodes, "ray_cpus": self.cpus,
                "ray_gpus": self.gpus, "ray_actors": self.actors}

    def close(self) -> None:
        ray = _ray()
        for pool in self._senders:
            pool.close()
        for emb in self._embedders:
            emb.close()
        self._senders.clear()
        self._embedders.clear()
        if self._started and ray.is_initialized():
            ray.shutdown()
            self._started = False


def _apply(fn: Callable[[list[Any]], list[Any]], batch: Any) -> dict[str, list[bytes]]:
    """One Ray Data batch: unpickle the items, apply ``fn``, pickle one result per item."""
    items = [pickle.loads(b) for b in batch.column("x").to_pylist()]
    out = fn(items)
    if len(out) != len(items):
        raise RuntimeError(f"map_batches: {fn!r} returned {len(out)} results for "
                           f"{len(items)} items")
    return {"y": [pickle.dumps(r) for r in out]}


# -- embedding actors ---------------------------------------------------------------------------


class _EmbedWorker:
    """An embedding actor: loads the model once, encodes the batches it is given."""

    def __init__(self, model: str | None, device: str | None, batch_size: int,
                 max_seq_length: int | None, precision: str) -> None:
        from synth.embed import Embedder

        self.embedder = Embedder(model, device=device, batch_size=batch_size,
                                 max_seq_length=max_seq_length, precision=precision)

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.embedder.encode(texts)


class RayEmbedder:
    """Looks like an :class:`~synth.embed.Embedder` (``name``, ``encode``) but encodes on a pool
    of actors. Texts go out in batches of ``batch_size`` (the local forward-pass size, so a
    batch pads the same texts together) and come back in order."""

    def __init__(self, embedder: Embedder, actors: int, num_gpus: int) -> None:
        self.name = embedder.name
        self.path = embedder.path
        self.max_seq_length = embedder.max_seq_length
        self.batch_size = embedder.batch_size
        self.device = embedder.device
        self._spec = (embedder.path, embedder.device if not num_gpus else "cuda",
                      embedder.batch_size, embedder.max_seq_length, embedder.precision)
        self._n = actors
        self._gpus = num_gpus
        self._actors: list[Any] = []

    def _pool(self) -> Any:
        ray = _ray()
        from ray.util import ActorPool

        if not self._actors:
            cls = ray.remote(num_cpus=0 if self._gpus else 1, num_gpus=self._gpus)(_EmbedWorker)
            self._actors = [cls.remote(*self._spec) for _ in range(self._n)]
        return ActorPool(self._actors)

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            from synth.embed import Embedder

            return Embedder(self._spec[0]).encode([])
        ray = _ray()
        batches = [list(texts[i:i + self.batch_size])
                   for i in range(0, len(texts), self.batch_size)]
        try:
            parts = list(self._pool().map(lambda a, b: a.encode.remote(b), batches))
        except ray.exceptions.RayTaskError as exc:
            cause = exc.as_instanceof_cause()
            if isinstance(cause, SynthError):
                raise cause from None
            raise
        return np.concatenate(parts).astype(np.float32, copy=False)

    def close(self) -> None:
        ray = _ray()
        for actor in self._actors:
            ray.kill(actor)
        self._actors = []


# -- LLM sender actors --------------------------------------------------------------------------


def _slices(total: int | None, n: int) -> list[int | None]:
    """``total`` split over ``n`` actors: as even as possible, summing to ``total``."""
    if total is None:
        return [None] * n
    return [total // n + (1 if i < total % n else 0) for i in range(n)]


def _at_least_1(value: int | None) -> int | None:
    # A budget smaller than the number of actors still lets each actor send (slowly).
    return None if value is None else max(1, value)


class _Sender:
    """An async actor: one LLM client (the lean wire) with a slice of the limits.

    It never sees the cache: the driver looks a request up first and journals the reply.
    """

    def __init__(self, base_url: str, config: LLMConfig, key: str | None) -> None:
        from synth.llm.client import LLMClient
        from synth.store import RunStore

        if key is not None:
            # The driver's key, for nodes whose environment lacks it: it lives in this actor
            # process's memory (and Ray's in-memory task spec), never in a file or a log.
            os.environ["SYNTH_API_KEY"] = key
        self.stats: Counter[str] = Counter()
        # No store: this client only sends (``fetch``); the driver owns the cache.
        self.client = LLMClient(base_url, "", cast(RunStore, None), config, stats=self.stats)

    async def send(self, model: str, messages: list[Message],
                   params: SamplingParams) -> tuple[str, Any, dict[str, int]]:
        from synth.llm.client import LLMRequestFailed

        self.client.model = model
        try:
            completion = await self.client.fetch(messages, params)
        except LLMRequestFailed as exc:
            return "failed", (exc.reason, exc.detail, exc.status), dict(self.stats)
        except SynthError as exc:
            return "fatal", exc, dict(self.stats)
        return "ok", completion.to_cache(), dict(self.stats)


class _SenderPool:
    """The driver's side of the sender actors: a :class:`~synth.llm.client.Transport`."""

    def __init__(self, base_url: str, config: LLMConfig, n: int) -> None:
        import dataclasses

        ray = _ray()
        n = max(1, n)
        key = os.environ.get("SYNTH_API_KEY") or os.environ.get("OPENAI_API_KEY")
        cls = ray.remote(num_cpus=0, scheduling_strategy="SPREAD")(_Sender)
        conc, rpm, tpm = (_slices(config.concurrency, n), _slices(config.rpm, n),
                          _slices(config.tpm, n))
        self.slices = []
        self.actors = []
        for i in range(n):
            part = dataclasses.replace(config, concurrency=_at_least_1(conc[i]) or 1,
                                       rpm=_at_least_1(rpm[i]), tpm=_at_least_1(tpm[i]))
            self.slices.append(part)
            self.actors.append(cls.options(max_concurrency=max(part.concurrency * 2, 16))
                               .remote(base_url, part, key))
        self.busy = [0] * n
        self._seen: list[Counter[str]] = [Counter() for _ in range(n)]

    async def send(self, model: str, messages: list[Message], params: SamplingParams,
                   stats: Counter[str]) -> Completion:
        from synth.llm.client import Completion, LLMRequestFailed

        i = min(range(len(self.actors)), key=lambda j: (self.busy[j], j))
        self.busy[i] += 1
        try:
            kind, payload, counted = await self.actors[i].send.remote(model, messages, params)
        finally:
            self.busy[i] -= 1
        # The actor's counters are cumulative and replies may overtake each other: add what
        # grew since the largest value seen.
        seen = self._seen[i]
        for key, value in counted.items():
            if value > seen[key]:
                stats[key] += value - seen[key]
                seen[key] = value
        if kind == "ok":
            return Completion(
                text=payload["text"], finish_reason=payload["finish_reason"],
                tokens_in=payload.get("tokens_in", 0), tokens_out=payload.get("tokens_out", 0),
                logprobs=payload.get("logprobs"))
        if kind == "failed":
            reason, detail, status = payload
            raise LLMRequestFailed(reason, detail, status)
        raise payload

    def close(self) -> None:
        ray = _ray()
        for actor in self.actors:
            ray.kill(actor)
        self.actors = []


# -- sandbox tasks --------------------------------------------------------------------------------

_BOXES: dict[bytes, Any] = {}


def _run_program(config_blob: bytes, program: Program) -> ExecResult:
    """A Ray task: run ``program`` in this node's synth sandbox (built once per worker)."""
    from synth.sandbox import Sandbox

    box = _BOXES.get(config_blob)
    if box is None:
        box = _BOXES[config_blob] = Sandbox(pickle.loads(config_blob))
    return box.run_sync(program)


class RaySandbox:
    """Looks like a :class:`~synth.sandbox.Sandbox`; each ``run`` is a 1-CPU Ray task."""

    def __init__(self, box: Sandbox, cpus: int) -> None:
        ray = _ray()
        self.config = box.config
        self.mode = box.mode
        self.parallel = max(cpus, 1)
        self._blob = pickle.dumps(box.config)
        self._task = ray.remote(num_cpus=1, max_retries=0)(_run_program)

    async def run(self, program: Program) -> ExecResult:
        ray = _ray()
        try:
            return cast("ExecResult", await self._task.remote(self._blob, program))
        except ray.exceptions.RayTaskError as exc:
            cause = exc.as_instanceof_cause()
            if isinstance(cause, SynthError):
                raise cause from None
            raise

    def close(self) -> None:
        """Nothing to release here: each worker keeps its own box."""
