"""Mutation score: how strong a sample's tests are, by how many small bugs they catch.

A pass rate rewards weak tests (``assert f(0) is not None`` passes almost anything). Here the
solution is mutated with small AST edits (the classic mutation operators), the sample's own
tests are run against every mutant, and ``scores["mutation_score"]`` = killed / mutants, where a
mutant is killed when any test fails, errors or times out against it.

Operators (each applied at one site per mutant): flip a comparison (``<`` ↔ ``>=``, ``==`` ↔
``!=``...), off-by-one an integer constant, swap ``and``/``or``, swap ``+``/``-`` and ``*``/``//``,
drop ``not``, replace a ``return`` value by ``None``, drop a statement (``pass`` in its place),
``True`` ↔ ``False``. Sites are enumerated in source order and at most ``limit`` (10) are drawn
with ``random.Random(seed)``, so a run is deterministic. Mutants equal to the original after
unparsing are skipped. Python only; other languages get NaN (``no_mutator:LANG``).
"""

from __future__ import annotations

import ast
import asyncio
import copy
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

DEFAULT_MUTANTS = 10

_CMP_FLIP: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.GtE, ast.GtE: ast.Lt, ast.Gt: ast.LtE, ast.LtE: ast.Gt,
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
    ast.In: ast.NotIn, ast.NotIn: ast.In,
}
_BIN_SWAP: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.FloorDiv, ast.FloorDiv: ast.Mult,
    ast.Div: ast.Mult, ast.Mod: ast.FloorDiv,
}


@dataclass(frozen=True)
class Mutant:
    """One mutated program: what was changed (operator and line) and the code."""

    operator: str
    line: int
    code: str


def _sites(tree: ast.AST) -> Iterator[tuple[str, int, Any]]:
    """``(operator, line, locator)`` for every mutable place, in a stable order."""
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                if type(op) in _CMP_FLIP:
                    yield "flip_comparison", line, (node, i)
        elif isinstance(node, ast.BoolOp):
            yield "swap_and_or", line, node
        elif isinstance(node, ast.BinOp) and type(node.op) in _BIN_SWAP:
            yield "swap_arithmetic", line, node
        elif isinstance(node, ast.AugAssign) and type(node.op) in _BIN_SWAP:
            yield "swap_arithmetic", line, node
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            yield "drop_not", line, node
        elif isinstance(node, ast.Constant):
            if isinstance(node.value, bool):
                yield "flip_bool", line, node
            elif isinstance(node.value, int):
                yield "off_by_one", line, node
        elif isinstance(node, ast.Return) and node.value is not None and not (
                isinstance(node.value, ast.Constant) and node.value.value is None):
            yield "return_none", line, node
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.For | ast.While
                      | ast.If | ast.With):
            body = node.body
            if len(body) > 1:
                for i, stmt in enumerate(body):
                    if not isinstance(stmt, ast.Pass | ast.Expr):  # docstrings stay
                        yield "drop_statement", getattr(stmt, "lineno", line), (node, i)


def _apply(operator: str, locator: Any) -> None:
    if operator == "flip_comparison":
        node, i = locator
        node.ops[i] = _CMP_FLIP[type(node.ops[i])]()
    elif operator == "swap_and_or":
        locator.op = ast.Or() if isinstance(locator.op, ast.And) else ast.And()
    elif operator == "swap_arithmetic":
        locator.op = _BIN_SWAP[type(locator.op)]()
    elif operator == "drop_not":
        locator.op = ast.UAdd()  # +x keeps the tree valid; `not` is gone
    elif operator == "flip_bool":
        locator.value = not locator.value
    elif operator == "off_by_one":
        locator.value = locator.value + 1
    elif operator == "return_none":
        locator.value = ast.Constant(None)
    elif operator == "drop_statement":
        node, i = locator
        node.body[i] = ast.Pass()


def _unwrap_drop_not(tree: ast.AST) -> ast.AST:
    """``+x`` left by drop_not → ``x`` (``+`` on a bool would still be an int)."""
    class _Fix(ast.NodeTransformer):
        def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
            self.generic_visit(node)
            return node.operand if isinstance(node.op, ast.UAdd) and getattr(
                node, "_synth_dropped", False) else node
    return _Fix().visit(tree)


def mutants(code: str, limit: int = DEFAULT_MUTANTS, seed: int = 0) -> list[Mutant]:
    """Up to ``limit`` distinct mutants of ``code`` (empty when it does not parse)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return []
    original = ast.unparse(tree)
    sites = list(_sites(tree))
    order = list(range(len(sites)))
    random.Random(f"{seed}:mutation").shuffle(order)
    out: list[Mutant] = []
    seen = {original}
    for index in order:
        if len(out) >= limit:
            break
        operator, line, _ = sites[index]
        mutated: ast.AST = copy.deepcopy(tree)
        # deepcopy keeps the walk order, so the same index finds the same site in the copy
        _, _, locator = list(_sites(mutated))[index]
        _apply(operator, locator)
        if operator == "drop_not":
            locator._synth_dropped = True
            mutated = _unwrap_drop_not(mutated)
        try:
            text = ast.unparse(ast.fix_missing_locations(mutated))
            compile(text, "<mutant>", "exec")
        except (SyntaxError, ValueError):
            continue
        if text in seen:
            continue
        seen.add(text)
        out.append(Mutant(operator, line, text))
    return out


async def mutation_score(verifier: Any, code: str, tests: str, lang: str = "python",
                         limit: int = DEFAULT_MUTANTS,
                         seed: int = 0) -> tuple[float, dict[str, Any]]:
    """killed / mutants for ``tests`` over mutants of ``code``, and the details for meta.

    ``verifier`` is a :class:`synth.generators.verify.Verifier` (executions cached). NaN with a
    ``reason`` when nothing can be measured: ``no_mutator:LANG``, ``no_mutants``.
    """
    if lang not in ("python", "py", "python3"):
        return math.nan, {"reason": f"no_mutator:{lang}"}
    found = mutants(code, limit, seed)
    if not found:
        return math.nan, {"reason": "no_mutants"}
    executions = await asyncio.gather(*(verifier.run(lang, m.code, tests) for m in found))
    results = [{"operator": m.operator, "line": m.line, "killed": not e.ok,
                "by": e.reason[:120]} for m, e in zip(found, executions, strict=True)]
    killed = sum(r["killed"] for r in results)
    return killed / len(found), {"killed": killed, "total": len(found), "mutants": results}
