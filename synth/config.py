"""Configuration: frozen dataclasses resolved with precedence CLI > synth.toml > defaults.

``synth.toml`` (in the working directory, or given with ``--config``) has one table per
section, named like the dataclasses below::

    [llm]
    base_url = "http://127.0.0.1:8000/v1"
    model = "my-model"
    concurrency = 32

    [generate]
    max_tokens = 1024

Secrets never live here: the API key is read from ``OPENAI_API_KEY`` (or ``SYNTH_API_KEY``) by
the LLM client when it is built, and no config object holds it, so writing a resolved config
to the run directory can never leak it.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

from synth.errors import ConfigError

T = TypeVar("T")

EMBEDDED_MODEL = "smollm2-135m-instruct"


@dataclass(frozen=True)
class LLMConfig:
    """How to reach the endpoint and how hard to push it.

    ``base_url`` None means: use ``OPENAI_BASE_URL`` if set, else start the embedded server.
    """

    base_url: str | None = None
    model: str | None = None
    concurrency: int = 8
    timeout_s: float = 600.0
    max_attempts: int = 6
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    rpm: int | None = None
    tpm: int | None = None
    # Admission (synth.llm.limits / synth.llm.cost): AIMD window up to `concurrency`, prices
    # in USD per 1M tokens (else the built-in table), budgets over the whole run directory.
    adaptive: bool = True
    price_in: float | None = None
    price_out: float | None = None
    budget_usd: float | None = None
    budget_tokens: int | None = None
    # Batch API file limits (the API's own; lower them to test splitting or for a proxy).
    batch_max_requests: int = 50_000
    batch_max_bytes: int = 200 * 1024 * 1024
    #: How long requests wait for an endpoint that went down mid-run before the run stops.
    max_outage_s: float = 300.0

    def validate(self) -> None:
        _positive("concurrency", self.concurrency)
        for name in ("budget_usd", "budget_tokens"):
            value = getattr(self, name)
            if value is not None:
                _positive(name, value)
        for name in ("price_in", "price_out"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 0, got {value}")
        _positive("max_attempts", self.max_attempts)
        _positive("timeout_s", self.timeout_s)
        _positive("max_outage_s", self.max_outage_s)
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None:
                _positive(name, value)


@dataclass(frozen=True)
class GenerateConfig:
    """One ``synth generate`` run.

    ``task`` is a task name or ``mix`` (``weights``: ``codegen=0.5,summarize=0.2,...``).
    ``to`` is translate's target language(s); ``input`` the instruction dataset ``evol`` reads.
    The generator–discriminator loop runs ``max_rounds`` rounds per record unless
    ``discriminator`` is off; its example memory keeps ``memory_size`` cases per task and kind
    (``memory_policy`` ``last`` or ``best``), shows ``few_shot`` of each kind per prompt, and
    starts with the cases in the ``memory_seed`` files.
    """

    task: str = "codegen"
    num: int | None = None
    samples_per_seed: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 1024
    answer_format: str = "auto"
    seed: int = 0
    templates: str | None = None
    weights: str | None = None
    to: str | None = None
    input: str | None = None
    discriminator: bool = True
    max_rounds: int = 2
    memory_size: int = 16
    memory_policy: str = "last"
    few_shot: int = 1
    memory_seed: tuple[str, ...] = ()
    # Execution verification of code tasks (synth.generators.verifystep). verify None: require
    # on a real endpoint, score on the embedded model (it rarely writes passing code).
    verify: str | None = None
    responses: int = 1
    mutants: int = 10
    oracle: bool = True
    test_timeout_s: float = 5.0

    def validate(self) -> None:
        if self.num is not None:
            _positive("num", self.num)
        _positive("samples_per_seed", self.samples_per_seed)
        _positive("max_tokens", self.max_tokens)
        _positive("max_rounds", self.max_rounds)
        if self.memory_size < 0:
            raise ConfigError(f"--memory-size must not be negative, got {self.memory_size}")
        if self.few_shot < 0:
            raise ConfigError(f"--few-shot must not be negative, got {self.few_shot}")
        if self.memory_policy not in ("last", "best"):
            raise ConfigError(
                f"--memory-policy must be last or best, got {self.memory_policy!r}")
        if self.task == "evol" and not self.input:
            raise ConfigError("--task evol reads an instruction dataset: pass --input PATH "
                              "(jsonl, parquet or a dataset directory)")
        if self.input and self.task != "evol":
            raise ConfigError("--input is read by --task evol only; seed tasks read --seeds")
        if not 0.0 <= self.temperature <= 2.0:
            raise ConfigError(f"--temperature must be between 0 and 2, got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise ConfigError(f"--top-p must be in (0, 1], got {self.top_p}")
        if self.answer_format not in ("auto", "json", "sections"):
            raise ConfigError(
                f"--answer-format must be auto, json or sections, got {self.answer_format!r}")
        if self.verify is not None and self.verify not in ("require", "score", "off"):
            raise ConfigError(f"--verify must be require, score or off, got {self.verify!r}")
        _positive("responses", self.responses)
        if self.mutants < 0:
            raise ConfigError(f"--mutants must not be negative, got {self.mutants}")
        _positive("test_timeout_s", self.test_timeout_s)


@dataclass(frozen=True)
class SeedsConfig:
    """``synth seeds extract``: which units become seeds and which of them are kept.

    ``mode`` is ``window`` (Magicoder: random runs of ``min_lines``..``max_lines`` consecutive
    lines), ``function`` (whole functions/methods/classes of ``fn_min_lines``..``fn_max_lines``
    lines) or ``file`` (whole files of at most ``max_chars`` characters). Every unit then passes
    the quality gates (``min_chars``, ``max_chars``, ``max_line_chars``, ``max_comment_fraction``,
    ``min_alnum_fraction``, generated markers), exact dedup and, when ``near_dedup`` > 0 (0.85 is
    the usual choice), MinHash near-dedup at that Jaccard threshold. ``quota`` caps seeds per
    language (a uniform sample by ``seed``); a ``*`` entry caps every language not named.
    """

    per_file: int = 1
    min_lines: int = 1
    max_lines: int = 15
    seed: int = 0
    max_file_bytes: int = 1_000_000
    mode: str = "window"
    fn_min_lines: int = 3
    fn_max_lines: int = 200
    require_doc: bool = False
    min_chars: int = 10
    max_chars: int = 20_000
    max_line_chars: int = 400
    max_comment_fraction: float = 0.8
    min_alnum_fraction: float = 0.25
    near_dedup: float = 0.0
    quota: dict[str, int] = dataclasses.field(default_factory=dict)
    # Secrets and personal data in seeds (synth.filters.secrets): redact, drop or off, and path
    # globs never scanned. Kept in the manifest so ``seeds refresh`` treats new files the same.
    secrets: str = "redact"
    secrets_allow: tuple[str, ...] = ()

    def validate(self) -> None:
        for name in ("per_file", "min_lines", "max_lines", "max_file_bytes", "fn_min_lines",
                     "fn_max_lines", "max_chars", "max_line_chars"):
            _positive(name, getattr(self, name))
        if self.min_lines > self.max_lines:
            raise ConfigError(
                f"--min-lines ({self.min_lines}) must not exceed --max-lines ({self.max_lines})")
        if self.fn_min_lines > self.fn_max_lines:
            raise ConfigError(f"--fn-min-lines ({self.fn_min_lines}) must not exceed "
                              f"--fn-max-lines ({self.fn_max_lines})")
        if self.mode not in ("window", "function", "file"):
            raise ConfigError(f"--mode must be window, function or file, got {self.mode!r}")
        for name in ("max_comment_fraction", "min_alnum_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"--{name.replace('_', '-')} must be between 0 and 1")
        if not 0.0 <= self.near_dedup < 1.0:
            raise ConfigError(f"--near-dedup must be in [0, 1) (0 turns it off), "
                              f"got {self.near_dedup}")
        for lang, cap in self.quota.items():
            if not isinstance(cap, int) or cap < 0:
                raise ConfigError(f"--quota {lang}={cap}: the cap must be a whole number >= 0")
        _check_secrets_mode(self.secrets)


def _check_secrets_mode(mode: str) -> None:
    if mode not in ("redact", "drop", "off"):
        raise ConfigError(f"--secrets must be redact, drop or off, got {mode!r}")


@dataclass(frozen=True)
class SecretsConfig:
    """Secrets and personal data in what is read, sent and written; section ``[secrets]``.

    ``mode``: ``redact`` (typed placeholders), ``drop`` (leave out seeds/rows with a finding;
    LLM replies are always redacted: the cache must never hold a finding) or ``off``.
    ``allow``: path globs whose rows/seeds are never scanned (test vectors, fixtures).
    """

    mode: str = "redact"
    allow: tuple[str, ...] = ()

    def validate(self) -> None:
        _check_secrets_mode(self.mode)


def parse_quota(items: list[str] | None) -> dict[str, int] | None:
    """``["python=40000", "rust=5000"]`` → ``{"python": 40000, "rust": 5000}``."""
    if not items:
        return None
    out: dict[str, int] = {}
    for item in items:
        lang, sep, num = item.partition("=")
        if not sep or not lang.strip() or not num.strip().isdigit():
            raise ConfigError(f"--quota takes LANG=N (e.g. python=40000), got {item!r}")
        out[lang.strip().lower()] = int(num)
    return out


def _positive(name: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"--{name.replace('_', '-')} must be positive, got {value}")


def load_toml(path: Path | None) -> dict[str, Any]:
    """The contents of ``synth.toml`` (explicit path, else ./synth.toml if present, else {})."""
    if path is None:
        path = Path("synth.toml")
        if not path.exists():
            return {}
    elif not path.exists():
        raise ConfigError(f"config file {path} does not exist")
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc})") from exc


def resolve(cls: type[T], section: str, toml: dict[str, Any], cli: dict[str, Any]) -> T:
    """Build ``cls`` from defaults, then ``[section]`` of synth.toml, then CLI values not None."""
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    table = toml.get(section, {})
    if not isinstance(table, dict):
        raise ConfigError(f"synth.toml: [{section}] must be a table")
    unknown = set(table) - names
    if unknown:
        keys = ", ".join(sorted(unknown))
        raise ConfigError(f"synth.toml: unknown key(s) in [{section}]: {keys}")
    values = dict(table)
    values.update({k: v for k, v in cli.items() if v is not None and k in names})
    try:
        obj = cls(**values)
    except TypeError as exc:
        raise ConfigError(f"[{section}]: {exc}") from exc
    validate = getattr(obj, "validate", None)
    if validate is not None:
        validate()
    return obj


def env_base_url() -> str | None:
    """``OPENAI_BASE_URL`` if the user set one."""
    return os.environ.get("OPENAI_BASE_URL") or None


def api_key() -> str:
    """The API key from the environment; local servers accept any placeholder."""
    return os.environ.get("SYNTH_API_KEY") or os.environ.get("OPENAI_API_KEY") or "sk-no-key"


def as_dict(*configs: Any) -> dict[str, Any]:
    """Configs as a JSON-able dict keyed by class name (for config.json; holds no secret)."""
    return {type(c).__name__: dataclasses.asdict(c) for c in configs}


@dataclass(frozen=True)
class CoresetConfig:
    """``synth seeds select`` / the ``[coreset]`` step: KCenterGreedy over seed embeddings.

    ``k`` seeds are picked (0: no coreset step in ``synth run``); ``embedder`` None is the
    packaged all-MiniLM-L6-v2; ``device`` None is CPU/numpy.
    """

    k: int = 0
    embedder: str | None = None
    metric: str = "cosine"
    seed: int = 0
    device: str | None = None
    batch_size: int = 64
    max_seq_length: int | None = None

    def validate(self) -> None:
        if self.k < 0:
            raise ConfigError(f"--k must be >= 0, got {self.k}")
        _positive("batch_size", self.batch_size)
        if self.metric not in ("cosine", "euclidean"):
            raise ConfigError(f"--metric must be cosine or euclidean, got {self.metric!r}")


@dataclass(frozen=True)
class SandboxConfig:
    """Limits for running generated code (``synth.sandbox``); section ``[sandbox]``.

    ``memory_mb`` bounds each process's address space and the total resident memory of the box;
    ``disk_mb`` is the size of the box's private ``/tmp`` (which holds the work directory) and the
    largest file a program may write. ``parallel`` 0 means one execution per CPU core.
    ``unsafe_exec`` allows running without namespaces when the machine has none: only rlimits
    and a clean environment then stand between the code and the host.
    """

    timeout_s: float = 10.0
    cpu_s: int | None = None
    memory_mb: int = 1024
    disk_mb: int = 64
    max_procs: int = 64
    max_files: int = 256
    max_output_bytes: int = 64 * 1024
    parallel: int = 0
    unsafe_exec: bool = False
    isolation: str = "auto"
    uid_base: int = 2_000_000_000

    def validate(self) -> None:
        for name in ("timeout_s", "memory_mb", "disk_mb", "max_procs", "max_files",
                     "max_output_bytes"):
            _positive(name, getattr(self, name))
        if self.cpu_s is not None:
            _positive("cpu_s", self.cpu_s)
        if self.parallel < 0:
            raise ConfigError(f"--parallel must be >= 0, got {self.parallel}")
        if self.isolation not in ("auto", "root", "userns"):
            raise ConfigError(
                f"sandbox isolation must be auto, root or userns, got {self.isolation!r}")


@dataclass(frozen=True)
class ScoreConfig:
    """``synth score`` / ``synth filter``: which scores to compute; section ``[score]``."""

    complexity: bool = False
    quality: bool = False
    tests: bool = False
    heuristics: bool = True
    num_tests: int = 12
    test_timeout_s: float = 5.0
    top_logprobs: int = 20
    test_max_tokens: int = 2048
    templates: str | None = None

    def validate(self) -> None:
        _positive("num_tests", self.num_tests)
        _positive("test_timeout_s", self.test_timeout_s)
        _positive("test_max_tokens", self.test_max_tokens)
        if not 1 <= self.top_logprobs <= 20:
            raise ConfigError(f"--top-logprobs must be in 1..20, got {self.top_logprobs}")


@dataclass(frozen=True)
class SelectConfig:
    """``synth select``: score-first diversity selection; section ``[select]``.

    ``complexity_key``/``quality_key`` None: ``complexity``/``quality`` when the records have
    them, else ``ast_complexity`` and no quality. ``quality_key`` "" ranks by the first alone.
    """

    budget: int | None = None
    tau: float = 0.9
    fusion: str = "product"
    alpha: float = 0.5
    complexity_key: str | None = None
    quality_key: str | None = None
    embed_response: bool = False
    embedder: str | None = None
    batch_size: int = 1024

    def validate(self) -> None:
        if self.budget is not None and self.budget < 0:
            raise ConfigError(f"--budget must be >= 0, got {self.budget}")
        if not -1.0 <= self.tau <= 1.0:
            raise ConfigError(f"--tau is a cosine similarity in [-1, 1], got {self.tau}")
        if self.fusion not in ("product", "weighted"):
            raise ConfigError(f"--fusion must be product or weighted, got {self.fusion!r}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"--alpha must be in [0, 1], got {self.alpha}")
        _positive("batch_size", self.batch_size)
