"""``evol``: in-depth Evol-Instruct for code (WizardLM, Xu et al. 2023; WizardCoder, Luo et al.
2023).

Reads an existing instruction dataset (jsonl / parquet / ``datasets`` directory, through
:func:`synth.io.rows.read_records`; synth's own ``dataset/`` works too, so outputs can be
evolved again). Each record draws one evolution method, seeded by ``--seed`` and its id, and the
generator rewrites the instruction into a harder one and solves it. An "evolution" that leaves
the instruction unchanged is rejected before any discriminator call (WizardLM's elimination of
evolutions with no information gain). Writes ``instruction``, ``input``, ``response``;
``seed`` = the original instruction; ``meta['evol']`` = method and the original sample.
"""

from __future__ import annotations

import random
import re
from typing import Any

from synth.generators.base import INFORMATION, INSTRUCTION, SOLUTION, TASK_NAME, Task
from synth.generators.judge import Rule
from synth.generators.parsing import Reject
from synth.records import Record

# WizardLM's in-depth operations and WizardCoder's two code-specific ones, in our words.
METHODS: dict[str, str] = {
    "constraints": "Add one or two new constraints or requirements to the problem "
                   "(about ten more words).",
    "deepen": "Replace a common requirement of the problem with a less common, more specific "
              "one.",
    "concretize": "Replace general concepts in the problem with more specific, concrete ones "
                  "(exact data types, sizes, formats, names).",
    "reasoning": "If the problem can be solved in a few simple steps, rewrite it so that it "
                 "needs several steps of reasoning.",
    "misdirection": "Add a short piece of erroneous code as a reference that the solver must "
                    "not copy, to increase misdirection.",
    "complexity": "Ask for a solution with a stated time or space complexity bound.",
}

RULES = (
    Rule("harder", "The new instruction is clearly more demanding than the original one, in the "
         "way the evolution method asked for."),
    Rule("self_contained", "The new instruction is complete on its own: someone who never saw "
         "the original can solve it."),
    Rule("feasible", "All requirements of the new instruction can be met together; none "
         "contradicts another."),
    Rule("solution_correct", "The solution correctly and completely solves the new instruction."),
)


def source_record(row: Record, sample: int = 0) -> Record:
    """An ``evol`` record made from one row of an instruction dataset."""
    record = row.for_task("evol", sample)
    record.seed = row.instruction + (f"\n\n{row.input}" if row.input else "")
    record.meta["evol"] = {"original": {"instruction": row.instruction, "input": row.input,
                                        "response": row.response, "task": row.task,
                                        "seed": row.seed}}
    return record


class EvolTask(Task):
    """Evol-Instruct: a harder version of an existing instruction, with its solution."""

    name = "evol"
    template = "evol"
    task_name = "code generation"
    fields = (TASK_NAME, INSTRUCTION, INFORMATION, SOLUTION)
    rules = RULES
    description = ("Evol-Instruct samples (WizardLM, WizardCoder): instructions of an existing "
                   "dataset rewritten into harder ones, with their solutions.")

    def __init__(self, methods: tuple[str, ...] = tuple(METHODS)) -> None:
        self.methods = methods

    def prepare(self, record: Record, seed: int) -> Record | Reject:
        evol = record.meta.setdefault("evol", {})
        original = evol.setdefault("original", {"instruction": record.seed, "input": ""})
        if not str(original.get("instruction", "")).strip():
            return Reject("evol_empty_instruction", "the input row has no instruction")
        evol.setdefault("method",
                        random.Random(f"{seed}:{record.id}:evol").choice(self.methods))
        return record

    def variables(self, record: Record, answer_format: str) -> dict[str, Any]:
        evol = record.meta.get("evol", {})
        original = evol.get("original", {})
        method = str(evol.get("method", ""))
        return super().variables(record, answer_format) | {
            "original_instruction": str(original.get("instruction", "")),
            "original_input": str(original.get("input") or ""),
            "method": method, "method_text": METHODS.get(method, method)}

    def blank(self, record: Record) -> Record:
        blank = super().blank(record)
        blank.meta["evol"] = {"original": {"instruction": "", "input": ""},
                              "method": record.meta.get("evol", {}).get("method", "")}
        return blank

    def check(self, record: Record) -> Record | Reject:
        original = record.meta.get("evol", {}).get("original", {})
        if _words(record.instruction) == _words(str(original.get("instruction", ""))):
            return Reject("parse_not_evolved", "the new instruction is the original one")
        return record

    def example_input(self, record: Record) -> str:
        variables = self.variables(record, "json")
        text = f"Original instruction:\n{variables['original_instruction']}"
        if variables["original_input"]:
            text += f"\n\nOriginal input:\n{variables['original_input']}"
        return text + f"\n\nEvolution method: {variables['method_text']}"


def _words(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))
