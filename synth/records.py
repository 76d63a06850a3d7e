"""The one record type that every stage reads and writes."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import orjson


def content_id(*parts: str | int) -> str:
    """A short stable id from content: the same parts always give the same id.

    Parts are joined with a NUL separator so ``("ab", "c")`` and ``("a", "bc")`` differ.
    """
    h = hashlib.sha256("\x00".join(str(p) for p in parts).encode("utf-8", "surrogatepass"))
    return h.hexdigest()[:20]


def sorted_json(value: Any, default: Callable[[Any], Any] | None = None) -> str:
    """Compact JSON text with sorted keys, a NaN written as null (orjson; json.dumps for the
    lone surrogate orjson refuses). ``default`` turns what JSON cannot hold into what it can."""
    try:
        return orjson.dumps(value, default=default, option=orjson.OPT_SORT_KEYS
                            | orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY).decode()
    except TypeError:
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=default)


@dataclass(slots=True)
class Record:
    """One sample on its way from a seed to a dataset row.

    Attributes:
        id: content hash of the seed (and, once a task is applied, of the task and sample
            index), so reruns over the same inputs produce the same ids.
        seed: the seed code the sample was made from (empty for records read from an
            existing instruction dataset).
        task: the task that produced instruction/response (``codegen``, ...), empty for seeds.
        lang: programming language of the seed or of the sample.
        instruction: the user side of the sample.
        input: optional extra input shown with the instruction (CodeOcean's "information").
        response: the assistant side of the sample.
        scores: named numeric scores; a score that could not be computed is NaN, never absent.
        meta: everything else: ``provenance`` (source, line span, file sha, license),
            ``index`` (position in the input, used to order outputs deterministically),
            ``model``, ``template`` / ``template_hash``, raw LLM I/O, rounds, reject reasons.
    """

    id: str
    seed: str = ""
    task: str = ""
    lang: str = ""
    instruction: str = ""
    input: str = ""
    response: str = ""
    scores: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_seed(cls, text: str, lang: str, provenance: dict[str, Any]) -> Record:
        """A seed record; its id depends only on the snippet text."""
        return cls(id=content_id("seed", text), seed=text, lang=lang,
                   meta={"provenance": dict(provenance)})

    def for_task(self, task: str, sample: int = 0) -> Record:
        """A fresh record for applying ``task`` to this seed (sample ``sample`` of several)."""
        meta = {k: v for k, v in self.meta.items() if k in ("provenance", "index")}
        meta["seed_id"] = self.id
        meta["sample"] = sample
        return replace(self, id=content_id(task, self.id, sample), task=task, instruction="",
                       input="", response="", scores={}, meta=meta)

    def to_dict(self) -> dict[str, Any]:
        """The record as a dict that shares nothing mutable with it (a deep copy)."""
        return asdict(self)

    def to_json(self) -> str:
        """Standard JSON: a NaN (a score, or anywhere in meta) is written as null (SQLite's
        JSON functions and most tools reject the ``NaN`` literal) and a score read back as NaN
        by :meth:`from_dict`. Serialized straight from the fields: no deep copy on the way
        (this runs once per stored record). ``meta["raw"]``, the last generator round's
        exchange, is written once: as a reference to that round (:data:`RAW_REF`)."""
        data: dict[str, Any] = {
            "id": self.id, "seed": self.seed, "task": self.task, "lang": self.lang,
            "instruction": self.instruction, "input": self.input, "response": self.response,
            "scores": self.scores, "meta": _raw_as_ref(self.meta)}
        try:
            return orjson.dumps(data, option=orjson.OPT_SORT_KEYS
                                | orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY).decode()
        except TypeError:  # a lone surrogate orjson refuses, or a non-JSON value in meta
            data = asdict(replace(self, meta=_raw_as_ref(self.meta)))  # (before the copy)
            data["scores"] = {k: None if isinstance(v, float) and math.isnan(v) else v
                              for k, v in self.scores.items()}
            return json.dumps(data, ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        values = {k: v for k, v in data.items() if k in _FIELDS}
        if isinstance(values.get("scores"), dict):
            values["scores"] = {k: math.nan if v is None else v
                                for k, v in values["scores"].items()}
        meta = values.get("meta")
        if isinstance(meta, dict) and meta.get("raw") == RAW_REF:
            meta["raw"] = _last_exchange(meta)
        return cls(**values)

    @classmethod
    def from_json(cls, text: str | bytes) -> Record:
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError:  # NaN literals or lone surrogates of older writers
            data = json.loads(text)
        return cls.from_dict(data)


_FIELDS = frozenset(f.name for f in fields(Record))

#: What a stored record holds in place of ``meta["raw"]`` when that is the exchange of its last
#: generator round (``meta["rounds"][i]["generator"]``, as the generate loop sets it): the
#: same prompt and reply are not stored twice (they were a third of a stored record's bytes).
RAW_REF = {"$ref": "rounds.generator"}


def _last_exchange(meta: dict[str, Any]) -> Any:
    """The exchange of the last round that asked the generator (None if none did)."""
    rounds = meta.get("rounds")
    for entry in reversed(rounds if isinstance(rounds, list) else []):
        if isinstance(entry, dict) and "generator" in entry:
            return entry["generator"]
    return None


def _raw_as_ref(meta: dict[str, Any]) -> dict[str, Any]:
    raw = meta.get("raw")
    if raw is None or raw is not _last_exchange(meta):
        return meta
    return {**meta, "raw": RAW_REF}
