"""Scores that need no LLM: lengths, code blocks, and the complexity of the Python solution.

They let selection run offline (``synth select --complexity-key ast_complexity``) and give the
LLM scores something cheap to be checked against. Reads ``instruction``, ``input`` and
``response``; writes ``scores``:

- ``instruction_len``: characters of instruction plus input;
- ``response_len``: characters of the response;
- ``code_blocks``: closed Markdown code fences in the response;
- ``ast_complexity``: cyclomatic-style complexity (McCabe: 1 + decision points) of the Python
  code in the response; NaN when there is none or it does not parse (reason counted and kept in
  ``meta["score_errors"]``).
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Iterator

from synth.pipeline import Stage
from synth.records import Record

_FENCE = re.compile(r"```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)```", re.DOTALL)
PYTHON_TAGS = {"python", "py", "python3", "py3", ""}


def code_blocks(text: str) -> list[tuple[str, str]]:
    """``(language tag, code)`` of each closed fenced code block, in order."""
    return [(m.group(1).lower(), m.group(2)) for m in _FENCE.finditer(text)]


def python_code(response: str, lang: str = "") -> tuple[str | None, str]:
    """The Python solution in a response and, when there is none, why.

    Fenced blocks tagged python (or untagged) are joined; a response without fences counts as
    code when it parses. Blocks that do not parse are skipped, so prose in an untagged fence
    does not hide the code next to it.
    """
    blocks = code_blocks(response)
    if not blocks:
        if lang and lang.lower() not in ("python", "py"):
            return None, "no_python_code"
        return (response, "") if _looks_like_code(response) else (None, "no_python_code")
    py = [code for tag, code in blocks if tag in PYTHON_TAGS]
    if not py:
        return None, "no_python_code"
    good = [code for code in py if _parses(code)]
    if not good:
        return None, "syntax_error"
    return "\n\n".join(good), ""


def _looks_like_code(text: str) -> bool:
    """Parses as Python and is more than a bare name or constant ("Yes." parses too)."""
    if not _parses(text):
        return False
    body = ast.parse(text).body
    return any(not isinstance(stmt, ast.Expr) or isinstance(stmt.value, ast.Call)
               for stmt in body)


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):  # ValueError: source with NUL bytes
        return False
    return bool(code.strip())


def cyclomatic_complexity(code: str) -> int:
    """McCabe-style complexity of a module: 1 + its decision points.

    Decision points: ``if``/``elif``, conditional expressions, ``for``/``while`` (async too),
    ``except`` clauses, ``match`` cases, each comprehension ``for`` and ``if``, and each extra
    operand of ``and``/``or``. Summed over the whole module, functions included.
    """
    tree = ast.parse(code)
    points = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.If | ast.IfExp | ast.For | ast.AsyncFor | ast.While
                      | ast.ExceptHandler | ast.match_case):
            points += 1
        elif isinstance(node, ast.comprehension):
            points += 1 + len(node.ifs)
        elif isinstance(node, ast.BoolOp):
            points += len(node.values) - 1
    return 1 + points


def heuristic_scores(record: Record) -> tuple[dict[str, float], dict[str, str]]:
    """The heuristic scores of one record and the reasons for any that are NaN."""
    instruction = record.instruction + ("\n" + record.input if record.input else "")
    scores = {
        "instruction_len": float(len(instruction)),
        "response_len": float(len(record.response)),
        "code_blocks": float(len(code_blocks(record.response))),
    }
    errors: dict[str, str] = {}
    code, why = python_code(record.response, record.lang)
    if code is None:
        scores["ast_complexity"] = math.nan
        errors["ast_complexity"] = why
    else:
        scores["ast_complexity"] = float(cyclomatic_complexity(code))
    return scores, errors


class HeuristicScores(Stage):
    """Adds the heuristic scores to every record; drops nothing."""

    name = "heuristics"
    writes = ("scores.instruction_len", "scores.response_len", "scores.code_blocks",
              "scores.ast_complexity")

    def run(self, records: Iterator[Record]) -> Iterator[Record]:
        for record in records:
            scores, errors = heuristic_scores(record)
            record.scores.update(scores)
            for key, reason in errors.items():
                record.meta.setdefault("score_errors", {})[key] = reason
                self.ctx.stats.stages[self.name].counts[f"nan:{key}:{reason}"] += 1
            yield record
