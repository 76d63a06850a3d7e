"""Mutation score: small AST mutants of a solution, killed by its tests (real sandbox)."""

from __future__ import annotations

import ast
import asyncio
import math
from pathlib import Path

import pytest

from synth.config import SandboxConfig
from synth.filters.fusion import fused_scores, score_order
from synth.filters.mutation import mutants, mutation_score
from synth.generators.verify import Verifier
from synth.records import Record
from synth.sandbox import Sandbox, runner
from synth.store import RunStore

SOLUTION = '''def clamp(x, lo, hi):
    """x limited to [lo, hi]."""
    if x < lo:
        return lo
    if x > hi:
        return hi
    return x


def count_even(xs):
    n = 0
    for x in xs:
        if x % 2 == 0 and x is not None:
            n += 1
    return n
'''
STRONG = """
assert clamp(5, 0, 10) == 5
assert clamp(-3, 0, 10) == 0
assert clamp(12, 0, 10) == 10
assert clamp(0, 0, 10) == 0
assert clamp(10, 0, 10) == 10
assert count_even([1, 2, 3, 4]) == 2
assert count_even([]) == 0
assert count_even([1, 3]) == 0
"""
WEAK = """
assert clamp(5, 0, 10) is not None
assert count_even([1, 2]) >= 0
"""


def test_mutants_are_bounded_distinct_valid_and_deterministic() -> None:
    found = mutants(SOLUTION, 10, seed=3)
    assert len(found) == 10
    assert len({m.code for m in found}) == 10
    for m in found:
        ast.parse(m.code)
        assert m.code != ast.unparse(ast.parse(SOLUTION))
    assert [m.code for m in mutants(SOLUTION, 10, seed=3)] == [m.code for m in found]
    assert [m.code for m in mutants(SOLUTION, 10, seed=4)] != [m.code for m in found]
    operators = {m.operator for m in mutants(SOLUTION, 100)}
    assert {"flip_comparison", "off_by_one", "swap_and_or", "drop_statement",
            "return_none", "swap_arithmetic"} <= operators
    assert mutants("def (:", 10) == []


@pytest.mark.skipif(runner.detect_isolation()[0] is None, reason="no namespace isolation")
def test_strong_tests_kill_more_mutants_than_weak_ones(tmp_path: Path) -> None:
    with RunStore(tmp_path) as store, Sandbox(SandboxConfig()) as box:
        verifier = Verifier(box, store, test_timeout_s=3.0)

        async def both() -> tuple[float, float]:
            strong, detail = await mutation_score(verifier, SOLUTION, STRONG, limit=10, seed=1)
            weak, _ = await mutation_score(verifier, SOLUTION, WEAK, limit=10, seed=1)
            assert detail["total"] == 10 and len(detail["mutants"]) == 10
            return strong, weak

        strong, weak = asyncio.run(both())
        assert strong > weak and strong >= 0.8 and weak <= 0.5
        score, detail = asyncio.run(mutation_score(verifier, "x = 1", STRONG, lang="go"))
        assert math.isnan(score) and detail["reason"] == "no_mutator:go"


def test_fusion_and_selection_order_accept_mutation_score() -> None:
    recs = [Record(id=str(i), scores={"mutation_score": m, "pass_rate": 1.0})
            for i, m in enumerate([0.2, math.nan, 0.9])]
    fused = fused_scores(recs, "mutation_score", "pass_rate")
    assert list(score_order(fused)) == [2, 0, 1]
