"""Where a job's heavy work runs: in this process (``local``, the default) or on Ray.

An executor never owns the job. The job (its store, context, stages, Ctrl-C and outputs) stays
in the driver process; the executor only supplies the few places where work fans out:

==================  ===========================================  ===============================
seam                local                                        ray
==================  ===========================================  ===============================
``map_batches``     a plain loop, batch after batch               Ray Data ``map_batches`` over
                                                                 shards (file paths, records)
``embedder``        the :class:`~synth.embed.Embedder` as is      a pool of embedding actors
                                                                 (``num_gpus`` each on GPU nodes)
``llm_transport``   None: the client sends requests itself       async sender actors, each with
                                                                 a slice of concurrency/RPM/TPM
``sandbox``         the :class:`~synth.sandbox.Sandbox` as is     one CPU task per program, the
                                                                 synth sandbox on that node
==================  ===========================================  ===============================

Whatever the executor, results come back to the driver in input order, and every LLM response
is journaled in the driver's ``RUN/store.sqlite`` under the same cache key before it is used,
so a job killed on Ray resumes on Ray or locally without paying twice, and both executors write
the same dataset.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from synth.errors import ConfigError

if TYPE_CHECKING:
    from synth.config import LLMConfig
    from synth.embed import Embedder
    from synth.llm.client import Transport
    from synth.sandbox import Sandbox

T = TypeVar("T")
R = TypeVar("R")

EXECUTORS = ("local", "ray")


class Executor:
    """The local executor: everything runs in this process, exactly as without executors.

    Subclasses override the seams; callers only use these methods, so a job runs unchanged on
    any executor.
    """

    name = "local"

    def map_batches(self, fn: Callable[[list[T]], list[R]], items: Iterable[T],
                    batch_size: int = 256) -> Iterator[R]:
        """``fn`` over ``items`` in batches; one result per item, in input order.

        ``fn`` must be a picklable module-level function (or a ``functools.partial`` of one)
        for executors that run it elsewhere.
        """
        batch: list[T] = []
        for item in items:
            batch.append(item)
            if len(batch) >= batch_size:
                yield from _checked(fn, batch)
                batch = []
        if batch:
            yield from _checked(fn, batch)

    def embedder(self, embedder: Embedder) -> Embedder:
        """The embedder to use: the same one locally, a distributed one elsewhere."""
        return embedder

    def llm_transport(self, base_url: str, config: LLMConfig) -> Transport | None:
        """Where cache misses are sent; None: the client sends them itself."""
        return None

    def sandbox(self, box: Sandbox) -> Any:
        """Something with ``Sandbox``'s ``run``/``config``/``mode``/``parallel``."""
        return box

    def describe(self) -> dict[str, Any]:
        """What config.json records about the executor."""
        return {"executor": self.name}

    def close(self) -> None:
        """Release what the executor started (actors, the Ray connection)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _checked(fn: Callable[[list[T]], list[R]], batch: list[T]) -> list[R]:
    out = fn(batch)
    if len(out) != len(batch):
        raise RuntimeError(f"map_batches: {fn!r} returned {len(out)} results for "
                           f"{len(batch)} items")
    return out


def get_executor(name: str = "local", address: str | None = None,
                 actors: int | None = None) -> Executor:
    """The executor called ``name``.

    Args:
        name: ``local`` or ``ray``.
        address: Ray only: ``auto`` (a running cluster), ``ray://host:10001``, or None to
            start a local Ray instance in this process.
        actors: Ray only: actors per pool (LLM senders, embedders); default one per node.

    Raises:
        ConfigError: unknown name, options that do not apply, or Ray not installed.
    """
    if name == "local":
        if address is not None or actors is not None:
            raise ConfigError("--address and --actors only apply to --executor ray")
        return Executor()
    if name == "ray":
        from synth.executors.ray import RayExecutor

        return RayExecutor(address=address, actors=actors)
    raise ConfigError(f"--executor must be one of {', '.join(EXECUTORS)}, got {name!r}")


_CURRENT: contextvars.ContextVar[Executor | None] = contextvars.ContextVar("synth_executor",
                                                                          default=None)


def current() -> Executor:
    """The executor set by :func:`use` (the CLI's ``--executor``), else the local one.

    A :class:`~synth.job.Job` created without an explicit executor takes this one, so every
    job of ``synth run`` runs on the executor the command line chose.
    """
    return _CURRENT.get() or Executor()


@contextlib.contextmanager
def use(executor: Executor) -> Iterator[Executor]:
    """Make ``executor`` the :func:`current` one inside the ``with`` block."""
    token = _CURRENT.set(executor)
    try:
        yield executor
    finally:
        _CURRENT.reset(token)
