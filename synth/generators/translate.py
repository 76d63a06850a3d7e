"""``translate``: CodeOcean's code translation (WaveCoder, Yu et al. 2023).

Reads seed records; each gets a target language (``--to rust``, or drawn per record from a list,
seeded by ``--seed`` and the record id; never the seed's own language). The generator writes an
instruction asking to translate the seed into the target language and the translation. Writes
``instruction``, ``input`` = seed, ``response`` = translated code, ``meta['target_lang']``.
"""

from __future__ import annotations

import random
import re
from typing import Any

from synth.errors import ConfigError
from synth.generators.base import INSTRUCTION, TASK_NAME, TESTS, Task
from synth.generators.judge import Rule
from synth.generators.parsing import Reject, ReplyField, has_code_block
from synth.records import Record
from synth.seeds.languages import EXTENSIONS, fence_tag, language_name

DEFAULT_TARGETS = ("python", "javascript", "java", "cpp", "rust", "go")
LANGUAGES = frozenset(EXTENSIONS.values())
# Fence tags people write for a language, beyond the language's own name.
FENCE_ALIASES = {"py": "python", "python3": "python", "js": "javascript", "ts": "typescript",
                 "rs": "rust", "c++": "cpp", "cs": "csharp", "c#": "csharp", "golang": "go",
                 "sh": "shell", "bash": "shell", "kt": "kotlin", "rb": "ruby"}

TRANSLATION = ReplyField("solution", ("Solution", "Translation", "Translated Code", "Answer"),
                         ("translation", "translated_code", "code", "answer", "response"),
                         target="response")

RULES = (
    Rule("languages_named", "The instruction names both the source language and the target "
         "language."),
    Rule("target_language", "The solution is written in the target language."),
    Rule("behaviour_kept", "The solution does the same thing as the original code."),
    Rule("code_only", "The solution holds only code and comments inside the code, with no "
         "explanation outside the code."),
    Rule("imports_present", "The solution imports or includes every library it uses."),
)


def parse_targets(option: str | None) -> tuple[str, ...]:
    """``--to``: one language or a comma-separated list; the default is a mix of six."""
    if option is None or not option.strip():
        return DEFAULT_TARGETS
    targets = tuple(dict.fromkeys(FENCE_ALIASES.get(t.strip().lower(), t.strip().lower())
                                  for t in option.split(",") if t.strip()))
    unknown = [t for t in targets if t not in LANGUAGES]
    if unknown:
        raise ConfigError(f"--to: unknown language(s) {', '.join(unknown)}; known: "
                          f"{', '.join(sorted(LANGUAGES))}")
    return targets


def fence_language(text: str) -> str | None:
    """The language named by the first code fence in ``text``, if it names a known one."""
    m = re.search(r"^[ \t]*(?:`{3,}|~{3,})[ \t]*([\w+#.-]+)", text, re.MULTILINE)
    if not m:
        return None
    tag = m.group(1).lower()
    tag = FENCE_ALIASES.get(tag, tag)
    return tag if tag in LANGUAGES else None


class TranslateTask(Task):
    """Code translation: the seed code rewritten in another language.

    Args:
        targets: languages to translate into; each record draws one that differs from its own.
    """

    name = "translate"
    template = "translate"
    task_name = "code translation"
    fields = (TASK_NAME, INSTRUCTION, TRANSLATION, TESTS)
    rules = RULES
    verifiable = True
    test_note = "Test the translation, in the target language."
    description = ("Code translation samples (CodeOcean, WaveCoder): an instruction asking to "
                   "translate a snippet of real source code (the input) into another language, "
                   "and the translation.")

    def __init__(self, targets: tuple[str, ...] = DEFAULT_TARGETS) -> None:
        self.targets = targets

    def prepare(self, record: Record, seed: int) -> Record | Reject:
        if record.meta.get("target_lang"):
            return record
        choices = [t for t in self.targets if t != record.lang]
        if not choices:
            return Reject("no_target_language",
                          f"the seed is {record.lang} and --to offers no other language")
        record.meta["target_lang"] = random.Random(f"{seed}:{record.id}:to").choice(choices)
        return record

    def test_lang(self, record: Record) -> str:
        return str(record.meta.get("target_lang") or "")

    def code_lang(self, record: Record) -> str:
        return self.test_lang(record)

    def variables(self, record: Record, answer_format: str) -> dict[str, Any]:
        target = str(record.meta.get("target_lang", ""))
        return super().variables(record, answer_format) | {
            "target_lang": target, "target_name": language_name(target),
            "target_fence": fence_tag(target)}

    def check(self, record: Record) -> Record | Reject:
        record.input = record.seed
        if not has_code_block(record.response):
            return Reject("parse_no_code_block", "the solution has no fenced code block with "
                          "the translated code")
        target = record.meta.get("target_lang")
        written = fence_language(record.response)
        if written is not None and target and written != target:
            return Reject("parse_wrong_language",
                          f"the solution's code is fenced as {written}, not {target}")
        return record

    def example_input(self, record: Record) -> str:
        target = language_name(str(record.meta.get("target_lang", "")))
        return super().example_input(record) + (f"\nTarget language: {target}" if target else "")
