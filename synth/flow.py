"""``synth run synth.toml``: the whole pipeline from one config file, resumable step by step.

Steps, in order, each a Job of :mod:`synth.jobs` on the same run directory (one request cache):

======== ========================== ===========================================
step     table                      output
======== ========================== ===========================================
seeds    ``[sources]``, ``[seeds]`` ``RUN/seeds.jsonl``
coreset  ``[coreset]`` (k > 0)      ``RUN/coreset.jsonl``
generate ``[generate]``, ``[llm]``  ``RUN/steps/generate/dataset``
score    ``[score]``, ``[sandbox]`` ``RUN/steps/score/dataset``
decontam ``[decontam]``             ``RUN/steps/decontam/dataset``
select   ``[select]``               ``RUN/steps/select/dataset``
output   ``[output]``               ``RUN/dataset`` (a copy of the last step's)
======== ========================== ===========================================

``coreset``, ``score``, ``decontam`` and ``select`` run when their table is present. Each step
has a fingerprint: sha256 of its settings and of the fingerprint of the step before it. A step
whose fingerprint matches the one recorded in ``RUN/steps/NAME/step.json`` when it last
finished is skipped; any other step runs, and so does everything after it. Settings that do not
change results (concurrency, rate limits, timeouts, the endpoint URL) are not fingerprinted. A
step that runs again pays for no answer already in the request cache, so a killed run resumes
where it was.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
import tomllib
from collections.abc import Callable
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
    resolve,
)
from synth.errors import ConfigError, Incomplete
from synth.store import write_json

TABLES = ("run", "sources", "seeds", "coreset", "generate", "llm", "score", "sandbox",
          "decontam", "select", "output", "secrets")
# LLM settings that change how fast answers come, not what they are.
_RUN_KNOBS = ("base_url", "concurrency", "timeout_s", "max_attempts", "backoff_base_s",
              "backoff_max_s", "rpm", "tpm")
STEP_FILE = "step.json"


@dataclasses.dataclass(frozen=True)
class DecontamConfig:
    """``[decontam]``: benchmarks and matching (see ``synth decontam --help``)."""

    benchmarks: tuple[str, ...] = ("humaneval",)
    fields: str | None = None
    methods: tuple[str, ...] = ("exact", "ngram")
    threshold: float = 0.05
    ngram: tuple[int, ...] = (4, 5)
    train_fields: tuple[str, ...] = ("instruction", "input", "response")
    test_fields: tuple[str, ...] | None = None
    allow: tuple[str, ...] = ()
    default_allow: bool = True


@dataclasses.dataclass(frozen=True)
class SourcesConfig:
    """``[sources]``: directories/files (default: the stdlib) and datasets of code."""

    paths: tuple[str, ...] = ()
    hf: tuple[str, ...] = ()
    hf_split: str = "train"
    hf_data_dir: str | None = None
    text_column: str = "content"
    lang_column: str | None = None


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """``[run]``: where the run lives."""

    run_dir: str = "runs/default"


@dataclasses.dataclass(frozen=True)
class OutputConfig:
    """``[output]``: where the final dataset is copied (default RUN/dataset) and how it is
    written (the keys of :class:`synth.io.formats.OutputConfig`, as the command flags)."""

    dir: str | None = None
    format: str = "raw"
    output_format: str = "parquet"
    system: str = ""
    license_allow: tuple[str, ...] = ()

    def validate(self) -> None:
        self.dataset().validate()

    def dataset(self, last: bool = True) -> Any:
        """The dataset writer's settings: the formats for the last step's dataset (the one
        copied out); earlier steps write raw parquet, which the next step reads back."""
        from synth.io.formats import OutputConfig as Formats

        if not last:
            return Formats(license_allow=tuple(self.license_allow))
        return Formats(format=self.format, output_format=self.output_format,
                       system=self.system, license_allow=tuple(self.license_allow))


def _tuples(cls: type[Any], table: dict[str, Any]) -> dict[str, Any]:
    """TOML lists → tuples for the tuple fields of ``cls`` (frozen dataclasses hash them)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: tuple(v) if isinstance(v, list) and k in names else v for k, v in table.items()}


def cli_overrides(sets: list[str] | None, **flags: Any) -> dict[str, dict[str, Any]]:
    """Command-line values as config tables: explicit flags, then ``--set TABLE.KEY=VALUE``."""
    out: dict[str, dict[str, Any]] = {}
    where = {"run_dir": ("run", "run_dir"), "base_url": ("llm", "base_url"),
             "model": ("llm", "model"), "concurrency": ("llm", "concurrency"),
             "num": ("generate", "num"), "budget": ("select", "budget")}
    for key, value in flags.items():
        if value is None:
            continue
        if key == "seed":
            for table in ("seeds", "coreset", "generate"):
                out.setdefault(table, {})["seed"] = value
            continue
        table, name = where[key]
        out.setdefault(table, {})[name] = str(value) if isinstance(value, Path) else value
    for item in sets or ():
        key, sep, raw = item.partition("=")
        table, dot, name = key.strip().partition(".")
        if not sep or not dot or not name:
            raise ConfigError(f"--set takes TABLE.KEY=VALUE (e.g. select.tau=0.8), got {item!r}")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw  # a bare word is a string
        out.setdefault(table, {})[name] = value
    return out


def _fingerprint(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclasses.dataclass
class Step:
    """One step of the flow: what it runs with and whether its output is current."""

    name: str
    settings: dict[str, Any]
    fingerprint: str
    out: Path
    done: bool = False

    def marker(self, run_dir: Path) -> Path:
        return run_dir / "steps" / self.name / STEP_FILE


@dataclasses.dataclass
class Plan:
    """What ``synth run`` would do: per step its state and the expected work."""

    run_dir: Path
    rows: list[tuple[str, str, str, str]]

    def render(self) -> str:
        head = ("step", "state", "records", "requests / tokens (upper bounds)")
        widths = [max(len(r[i]) for r in [head, *self.rows]) for i in range(4)]
        lines = [f"plan for {self.run_dir} (cached answers are never paid again):"]
        for row in [head, *self.rows]:
            lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
        return "\n".join(lines)


class Flow:
    """The pipeline of one config file. Build with :meth:`load`, then :meth:`plan` or
    :meth:`run`."""

    def __init__(self, toml: dict[str, Any]) -> None:
        unknown = sorted(set(toml) - set(TABLES))
        if unknown:
            raise ConfigError(f"unknown table(s) [{'], ['.join(unknown)}]; a synth run config "
                              f"has {', '.join(f'[{t}]' for t in TABLES)}")
        self.toml = toml
        self.run_dir = Path(resolve(RunConfig, "run", toml, {}).run_dir).expanduser()
        self.sources = resolve(SourcesConfig, "sources", {"sources": _tuples(
            SourcesConfig, toml.get("sources", {}))}, {})
        self.seeds = resolve(SeedsConfig, "seeds", toml, {})
        # [secrets]: one policy for every step; [seeds] secrets/secrets_allow still win there.
        self.secrets = resolve(SecretsConfig, "secrets", {"secrets": _tuples(
            SecretsConfig, toml.get("secrets", {}))}, {})
        seeds_table = toml.get("seeds", {})
        if "secrets" in toml and not ({"secrets", "secrets_allow"} & set(seeds_table)):
            self.seeds = dataclasses.replace(self.seeds, secrets=self.secrets.mode,
                                             secrets_allow=self.secrets.allow)
        self.coreset = resolve(CoresetConfig, "coreset", toml, {})
        self.generate = resolve(GenerateConfig, "generate", {"generate": _tuples(
            GenerateConfig, toml.get("generate", {}))}, {})
        self.llm = resolve(LLMConfig, "llm", toml, {})
        self.score = resolve(ScoreConfig, "score", toml, {}) if "score" in toml else None
        self.sandbox = resolve(SandboxConfig, "sandbox", toml, {})
        self.decontam = (resolve(DecontamConfig, "decontam", {"decontam": _tuples(
            DecontamConfig, toml["decontam"])}, {}) if "decontam" in toml else None)
        self.select = resolve(SelectConfig, "select", toml, {}) if "select" in toml else None
        self.output = resolve(OutputConfig, "output", {"output": _tuples(
            OutputConfig, toml.get("output", {}))}, {})
        if self.generate.task == "evol":
            raise ConfigError("synth run makes samples from seeds; run `synth generate --task "
                              "evol` on a dataset instead")
        self.steps = self._steps()

    @classmethod
    def load(cls, path: Path, overrides: dict[str, dict[str, Any]] | None = None) -> Flow:
        """The flow of ``path`` with ``overrides`` (tables of CLI values) applied on top."""
        if not Path(path).exists():
            raise ConfigError(f"config file {path} does not exist; `synth init {path}` writes "
                              "an example")
        try:
            with open(path, "rb") as fh:
                toml = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML ({exc})") from exc
        for table, values in (overrides or {}).items():
            if table not in toml and table in ("score", "decontam", "select", "coreset"):
                # a flag for a step the file does not have would switch the step on silently
                raise ConfigError(f"{path} has no [{table}] step to apply "
                                  f"{', '.join(values)} to")
            toml.setdefault(table, {}).update(values)
        return cls(toml)

    # -- steps -------------------------------------------------------------------------------

    def _steps(self) -> list[Step]:
        run, steps = self.run_dir, []
        prev = ""

        def add(name: str, settings: dict[str, Any], out: Path) -> None:
            nonlocal prev
            prev = _fingerprint(name, settings, prev)
            steps.append(Step(name, settings, prev, out))

        add("seeds", {"sources": dataclasses.asdict(self.sources),
                      "seeds": dataclasses.asdict(self.seeds)}, run / "seeds.jsonl")
        if self.coreset.k > 0:
            add("coreset", {k: v for k, v in dataclasses.asdict(self.coreset).items()
                            if k not in ("device", "batch_size")}, run / "coreset.jsonl")
        llm = {k: v for k, v in dataclasses.asdict(self.llm).items() if k not in _RUN_KNOBS}
        output = {k: v for k, v in dataclasses.asdict(self.output).items() if k != "dir"}
        gen: dict[str, Any] = {"generate": dataclasses.asdict(self.generate), "llm": llm,
                               "output": output}
        if self.generate.verify != "off":  # verdicts depend on the sandbox's limits
            gen["sandbox"] = dataclasses.asdict(self.sandbox)
        if "secrets" in self.toml:  # only then: fingerprints of configs without it stay put
            gen["secrets"] = dataclasses.asdict(self.secrets)
        add("generate", gen, run / "steps" / "generate")
        if self.score is not None:
            add("score", {"score": dataclasses.asdict(self.score), "llm": llm,
                          "sandbox": dataclasses.asdict(self.sandbox)}, run / "steps" / "score")
        if self.decontam is not None:
            add("decontam", dataclasses.asdict(self.decontam), run / "steps" / "decontam")
        if self.select is not None:
            add("select", dataclasses.asdict(self.select), run / "steps" / "select")
        for step in steps:
            step.done = self._recorded(step) == step.fingerprint and step.out.exists()
        return steps

    def _recorded(self, step: Step) -> str | None:
        marker = step.marker(self.run_dir)
        if not marker.exists():
            return None
        try:
            return str(json.loads(marker.read_text())["fingerprint"])
        except (json.JSONDecodeError, KeyError):
            return None

    def _stale(self) -> list[Step]:
        """Steps that will run: the first not done, and every step after it."""
        for i, step in enumerate(self.steps):
            if not step.done:
                return self.steps[i:]
        return []

    # -- plan --------------------------------------------------------------------------------

    def plan(self) -> Plan:
        """Steps, whether each is current or runs, expected records, requests and tokens."""
        stale = {s.name for s in self._stale()}
        rows = []
        seeds = _count(self.run_dir / "seeds.jsonl") if "seeds" not in stale else None
        records: int | None = seeds
        for step in self.steps:
            state = "runs" if step.name in stale else "done"
            work = "-"
            if step.name == "coreset":
                records = self.coreset.k if records is None else min(self.coreset.k, records)
            elif step.name == "generate":
                gen = self.generate
                n = gen.num if records is None else (
                    records if gen.num is None else min(gen.num, records))
                records = None if n is None else n * gen.samples_per_seed
                if records is not None:
                    per = 2 * gen.max_rounds if gen.discriminator else 1
                    work = (f"{records}..{records * per} requests, "
                            f"<= {records * per * gen.max_tokens} completion tokens")
            elif step.name == "score" and self.score is not None:
                per = int(self.score.complexity) + int(self.score.quality)
                tests = int(self.score.tests)
                if records is not None and (per or tests):
                    work = (f"{records * (per + tests)} requests, <= "
                            f"{records * (per * 4 + tests * self.score.test_max_tokens)} "
                            "completion tokens")
            elif step.name == "select" and self.select is not None:
                if records is not None and self.select.budget is not None:
                    records = min(records, self.select.budget)
            shown = "?" if records is None else str(records)
            if step.name == "decontam":
                shown = f"<= {shown}"
            rows.append((step.name, state, shown, work))
        rows.append(("output", "runs" if stale else "done", "", str(self._final_dir())))
        return Plan(self.run_dir, rows)

    def _final_dir(self) -> Path:
        return Path(self.output.dir) if self.output.dir else self.run_dir / "dataset"

    # -- run ---------------------------------------------------------------------------------

    def run(self, progress: Callable[[], Any] | None = None,
            echo: Callable[[str], None] = print) -> str:
        """Run every step that is not current; returns a one-line report per step."""
        from synth import jobs

        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_json(self.run_dir / "run.json", {"tables": self.toml, "steps": {
            s.name: s.fingerprint for s in self.steps}})
        stale = {s.name for s in self._stale()}
        dataset: Path | None = None
        lines = []
        for step in self.steps:
            if step.name not in stale:
                lines.append(f"{step.name}: done (unchanged)")
                if step.name not in ("seeds", "coreset"):
                    dataset = step.out / "dataset"
                continue
            echo(f"step {step.name} ...")
            t0 = time.monotonic()
            pg = progress() if progress is not None else None
            summary = self._run_step(step, jobs, dataset, pg)
            if step.name not in ("seeds", "coreset"):
                dataset = step.out / "dataset"
            write_json(step.marker(self.run_dir), {
                "fingerprint": step.fingerprint, "settings": step.settings,
                "summary": summary, "seconds": round(time.monotonic() - t0, 3)})
            lines.append(f"{step.name}: {summary}")
        assert dataset is not None  # generate always runs or is done
        final = self._final_dir()
        if stale or not final.exists():
            _copy_tree(dataset, final)
            if final == self.run_dir / "dataset":  # one card for the whole flow
                from synth.report import build_report, flow_facts

                flow_facts(self.run_dir, [(s.name, s.out) for s in self.steps
                                          if s.name not in ("seeds", "coreset")],
                           self.toml, f"synth {self.generate.task} dataset")
                build_report(self.run_dir)
        lines.append(f"dataset: {final}")
        return "\n".join(lines)

    def _run_step(self, step: Step, jobs: Any, dataset: Path | None, progress: Any) -> str:
        run = self.run_dir
        if step.name == "seeds":
            from synth.io.corpus import DatasetSource

            src = self.sources
            datasets = [DatasetSource(n, split=src.hf_split, text_column=src.text_column,
                                      lang_column=src.lang_column, data_dir=src.hf_data_dir)
                        for n in src.hf]
            stats = jobs.extract(run, [Path(p).expanduser() for p in src.paths], self.seeds,
                                 datasets)
            return f"{stats['seeds']} seeds"
        if step.name == "coreset":
            report = jobs.coreset(run, self.coreset)
            return f"{report.k} of {report.seeds} seeds (radius {report.radius:.4f})"
        if step.name == "generate":
            seeds = run / ("coreset.jsonl" if self.coreset.k > 0 else "seeds.jsonl")
            stats = jobs.generate(run, self.generate, self.llm, seeds, progress, step.out,
                                  sandbox=self.sandbox, secrets=self.secrets,
                                  output=self._output(step))
        elif step.name == "score":
            stats = jobs.filters(run, dataset, "score", self.score, None, self.llm,
                                 self.sandbox, progress, step.out, secrets=self.secrets,
                                 output=self._output(step))
        elif step.name == "decontam":
            stats = self._decontam(jobs, dataset, step.out, progress)
        else:
            stats = jobs.filters(run, dataset, "select", None, self.select, self.llm, None,
                                 progress, step.out, secrets=self.secrets,
                                 output=self._output(step))
        left = int(stats.get("left_to_retry", 0))
        if left:  # not done: no step.json, so the rerun resumes this step from the cache
            raise Incomplete(f"step {step.name}: {left} records left to retry after endpoint "
                             "failures; rerun the same command to resume")
        return (f"kept {stats['kept']}, rejected {stats['rejected']} "
                f"({stats.get('llm', {}).get('requests', 0)} requests)")

    def _output(self, step: Step | None) -> Any:
        """The output settings of ``step``'s dataset: the formats only for the last step."""
        return self.output.dataset(last=step is not None and step is self.steps[-1])

    def _decontam(self, jobs: Any, dataset: Path | None, out: Path,
                  progress: Any) -> dict[str, Any]:
        from synth.filters.benchmarks import load_benchmark
        from synth.filters.decontam import DEFAULT_ALLOW

        cfg = self.decontam
        assert cfg is not None and dataset is not None
        fields = tuple(f.strip() for f in cfg.fields.split(",")) if cfg.fields else None
        summary = jobs.decontam(
            dataset, self.run_dir, [load_benchmark(b, fields) for b in cfg.benchmarks],
            methods=cfg.methods, threshold=cfg.threshold, sizes=cfg.ngram,
            train_fields=cfg.train_fields, test_fields=cfg.test_fields,
            allow=(DEFAULT_ALLOW if cfg.default_allow else ()) + cfg.allow, progress=progress,
            out_dir=out, secrets=self.secrets,
            output=self._output(self.steps[-1] if out == self.steps[-1].out else None))
        dropped = sum(summary["dropped"].values())
        return {"kept": summary["kept"], "rejected": dropped, "llm": {}}


def _count(path: Path) -> int | None:
    if not path.exists():
        return None
    with open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip())


def _copy_tree(src: Path, dst: Path) -> None:
    """Replace ``dst`` by a copy of ``src`` (via a temporary sibling, then a rename)."""
    import os

    tmp = dst.with_name(dst.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(src, tmp)
    if dst.exists():
        shutil.rmtree(dst)
    os.replace(tmp, dst)


EXAMPLE = '''\
# synth run config: the whole pipeline, one table per step. `synth run THIS_FILE` runs it;
# `--dry-run` prints the plan. Rerunning resumes; a changed table reruns from its step on,
# and every LLM answer already paid for comes from RUN/store.sqlite. Command-line flags
# (--run-dir, --base-url, --model, --num, --budget, --seed, --set TABLE.KEY=VALUE) override
# this file. Secrets never go here: the API key is read from OPENAI_API_KEY / SYNTH_API_KEY.

[run]
run_dir = "runs/demo"           # the run directory: cache, every step's output, the dataset

[sources]
# paths = ["~/src/project"]     # directories, git repositories or files (default: the stdlib)
# hf = ["bigcode/the-stack-smol"]   # Hugging Face datasets or local parquet/jsonl files
# text_column = "content"

[seeds]
mode = "window"                 # window (Magicoder), function, or file
per_file = 1                    # windows per file
max_lines = 15
# near_dedup = 0.85             # MinHash near-dedup threshold (0: exact only)
# quota = { python = 40000, "*" = 5000 }

[coreset]
k = 60                          # KCenterGreedy picks k diverse seeds (remove the table: no coreset)
# embedder = "path/to/sentence-transformers-model"

[generate]
task = "codegen"                # codegen, summarize, translate, repair, or mix
# weights = "codegen=0.5,summarize=0.2,translate=0.2,repair=0.1"   # task = "mix"
num = 20                        # seeds used (sampled); remove for all
max_tokens = 512
discriminator = true            # check every sample against the task's rules
max_rounds = 2
# verify = "require"            # code samples run against their own tests ([sandbox] limits):
                                # require, score or off (default: require; score on the
                                # embedded model)
# responses = 1                 # solutions per instruction; the best passing one is kept
# mutants = 10                  # mutants per verified Python sample (scores.mutation_score)
# oracle = true                 # runnable Python seeds check translate and repair
# test_timeout_s = 5.0          # seconds per test

[llm]
# base_url = "http://127.0.0.1:8000/v1"   # default: $OPENAI_BASE_URL, else the embedded model
# model = "Qwen/Qwen2.5-Coder-7B-Instruct"
concurrency = 8

[score]                         # heuristic scores always; DEITA/XCoder on request
complexity = true
# quality = true
# tests = true                  # LLM-written unit tests run in the sandbox

[decontam]
benchmarks = ["humaneval"]      # or "NAME=path.jsonl"
threshold = 0.05

[select]
budget = 10                     # keep at most this many
tau = 0.9                       # cosine similarity ceiling between kept samples

[output]
# dir = "runs/demo/dataset"     # default RUN/dataset
# format = "messages"           # raw (default), alpaca, or messages (chat turns for TRL/axolotl)
# output_format = "parquet"     # parquet (+ a jsonl copy), jsonl, or arrow
# license_allow = ["permissive"]   # keep only seeds under these licences (SPDX ids)

[secrets]                       # keys, passwords, e-mail/IP addresses in seeds, rows, replies
mode = "redact"                 # redact (typed placeholders), drop or off
# allow = ["*/tests/fixtures/*"]  # path globs never scanned
'''


def write_example(path: Path, force: bool = False) -> None:
    """Write :data:`EXAMPLE` to ``path`` (refuses to overwrite unless ``force``)."""
    if path.exists() and not force:
        raise ConfigError(f"{path} exists; pass --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(EXAMPLE, encoding="utf-8")
