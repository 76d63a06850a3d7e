"""Every command as a Job: which source, which stages, which sink (:mod:`synth.job`).

- :func:`extract` — ``synth seeds extract``: corpus → gates, dedup, quotas → ``seeds.jsonl``.
- :func:`generate` — ``synth generate``: seeds (or a dataset, for evol) → task stage → dataset.
- :func:`filters` — ``synth score`` / ``select`` / ``filter``: dataset → scores → selection.
- :func:`decontam` — ``synth decontam``: dataset → exact and n-gram decontamination.

Each returns the stats written to ``stats.json``. The store, the endpoint, Ctrl-C/SIGTERM and
the outputs are the Job's business; nothing here repeats them.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from synth.config import (
    CoresetConfig,
    GenerateConfig,
    LLMConfig,
    SandboxConfig,
    ScoreConfig,
    SecretsConfig,
    SeedsConfig,
    SelectConfig,
    as_dict,
)
from synth.errors import ConfigError, InputError
from synth.filters.secrets import SecretsPolicy
from synth.job import Job, Sink, Source
from synth.pipeline import Progress, Stage
from synth.records import Record
from synth.store import write_json

log = logging.getLogger("synth")


# -- seeds extract ---------------------------------------------------------------------------


class SeedsSink(Sink):
    """Kept seeds go to ``RUN/seeds.jsonl`` (plus the file index and the manifest, which
    ``seeds refresh`` reads); an interrupted extraction leaves the previous files untouched."""

    def __init__(self, run_dir: Path, roots: Sequence[Path], datasets: Sequence[Any],
                 cfg: SeedsConfig, counts: Counter[str]) -> None:
        from synth.io.seeds import SEEDS_FILE
        from synth.seeds.extract import FileIndex

        self.run_dir, self.roots, self.datasets, self.cfg = run_dir, roots, datasets, cfg
        self.counts = counts
        self.index = FileIndex(run_dir)
        self.path = run_dir / SEEDS_FILE
        self._tmp = self.path.with_suffix(".jsonl.tmp")
        self._fh = open(self._tmp, "w", encoding="utf-8")  # noqa: SIM115 (closed in close)
        self.written = 0

    def put(self, job: Job, record: Record) -> None:
        from synth.io.seeds import seed_line

        self._fh.write(seed_line(record))
        self.written += 1

    def close(self, job: Job, interrupted: bool) -> dict[str, Any]:
        import os

        from synth.seeds.extract import write_manifest

        self._fh.close()
        if interrupted:
            self.index.discard()
            self._tmp.unlink(missing_ok=True)
        else:
            os.replace(self._tmp, self.path)
            self.index.commit()
            write_manifest(self.run_dir, self.roots, self.datasets, self.cfg, self.counts)
        return {"seeds": self.written, "counts": dict(sorted(self.counts.items())),
                "interrupted": interrupted}


def extract(run_dir: Path, paths: Sequence[Path], cfg: SeedsConfig,
            datasets: Sequence[Any] = (), progress: Progress | None = None,
            license_allow: tuple[str, ...] = ()) -> dict[str, Any]:
    """``synth seeds extract``: seeds from ``paths`` (default: the stdlib) and ``datasets``;
    with ``license_allow``, only seeds of files under those licences."""
    from synth.seeds.corpus import default_corpus
    from synth.seeds.extract import extract_seeds

    cfg.validate()
    roots = list(paths) if paths else ([] if datasets else default_corpus())
    for root in roots:
        if not Path(root).exists():
            raise InputError(f"{root} does not exist")
    counts: Counter[str] = Counter()
    with Job(run_dir, "seeds extract", progress=progress, seed=cfg.seed,
             secrets=SecretsConfig(cfg.secrets, tuple(cfg.secrets_allow))) as job:
        sink = SeedsSink(Path(run_dir), roots, datasets, cfg, counts)
        try:
            records = extract_seeds(roots, cfg, counts, datasets, sink.index, license_allow,
                                    job.executor)
            return job.run(Source(records, frozenset({"seed", "lang", "provenance"})), [], sink)
        except BaseException:
            if not sink._fh.closed:  # failed before the sink closed: leave nothing half-made
                sink._fh.close()
                sink._tmp.unlink(missing_ok=True)
                sink.index.discard()
            raise


def coreset(run_dir: Path, cfg: CoresetConfig) -> Any:
    """``synth seeds select``: KCenterGreedy picks ``cfg.k`` seeds into RUN/coreset.jsonl."""
    from synth.embed import Embedder
    from synth.executors import current
    from synth.pipeline import step_progress
    from synth.seeds.refresh import select_coreset
    from synth.store import RunStore

    cfg.validate()
    with RunStore(run_dir), step_progress("coreset") as (on_embed, on_pick):
        # Ray: encoded by a pool of embedding actors; KCenterGreedy runs here on the gathered
        # matrix (N x 384 float32), as locally.
        emb = current().embedder(Embedder(cfg.embedder, device=cfg.device,
                                          batch_size=cfg.batch_size,
                                          max_seq_length=cfg.max_seq_length))
        return select_coreset(run_dir, cfg.k, emb, metric=cfg.metric, seed=cfg.seed,
                              device=cfg.device, on_embed=on_embed, on_pick=on_pick)


def refresh(run_dir: Path, device: str | None = None, secrets: str | None = None,
            secrets_allow: tuple[str, ...] | None = None) -> tuple[Any, Counter[str]]:
    """``synth seeds refresh``: re-scan the sources, update seeds and the coreset.

    Returns the report and the extraction counters (secrets findings among them);
    ``secrets``/``secrets_allow`` override the manifest's for new and changed files.
    """
    from synth.executors import current
    from synth.pipeline import step_progress
    from synth.seeds.refresh import refresh as run_refresh
    from synth.store import RunStore

    counts: Counter[str] = Counter()
    with RunStore(run_dir), step_progress("refresh") as (on_embed, _):
        # Ray: the new seeds are encoded by the embedding actors, as in `seeds select`.
        report = run_refresh(run_dir, counts, device=device, embed_with=current().embedder,
                             on_embed=on_embed, secrets=secrets, secrets_allow=secrets_allow)
    return report, counts


# -- generate --------------------------------------------------------------------------------


def ensure_seeds(run_dir: Path, seeds: Path | None, seed: int,
                 secrets: SecretsPolicy | None = None) -> Path:
    """The seeds file: ``seeds``, else RUN/seeds.jsonl (extracted from the stdlib if absent)."""
    from synth.io.seeds import SEEDS_FILE, write_seeds
    from synth.seeds.corpus import default_corpus
    from synth.seeds.extract import extract_seeds

    if seeds is not None:
        if not seeds.exists():
            raise InputError(f"seeds file {seeds} does not exist")
        return seeds
    path = run_dir / SEEDS_FILE
    if not path.exists():
        counts: Counter[str] = Counter()
        log.info("no seeds given: extracting seeds from the Python standard library")
        cfg = SeedsConfig(seed=seed) if secrets is None else SeedsConfig(
            seed=seed, secrets=secrets.mode, secrets_allow=secrets.allow)
        n = write_seeds(extract_seeds(default_corpus(), cfg, counts), path)
        log.info("wrote %d seeds to %s", n, path)
    return path


def _count_lines(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip())


def generate_source(run_dir: Path, gen: GenerateConfig, seeds: Path | None = None,
                    secrets: SecretsPolicy | None = None) -> Source:
    """The records ``generate`` works on: one per (seed, sample), or per (row, sample) for
    evol. ``secrets`` checks the sampled seeds/rows (default: redact)."""
    from synth.generators import build_tasks, choose_task
    from synth.generators.evol import source_record
    from synth.io.rows import read_records
    from synth.io.seeds import read_seeds
    from synth.seeds.extract import sample_seeds

    _, mix = build_tasks(gen.task, gen.weights, gen.to)
    policy = secrets if secrets is not None else SecretsPolicy()
    if gen.task == "evol":
        if seeds is not None:
            raise ConfigError("--task evol reads --input, not --seeds")
        path = Path(str(gen.input))
        if not path.exists():
            raise InputError(f"--input {path} does not exist")

        def evol() -> Iterator[Record]:
            # Sampled first: a --num 100 run over a large dataset scans 100 rows, not all.
            for row in policy.rows(sample_seeds(read_records(path), gen.num, gen.seed)):
                for sample in range(gen.samples_per_seed):
                    yield source_record(row, sample)

        total = gen.num * gen.samples_per_seed if gen.num is not None else None
        return Source(evol(), None, total, {"input": str(path)})
    seeds_path = ensure_seeds(run_dir, seeds, gen.seed, policy)
    available = _count_lines(seeds_path)
    total = (min(gen.num, available) if gen.num is not None else available)

    def tasks() -> Iterator[Record]:
        for seed in policy.seeds(sample_seeds(read_seeds(seeds_path), gen.num, gen.seed)):
            task = choose_task(mix, gen.seed, seed.id) if mix is not None else gen.task
            for sample in range(gen.samples_per_seed):
                yield seed.for_task(task, sample)

    return Source(tasks(), None, total * gen.samples_per_seed, {"seeds": str(seeds_path)})


def verify_mode(gen: GenerateConfig, tasks: dict[str, Any], embedded: bool) -> str:
    """``--verify``, else ``require`` for code tasks on a real endpoint and ``score`` on the
    embedded model (135M parameters rarely write passing code; the demo must still leave
    rows); ``off`` when no task writes code."""
    if not any(t.verifiable for t in tasks.values()):
        return "off"
    if gen.verify is not None:
        return gen.verify
    return "score" if embedded else "require"


class _DeferringSink(Sink):
    """The default sink, except that no outputs are written while requests were deferred
    (``--batch``, ``--dry-run``): a dataset is written once every answer is there."""

    def __init__(self, collector: Any) -> None:
        self.collector = collector

    def close(self, job: Job, interrupted: bool) -> dict[str, Any]:
        if self.collector is not None and self.collector.requests:
            return {}
        return super().close(job, interrupted)


def generate(run_dir: Path, gen: GenerateConfig, llm: LLMConfig, seeds: Path | None = None,
             progress: Progress | None = None, out_dir: Path | None = None,
             sandbox: SandboxConfig | None = None,
             secrets: SecretsConfig | None = None, output: Any = None,
             mode: str = "live") -> dict[str, Any]:
    """``synth generate``: seeds → the task's prompts → LLM (+ verify step and discriminator
    loop) → dataset.

    Reads seeds (``seeds`` or RUN/seeds.jsonl) or, for evol, ``gen.input``; writes RUN/dataset,
    RUN/rejects.jsonl, RUN/stats.json and RUN/config.json. Code samples run against their own
    tests in a sandbox built from ``sandbox`` unless the verify mode is ``off``.

    ``mode`` ``batch``: requests that are not cached are queued and submitted to the Batch API
    instead of sent (raises BatchPending while any are left; writes the dataset once every
    answer is cached). ``estimate``: nothing is sent and no endpoint is contacted; returns
    :func:`synth.estimate.estimate`'s report.
    """
    from synth.estimate import estimate
    from synth.generators import build_tasks, task_options
    from synth.generators.loop import TaskStage, loop_card_section, template_hash
    from synth.generators.memory import ExampleMemory
    from synth.generators.verify import Verifier
    from synth.generators.verifystep import VerifyStep
    from synth.llm.batch import Collector
    from synth.llm.client import SamplingParams
    from synth.llm.cost import cost_card_section, run_cost
    from synth.prompts import Prompts

    tasks, mix = build_tasks(gen.task, gen.weights, gen.to)
    prompts = Prompts(gen.templates)
    for task in tasks.values():  # fail on a broken override before starting a server
        template_hash(prompts, task)
    for path in gen.memory_seed:
        if not Path(path).exists():
            raise InputError(f"--memory-seed {path} does not exist")
    from synth.filters.secrets import policy_for

    policy = policy_for(secrets)
    source = generate_source(run_dir, gen, seeds, policy)
    with Job(run_dir, "generate", llm=llm, progress=progress, seed=gen.seed,
             title=f"synth {gen.task} dataset", out_dir=out_dir, secrets=policy,
             output=output) as job:
        memory = ExampleMemory(job.store, gen.memory_size, gen.memory_policy, gen.few_shot,
                               gen.seed)
        for path in gen.memory_seed:
            log.info("memory: %d new cases from %s",
                     memory.seed_from(Path(path), tasks, scrub=job.secrets.rows), path)
        job.ctx.stats.extra["memory"] = lambda: {"cases": memory.counts(),
                                                 "block": memory.block,
                                                 "lag_waits": memory.waits}
        collector = Collector() if mode != "live" else None
        # --batch with no endpoint only queues (for vLLM's run_batch); an estimate contacts none
        offline = mode == "estimate" or (mode == "batch" and llm.base_url is None)
        if mode == "batch" and offline and not llm.model:
            raise ConfigError("--batch without an endpoint queues requests for an offline "
                              "runner: give --model (the name the runner serves)")
        client = job.client(offline=offline,
                            assume_embedded=mode == "estimate" and llm.base_url is None)
        client.defer = collector
        job.config |= as_dict(gen) | {"tasks": task_options(tasks)}
        if mix is not None:
            job.config["mix"] = mix
        job.description = _description(tasks, mix)
        params = SamplingParams(temperature=gen.temperature, top_p=gen.top_p,
                                max_tokens=gen.max_tokens, seed=gen.seed)
        # after client(): embedded is known (``mode`` is the live/batch/estimate mode)
        vmode = verify_mode(gen, tasks, job.embedded)
        job.config["verify_mode"] = vmode
        step = None
        if vmode != "off":
            from synth.sandbox import Sandbox

            box = job.enter(Sandbox(sandbox or SandboxConfig()))
            # The executions (tests, oracle calls, mutants) go through the executor: on Ray
            # one 1-CPU task per program, synth's sandbox on that node; the execution cache,
            # the verdicts and everything order-dependent stay here.
            step = VerifyStep(Verifier(job.executor.sandbox(box), job.store,
                                       gen.test_timeout_s),
                              vmode, gen.responses, gen.mutants, gen.oracle, gen.seed)
            log.info("verify: %s, %d response(s) per instruction, sandbox %s", vmode,
                     gen.responses, box.mode)
        stage = TaskStage(tasks, client, prompts, params, gen.answer_format,
                          first_dialect="json_object" if job.embedded else "json_schema",
                          memory=memory, discriminate=gen.discriminator,
                          max_rounds=gen.max_rounds, seed=gen.seed, verify=step)

        def finish(interrupted: bool) -> None:
            deferred = collector is not None and bool(collector.requests)
            memory.close(complete=not interrupted and not deferred)
            job.config["answer_dialect"] = stage.dialects()
            if gen.discriminator:
                job.card_sections.append(loop_card_section(stage.counters))
            if step is not None:
                job.card_sections.append(step.card_section())
            job.card_sections.append(cost_card_section(run_cost(job.store,
                                                                client.admission.meter)))

        job.before_outputs(finish)
        stats = job.run(source, [stage], _DeferringSink(collector))
        if mode == "estimate" and collector is not None:
            return estimate(collector, job.store, client.model, gen, llm)
        if collector is not None and collector.requests:
            _submit(job.store, collector, client.base_url, llm, job.secrets)
        return stats


def _submit(store: Any, collector: Any, base_url: str, llm: LLMConfig,
            secrets: SecretsPolicy) -> None:
    """Queue and submit the requests a ``--batch`` pass collected; raises BatchPending."""
    from synth.errors import BatchPending
    from synth.llm import batch

    new = collector.queue(store)
    # `synth batch collect` redacts the answers with this run's policy before caching them.
    batch.save_secrets(store, secrets.mode, secrets.allow)
    if not base_url:
        raise BatchPending(
            f"{len(collector.requests)} requests are not cached ({new} newly queued); no "
            "endpoint: `synth batch submit --export FILE` writes them for vLLM's run_batch "
            "(or `synth batch submit --base-url URL`), `synth batch collect --output RESULTS` "
            "reads the answers back; incomplete: then rerun this command to resume")
    ids = batch.submit(store, base_url, max_requests=llm.batch_max_requests,
                       max_bytes=llm.batch_max_bytes)
    counts = store.batch_request_counts()
    waiting = counts.get("submitted", 0)
    failed = sum(counts.get(s, 0) for s in batch.RETRYABLE)
    msg = (f"{len(collector.requests)} requests are not cached: {new} new queued, "
           f"{len(ids)} batch(es) submitted, {waiting} waiting on batches")
    if failed:
        msg += (f", {failed} failed or expired (`synth batch submit --retry-failed` resubmits "
                "them, or rerun without --batch to send them live)")
    # "incomplete", as every exit-3 message says: nothing is lost, a rerun resumes
    raise BatchPending(msg + "; incomplete: `synth batch status` / `synth batch collect`, then "
                       "rerun this command to resume")


def _description(tasks: dict[str, Any], mix: dict[str, float] | None) -> str:
    if mix is None:
        return str(next(iter(tasks.values())).description)
    return "A mix of synth tasks, drawn per seed:\n\n" + "\n".join(
        f"- {name} ({mix[name]:.0%}): {task.description}" for name, task in tasks.items())


# -- score / select / filter -----------------------------------------------------------------


def input_path(run_dir: Path, given: Path | None) -> Path:
    """``given``, else RUN/dataset when an earlier command wrote one."""
    if given is not None:
        if not given.exists():
            raise InputError(f"--input {given} does not exist")
        return given
    default = run_dir / "dataset"
    if not default.exists():
        raise InputError(f"no --input given and {default} does not exist; pass --input "
                         "data.jsonl|data.parquet|DATASET_DIR")
    return default


def filters(run_dir: Path, source: Path | None, command: str,
            score: ScoreConfig | None = None, select: SelectConfig | None = None,
            llm: LLMConfig | None = None, sandbox: SandboxConfig | None = None,
            progress: Progress | None = None, out_dir: Path | None = None,
            secrets: SecretsConfig | None = None, output: Any = None) -> dict[str, Any]:
    """``synth score``/``select``/``filter``: score and/or select the records of ``source``.

    Heuristic scores are cheap and deterministic, so select computes them too and can rank a
    raw dataset offline (by ast_complexity) without a prior ``synth score``.
    """
    from synth.filters.heuristics import HeuristicScores

    path = input_path(run_dir, source)
    score = score or ScoreConfig()
    with Job(run_dir, command, llm=llm, progress=progress, out_dir=out_dir,
             secrets=secrets, output=output) as job:
        box = None
        if score.tests:  # before any request: refuse early without isolation
            from synth.sandbox import Sandbox

            box = job.enter(Sandbox(sandbox or SandboxConfig()))
        # Read everything now: RUN/dataset may be the input, and it is replaced at the end.
        src = Source.dataset(path, materialize=True, secrets=job.secrets)
        stages: list[Stage] = [HeuristicScores()] if score.heuristics else []
        if score.complexity or score.quality or score.tests:
            stages += _llm_stages(job, score,
                                  job.executor.sandbox(box) if box is not None else None)
        if select is not None:
            stages.append(_select_stage(job, select))
            job.config |= as_dict(select)
        job.config |= as_dict(score)
        if box is not None:
            job.config |= as_dict(box.config) | {"sandbox_mode": box.mode}
        return job.run(src, stages)


def _select_stage(job: Job, cfg: SelectConfig) -> Stage:
    from synth.embed import Embedder, EmbeddingCache
    from synth.filters.select import DiversitySelect

    cache = job.enter(EmbeddingCache(job.run_dir))
    return DiversitySelect(cfg, job.executor.embedder(Embedder(cfg.embedder)), cache)


def _llm_stages(job: Job, score: ScoreConfig, box: Any) -> list[Stage]:
    from synth.filters.scoring import DeitaScores
    from synth.filters.testquality import TestQuality
    from synth.prompts import Prompts

    prompts = Prompts(score.templates)
    client = job.client()
    stages: list[Stage] = []
    which = [k for k in ("complexity", "quality") if getattr(score, k)]
    if which:
        stages.append(DeitaScores(client, prompts, which, top_logprobs=score.top_logprobs))
    if score.tests:
        stages.append(TestQuality(client, prompts, box, num_tests=score.num_tests,
                                  test_timeout_s=score.test_timeout_s,
                                  max_tokens=score.test_max_tokens))
    return stages


# -- decontam --------------------------------------------------------------------------------


def decontam(input_path: Path, run_dir: Path, benchmarks: Sequence[Any], *,
             methods: Sequence[str] = ("exact", "ngram"), threshold: float = 0.05,
             sizes: Sequence[int] = (4, 5), train_fields: Sequence[str] | None = None,
             test_fields: Sequence[str] | None = None,
             string_fields: Sequence[str] | None = None,
             allow: Sequence[str] | None = None,
             progress: Progress | None = None, out_dir: Path | None = None,
             secrets: SecretsConfig | None = None, output: Any = None) -> dict[str, Any]:
    """``synth decontam``: drop samples that contain benchmark problems.

    Writes the kept records to ``RUN/dataset`` (with a decontamination section in the card),
    dropped ones with their evidence to ``RUN/rejects.jsonl`` and the summary (also returned)
    to ``RUN/decontam.json``.
    """
    from synth.filters.decontam import (
        DEFAULT_ALLOW,
        ExactDecontam,
        NgramDecontam,
        summary,
    )
    from synth.filters.fields import SAMPLE_FIELDS
    from synth.filters.ngrams import parse_sizes

    train_fields = tuple(train_fields or SAMPLE_FIELDS)
    allow = tuple(DEFAULT_ALLOW if allow is None else allow)
    unknown = sorted(set(methods) - {"exact", "ngram"})
    if unknown or not methods:
        raise ConfigError(f"--method takes exact and/or ngram, got {','.join(methods)!r}")
    stages: list[Stage] = []
    if "exact" in methods:
        stages.append(ExactDecontam(benchmarks, fields=string_fields,
                                    train_fields=train_fields, allow=allow))
    if "ngram" in methods:
        stages.append(NgramDecontam(benchmarks, threshold=threshold, sizes=sizes,
                                    test_fields=test_fields, train_fields=train_fields))
    config: dict[str, Any] = {
        "methods": list(methods),
        "benchmarks": [{"name": b.name, "items": len(b.items), "source": b.source}
                       for b in benchmarks],
        "threshold": threshold, "ngram_sizes": list(parse_sizes(sizes)),
        "train_fields": list(train_fields), "test_fields": list(test_fields or []) or None,
        "string_fields": list(string_fields or []) or None, "allow": list(allow),
    }
    with Job(run_dir, "decontam", progress=progress,
             title="synth decontaminated dataset", out_dir=out_dir, secrets=secrets,
             output=output) as job:
        if job.executor.name != "local":  # the matching runs on record shards there
            from synth.executors.stages import ShardedFilter
            from synth.pipeline import Filter

            stages = [ShardedFilter(st, job.executor) if isinstance(st, Filter) else st
                      for st in stages]
        job.config |= config
        out: dict[str, Any] = {}

        def section(interrupted: bool) -> None:
            out.update(summary(job.ctx.stats.to_dict(), stages, job.config))
            out["kept"] = job.store.count_results("kept")
            # Before the outputs: the card's decontamination section is read from this file.
            write_json(job.out_dir / "decontam.json", out)

        job.before_outputs(section)
        job.run(Source.dataset(Path(input_path), materialize=True, secrets=job.secrets), stages)
    return out
