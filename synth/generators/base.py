"""Tasks and the stage that runs a task's prompts through the LLM.

A task is two pure functions around one LLM call (the shape of distilabel's tasks):
``messages(record)`` renders the task's templates, ``parse(text, record)`` turns the raw reply
into a filled record or a :class:`Reject`. The raw reply is cached before parsing, so a changed
parser reruns over cached text without paying for the LLM again.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from typing import Any

from synth.generators.parsing import Reject
from synth.llm.client import LLMClient, LLMRequestFailed, SamplingParams
from synth.pipeline import AsyncStage
from synth.prompts import Prompts
from synth.records import Record
from synth.seeds.languages import fence_tag

log = logging.getLogger("synth")

ANSWER_FORMATS = ("json", "sections")


class Task(ABC):
    """One kind of instruction sample: how to prompt for it and how to read the reply.

    Attributes:
        name: the task name (``codegen``...), also the record's ``task`` field.
        template: the template directory under ``prompts/templates``.
        schema: JSON schema of the reply when the endpoint constrains output to JSON.
    """

    name: str
    template: str
    schema: dict[str, Any] | None = None
    description: str = ""

    def variables(self, record: Record, answer_format: str) -> dict[str, Any]:
        """Template variables for ``record``."""
        return {"seed": record.seed, "lang": record.lang, "fence_lang": fence_tag(record.lang),
                "answer_format": answer_format}

    def messages(self, record: Record, prompts: Prompts,
                 answer_format: str) -> list[dict[str, str]]:
        """The chat messages that ask the LLM for this task's sample."""
        return prompts.messages(self.template, **self.variables(record, answer_format))

    def response_format(self, dialect: str) -> dict[str, Any] | None:
        """The ``response_format`` that constrains the reply to :attr:`schema`.

        ``dialect`` is ``json_schema`` (OpenAI, vLLM) or ``json_object`` (llama-cpp-python,
        which takes the schema beside ``type: json_object``).
        """
        if self.schema is None:
            return None
        if dialect == "json_object":
            return {"type": "json_object", "schema": self.schema}
        return {"type": "json_schema",
                "json_schema": {"name": self.name, "schema": self.schema, "strict": True}}

    @abstractmethod
    def parse(self, text: str, record: Record, answer_format: str) -> Record | Reject:
        """Fill ``record`` from the reply ``text`` or say why it cannot be used."""


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
    def from_option(cls, option: str, task: Task,
                    first_dialect: str = "json_schema") -> FormatState:
        if task.schema is None or option == "sections":
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


def _rejects_response_format(exc: LLMRequestFailed) -> bool:
    text = exc.detail.lower()
    return exc.reason == "llm_bad_request" and "response_format" in text


class TaskStage(AsyncStage):
    """Runs ``task`` for every record: prompt → LLM → parse, with ``window`` records in flight.

    Reads seed records made for the task (``Record.for_task``); yields them with instruction and
    response filled. Rejects: ``llm_error``/``llm_bad_request`` (request failed), ``truncated``
    (finish_reason ``length``), ``finish_<reason>`` (any other non-``stop`` finish), and the
    task parser's ``parse_*`` reasons. Each record's meta keeps the rendered messages and the raw
    reply, so a reject can be read without rerunning anything.
    """

    def __init__(self, task: Task, client: LLMClient, prompts: Prompts, params: SamplingParams,
                 answer_format: str = "auto", window: int | None = None,
                 first_dialect: str = "json_schema") -> None:
        super().__init__(window or max(2 * client.config.concurrency, 1))
        self.name = f"generate:{task.name}"
        self.task = task
        self.client = client
        self.prompts = prompts
        self.params = params
        self.format = FormatState.from_option(answer_format, task, first_dialect)
        self.template_hash = prompts.template_hash(task.template)

    async def process(self, record: Record) -> Record | None:
        dialect = self.format.current
        fmt = self.format.answer_format
        messages = self.task.messages(record, self.prompts, fmt)
        params = self.params
        if fmt == "json":
            params = replace(params, response_format=self.task.response_format(dialect))
        record.meta.update(model=self.client.model, template=self.task.template,
                           template_hash=self.template_hash, answer_format=fmt)
        try:
            completion = await self.client.complete(messages, params,
                                                    sample=int(record.meta.get("sample", 0)))
        except LLMRequestFailed as exc:
            if (dialect != "sections" and _rejects_response_format(exc)
                    and self.format.fall_back(dialect)):
                return await self.process(record)
            record.meta["llm_error"] = exc.detail
            self.reject(record, exc.reason)
            return None
        record.meta["raw"] = {"messages": messages, "output": completion.text,
                              "finish_reason": completion.finish_reason}
        if completion.finish_reason != "stop":
            reason = "truncated" if completion.finish_reason == "length" else (
                f"finish_{completion.finish_reason}")
            self.reject(record, reason)
            return None
        result = self.task.parse(completion.text, record, fmt)
        if isinstance(result, Reject):
            record.meta["parse_error"] = result.detail
            self.reject(record, result.reason)
            return None
        return result
