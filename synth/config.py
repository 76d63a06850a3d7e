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

    def validate(self) -> None:
        _positive("concurrency", self.concurrency)
        _positive("max_attempts", self.max_attempts)
        _positive("timeout_s", self.timeout_s)
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


@dataclass(frozen=True)
class SeedsConfig:
    """``synth seeds extract``: Magicoder-style windows of consecutive lines."""

    per_file: int = 1
    min_lines: int = 1
    max_lines: int = 15
    seed: int = 0
    max_file_bytes: int = 1_000_000

    def validate(self) -> None:
        _positive("per-file", self.per_file)
        _positive("min-lines", self.min_lines)
        _positive("max-lines", self.max_lines)
        if self.min_lines > self.max_lines:
            raise ConfigError(
                f"--min-lines ({self.min_lines}) must not exceed --max-lines ({self.max_lines})")


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
