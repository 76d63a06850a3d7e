"""Tasks: how to prompt for one kind of instruction sample, how to read the reply, how to judge it.

A task is pure functions around LLM calls (the shape of distilabel's tasks): ``messages(record)``
renders the generator's templates, ``parse(text, record)`` turns the raw reply into a filled
record or a :class:`Reject`, and ``judge_messages(record)`` renders the discriminator's
templates over the filled record. Raw replies are cached before parsing, so a changed parser
reruns over cached text without paying for the LLM again. The stage that drives these calls is
:class:`synth.generators.loop.TaskStage`.

Every task's sample is a CodeOcean instance (WaveCoder, Yu et al. 2023): ``task_name``,
``instruction``, ``information`` (optional extra input) and ``solution``, mapped onto the
record's ``instruction`` / ``input`` / ``response`` through the task's :class:`ReplyField` s.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

from synth.generators.judge import Rule, verdict_schema
from synth.generators.parsing import Reject, ReplyField, format_reply, parse_reply
from synth.generators.verify import fence_lang_of, norm_lang, test_style
from synth.prompts import JUDGE_PARTS, Prompts
from synth.records import Record
from synth.seeds.languages import fence_tag, language_name

log = logging.getLogger("synth")

ANSWER_FORMATS = ("json", "sections")

# CodeOcean's instance fields as generators write them; tasks pick the ones the model writes.
TASK_NAME = ReplyField("task_name", ("Task Name", "Task"), ("task", "name"), required=False)
INSTRUCTION = ReplyField("instruction", ("Instruction",), ("problem", "question", "prompt"),
                         target="instruction", unfence=True)
INFORMATION = ReplyField("information", ("Information", "Input", "Code"), ("input", "context"),
                         target="input", required=False, unfence=True)
SOLUTION = ReplyField("solution", ("Solution", "Answer", "Response", "Output"),
                      ("answer", "response", "output"), target="response")
# The solution's own tests (SelfCodeAlign / KodCode): kept in meta['tests'], run by the loop's
# verify step. Optional when reading: a reply without tests is parsed, then fails verification
# with a critique asking for them.
TESTS = ReplyField("tests", ("Tests", "Test Cases", "Unit Tests", "Test"),
                   ("test", "unit_tests", "unit tests", "test_cases", "test cases"),
                   required=False)


@dataclass(frozen=True)
class Examples:
    """Few-shot cases shown to the generator: whole good and bad cases from the memory."""

    good: tuple[dict[str, Any], ...] = ()
    bad: tuple[dict[str, Any], ...] = ()

    def ids(self) -> dict[str, list[str]]:
        return {"good": [c["id"] for c in self.good], "bad": [c["id"] for c in self.bad]}


NO_EXAMPLES = Examples()


def schema_of(fields: tuple[ReplyField, ...]) -> dict[str, Any]:
    """JSON schema of a generator reply: every field a string, all present (strict mode)."""
    return {"type": "object", "properties": {f.key: {"type": "string"} for f in fields},
            "required": [f.key for f in fields], "additionalProperties": False}


def response_format(schema: dict[str, Any] | None, name: str,
                    dialect: str) -> dict[str, Any] | None:
    """The ``response_format`` that constrains a reply to ``schema``.

    ``dialect`` is ``json_schema`` (OpenAI, vLLM) or ``json_object`` (llama-cpp-python, which
    takes the schema beside ``type: json_object``). OpenAI's strict mode refuses ``maxLength``,
    so it is dropped there; llama.cpp's grammar honours it.
    """
    if schema is None:
        return None
    if dialect == "json_object":
        return {"type": "json_object", "schema": schema}
    return {"type": "json_schema",
            "json_schema": {"name": name, "schema": _without(schema, "maxLength"),
                            "strict": True}}


def _without(value: Any, key: str) -> Any:
    if isinstance(value, dict):
        return {k: _without(v, key) for k, v in value.items() if k != key}
    if isinstance(value, list):
        return [_without(v, key) for v in value]
    return value


class Task:
    """One kind of instruction sample: how to prompt for it, read the reply and judge it.

    Attributes:
        name: the task name (``codegen``...), also the record's ``task`` field.
        template: the template directory under ``prompts/templates``.
        task_name: CodeOcean's human name of the task ("code summarization").
        fields: what the generator writes, in the order the templates ask for it.
        rules: the discriminator's checklist.
        description: what the samples are, for the dataset card.
    """

    name: str
    template: str
    task_name: str
    fields: tuple[ReplyField, ...]
    rules: tuple[Rule, ...]
    description: str = ""
    #: the task writes code with tests (its fields include ``tests``): the loop verifies it
    verifiable: bool = False
    #: a verifiable sample without code fails verification (else it passes through unverified)
    code_required: bool = True
    #: an extra demand on the tests (repair: one must fail on the buggy code)
    test_note: str = ""

    @functools.cached_property
    def schema(self) -> dict[str, Any] | None:
        """JSON schema of the generator's reply (None: this task only speaks sections)."""
        return schema_of(self.fields)

    @functools.cached_property
    def judge_schema(self) -> dict[str, Any]:
        """JSON schema of the discriminator's reply."""
        return verdict_schema(self.rules)

    def response_format(self, dialect: str) -> dict[str, Any] | None:
        return response_format(self.schema, self.name, dialect)

    # -- generator ---------------------------------------------------------------------------

    def prepare(self, record: Record, seed: int) -> Record | Reject:
        """Per-record choices made once, before the first prompt (seeded by ``seed`` and the
        record's id, so they survive reruns): e.g. translate's target language."""
        return record

    def variables(self, record: Record, answer_format: str) -> dict[str, Any]:
        """Template variables for ``record``, shared by the generator and the discriminator."""
        test_lang = self.test_lang(record)
        return {"seed": record.seed, "lang": record.lang, "lang_name": language_name(record.lang),
                "fence_lang": fence_tag(record.lang), "answer_format": answer_format,
                "task_name": self.task_name, "test_lang_name": language_name(test_lang),
                "test_style": test_style(test_lang), "test_note": self.test_note}

    def test_lang(self, record: Record) -> str:
        """The language the prompt asks the code and tests in (fixed before any reply)."""
        return norm_lang(record.lang) or "python"

    def code_lang(self, record: Record) -> str:
        """The language the sample's code and tests are written in: the solution's fence tag
        once there is one, else the record's language (Python when unknown)."""
        return fence_lang_of(record.response) or norm_lang(record.lang) or "python"

    def messages(self, record: Record, prompts: Prompts, answer_format: str,
                 examples: Examples = NO_EXAMPLES) -> list[dict[str, str]]:
        """The chat messages that ask the LLM for this task's sample."""
        shots = {
            "good": [{"input": c["input"], "output": self.format_instance(c["instance"],
                                                                        answer_format)}
                     for c in examples.good],
            "bad": [{"input": c["input"], "output": self.format_instance(c["instance"],
                                                                       answer_format),
                     "problems": c.get("problems", [])} for c in examples.bad],
        }
        return prompts.messages(self.template, examples=shots,
                                **self.variables(record, answer_format))

    def parse(self, text: str, record: Record, answer_format: str) -> Record | Reject:
        """Fill ``record`` from the reply ``text`` or say why it cannot be used."""
        values = parse_reply(text, self.fields, answer_format)
        if isinstance(values, Reject):
            return values
        record.meta["instance"] = values
        for f in self.fields:
            if f.target is not None:
                setattr(record, f.target, values[f.key])
        if "tests" in values:
            record.meta["tests"] = values["tests"]
        return self.check(record)

    def check(self, record: Record) -> Record | Reject:
        """Cheap rule-based checks of a parsed sample, before any discriminator call."""
        return record

    def instance(self, record: Record) -> dict[str, str]:
        """The generator-written fields of a filled record (for few-shot cases)."""
        out = dict(record.meta.get("instance") or {})
        for f in self.fields:
            if f.target is not None:
                out[f.key] = getattr(record, f.target)
            out.setdefault(f.key, self.task_name if f.key == "task_name" else "")
        return {f.key: out[f.key] for f in self.fields}

    def format_instance(self, instance: dict[str, str], answer_format: str) -> str:
        return format_reply(instance, self.fields, answer_format)

    def blank(self, record: Record) -> Record:
        """``record`` without its data (seed code, original instruction): what the templates'
        own wording is checked against (a reply parroting the request is no answer)."""
        meta = {k: v for k, v in record.meta.items() if k == "target_lang"}
        return Record(id=record.id, task=record.task, lang=record.lang, meta=meta)

    def example_input(self, record: Record) -> str:
        """What the generator was given for ``record``, as a few-shot case shows it."""
        fence = "```"
        while fence in record.seed:
            fence += "`"
        return f"{fence}{fence_tag(record.lang)}\n{record.seed}\n{fence}"

    # -- discriminator -----------------------------------------------------------------------

    def judge_messages(self, record: Record, prompts: Prompts,
                       answer_format: str) -> list[dict[str, str]]:
        """The chat messages that ask the discriminator to check ``record`` against the rules."""
        return prompts.messages(
            self.template, parts=JUDGE_PARTS, instruction=record.instruction,
            information=record.input, solution=record.response,
            rules=[{"id": r.id, "text": r.text} for r in self.rules],
            **self.variables(record, answer_format))


# How a reply is asked for, in the order ``auto`` tries them: OpenAI-style JSON schema, then
# llama-cpp-python's schema-in-json_object, then Magicoder's sections (no server support needed).
DIALECTS = ("json_schema", "json_object", "sections")


@dataclass
class FormatState:
    """The reply dialect in use, moving down the allowed :data:`DIALECTS` when the endpoint
    refuses a ``response_format``: ``auto`` allows all three, ``json`` the two JSON dialects,
    ``sections`` only sections."""

    allowed: tuple[str, ...]
    current: str

    @classmethod
    def from_option(cls, option: str, schema: dict[str, Any] | None,
                    first_dialect: str = "json_schema") -> FormatState:
        if schema is None or option == "sections":
            return cls(("sections",), "sections")
        allowed = DIALECTS[DIALECTS.index(first_dialect):]
        if option == "json":
            allowed = tuple(d for d in allowed if d != "sections")
        return cls(allowed, first_dialect)

    @property
    def answer_format(self) -> str:
        """What the templates and parser see: ``json`` or ``sections``."""
        return "sections" if self.current == "sections" else "json"

    def fall_back(self, failed: str) -> bool:
        """Move past ``failed``; False when nothing is left to try.

        Many requests in flight may be refused at once: only the first moves the state.
        """
        if self.current != failed:
            return True
        rest = self.allowed[self.allowed.index(failed) + 1:]
        if not rest:
            return False
        self.current = rest[0]
        log.warning("the endpoint refused response_format %s; trying %s", failed, self.current)
        return True
