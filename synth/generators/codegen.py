"""``codegen``: OSS-Instruct (Magicoder, Wei et al. 2023).

Reads seed records (a snippet of real code), asks the LLM for a self-contained problem inspired
by the snippet and a correct solution, and writes ``instruction`` = problem, ``response`` =
solution (CodeOcean's "code generation" with no ``information``). Replies come as a JSON object
(schema-constrained where the endpoint supports ``response_format``) or as Magicoder's
``[Problem Description]`` / ``[Solution]`` sections.
"""

from __future__ import annotations

from synth.generators.base import Task
from synth.generators.judge import Rule
from synth.generators.parsing import Reject, ReplyField, parse_reply

PROBLEM = ReplyField("problem", ("Problem Description", "Problem Statement", "Problem"),
                     ("problem description", "problem_description", "instruction", "question",
                      "task"), target="instruction", unfence=True)
SOLUTION = ReplyField("solution", ("Solution", "Reference Solution", "Answer"),
                      ("answer", "response", "reference solution"), target="response")

RULES = (
    Rule("self_contained", "The problem is complete on its own: it gives every name, input, "
         "output and constraint needed, and never mentions \"the snippet\", \"the fragment\" or "
         "\"the code above\"."),
    Rule("language_named", "The problem or the solution says which programming language to use."),
    Rule("solution_correct", "The solution correctly and completely solves the problem."),
    Rule("imports_present", "The solution's code imports or includes every library it uses."),
)


def parse_codegen(text: str, answer_format: str) -> tuple[str, str] | Reject:
    """(problem, solution) from a reply in either shape; the requested shape is tried first."""
    values = parse_reply(text, (PROBLEM, SOLUTION), answer_format)
    if isinstance(values, Reject):
        return values
    return values["problem"], values["solution"]


class CodegenTask(Task):
    """OSS-Instruct: a problem and its solution, inspired by a seed snippet."""

    name = "codegen"
    template = "codegen"
    task_name = "code generation"
    fields = (PROBLEM, SOLUTION)
    rules = RULES
