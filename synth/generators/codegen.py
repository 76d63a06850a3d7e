"""``codegen``: OSS-Instruct (Magicoder, Wei et al. 2023).

Reads seed records (a snippet of real code), asks the LLM for a self-contained problem inspired
by the snippet and a correct solution, and writes ``instruction`` = problem, ``response`` =
solution. Replies come as a JSON object (schema-constrained where the endpoint supports
``response_format``) or as Magicoder's ``[Problem Description]`` / ``[Solution]`` sections.
"""

from __future__ import annotations

from typing import Any

from synth.generators.base import Task
from synth.generators.parsing import Reject, parse_json_object, parse_sections, pick, unfence
from synth.records import Record

PROBLEM_KEYS = ("problem", "problem description", "problem_description", "instruction",
                "question", "task")
SOLUTION_KEYS = ("solution", "answer", "response", "reference solution")
SECTIONS = {"problem": ("Problem Description", "Problem Statement", "Problem"),
            "solution": ("Solution", "Reference Solution", "Answer")}

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"problem": {"type": "string"}, "solution": {"type": "string"}},
    "required": ["problem", "solution"],
    "additionalProperties": False,
}


def parse_codegen(text: str, answer_format: str) -> tuple[str, str] | Reject:
    """(problem, solution) from a reply in either shape; the requested shape is tried first."""
    order = (_from_json, _from_sections) if answer_format == "json" else (
        _from_sections, _from_json)
    first = order[0](text)
    if not isinstance(first, Reject):
        return first
    second = order[1](text)
    return first if isinstance(second, Reject) else second


def _from_json(text: str) -> tuple[str, str] | Reject:
    obj = parse_json_object(text)
    if isinstance(obj, Reject):
        return obj
    return _check(pick(obj, PROBLEM_KEYS), pick(obj, SOLUTION_KEYS))


def _from_sections(text: str) -> tuple[str, str] | Reject:
    found = parse_sections(text, SECTIONS)
    if isinstance(found, Reject):
        return found
    return _check(found.get("problem"), found.get("solution"))


def _check(problem: Any, solution: Any) -> tuple[str, str] | Reject:
    if problem is None:
        return Reject("parse_missing_problem", "no problem description in the reply")
    if solution is None:
        return Reject("parse_missing_solution", "no solution in the reply")
    if not isinstance(problem, str) or not isinstance(solution, str):
        return Reject("parse_wrong_type", "problem and solution must be strings")
    problem, solution = unfence(problem).strip(), solution.strip()
    if not problem:
        return Reject("parse_empty_problem", "the problem description is empty")
    if not solution:
        return Reject("parse_empty_solution", "the solution is empty")
    return problem, solution


class CodegenTask(Task):
    """OSS-Instruct: a problem and its solution, inspired by a seed snippet."""

    name = "codegen"
    template = "codegen"
    schema = SCHEMA

    def parse(self, text: str, record: Record, answer_format: str) -> Record | Reject:
        parsed = parse_codegen(text, answer_format)
        if isinstance(parsed, Reject):
            return parsed
        record.instruction, record.response = parsed
        return record
