"""The example memory: bounded per task and kind, deterministic snapshots in input order,
whole cases sampled with a seed, persisted across invocations, seeded from files."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from synth.errors import ConfigError, InputError
from synth.generators import get_task
from synth.generators.memory import ExampleMemory, Outcome
from synth.store import RunStore


def case(n: int) -> dict[str, object]:
    return {"id": f"c{n}", "input": f"code {n}", "instance": {"instruction": f"i{n}"},
            "problems": [], "record_id": f"r{n}"}


def outcome(n: int, kind: str = "good", score: float = 1.0, task: str = "summarize") -> Outcome:
    return Outcome(task, kind, score, case(n))


def ids(memory: ExampleMemory, kind: str = "good", task: str = "summarize") -> list[str]:
    return [c["id"] for c in memory.cases(task, kind)]


@pytest.fixture
def run_store(tmp_path: Path) -> RunStore:
    store = RunStore(tmp_path / "run")
    store.begin("generate")
    return store


def test_last_keeps_the_newest_k_in_record_order(run_store: RunStore) -> None:
    memory = ExampleMemory(run_store, size=3, policy="last", block=4)
    # records finish out of order; the memory adds their cases in record order
    for seq in (3, 1, 0, 2):
        memory.finish(seq, [outcome(seq)])
    assert ids(memory) == ["c1", "c2", "c3"]
    for seq in (4, 5, 6, 7):
        memory.finish(seq, [outcome(seq), outcome(100 + seq, "bad")])
    assert ids(memory) == ["c5", "c6", "c7"]
    assert ids(memory, "bad") == ["c105", "c106", "c107"]
    assert memory.counts() == {"summarize": {"bad": 3, "good": 3}}


def test_best_keeps_the_best_scored_newer_first_on_ties(run_store: RunStore) -> None:
    memory = ExampleMemory(run_store, size=2, policy="best", block=1)
    for seq, score in enumerate([1.0, 0.5, 1.0, 0.5, 1.0]):
        memory.finish(seq, [outcome(seq, score=score)])
    assert ids(memory) == ["c2", "c4"]


def test_pools_are_per_task_and_a_repeated_case_is_not_duplicated(run_store: RunStore) -> None:
    memory = ExampleMemory(run_store, size=5, block=1)
    memory.finish(0, [outcome(1), outcome(1, task="repair")])
    memory.finish(1, [outcome(2), outcome(1)])
    assert ids(memory) == ["c2", "c1"] and ids(memory, task="repair") == ["c1"]


def test_a_record_sees_blocks_up_to_two_behind_and_waits_for_them(run_store: RunStore) -> None:
    memory = ExampleMemory(run_store, size=8, shots=8, block=2, seed=1)

    async def scenario() -> list[str]:
        memory.finish(1, [outcome(1)])
        early = await memory.examples("summarize", "rec2", 2)  # block 1 sees the base only
        assert early.good == () and memory.waits == 0
        # record 4 (block 2) needs block 0 complete, and record 0 is still running
        waiting = asyncio.ensure_future(memory.examples("summarize", "rec4", 4))
        await asyncio.sleep(0.01)
        assert not waiting.done() and memory.waits == 1
        memory.finish(3, [outcome(3)])  # block 1 is not visible to block 2 anyway
        memory.finish(0, [outcome(0)])
        shown = await asyncio.wait_for(waiting, 5)
        return sorted(c["id"] for c in shown.good)

    assert asyncio.run(scenario()) == ["c0", "c1"]


def test_samples_whole_cases_seeded_and_stored_per_record(run_store: RunStore) -> None:
    memory = ExampleMemory(run_store, size=10, shots=2, block=1, seed=3)
    for seq in range(6):
        memory.finish(seq, [outcome(seq), outcome(50 + seq, "bad")])

    def draw(record_id: str, mem: ExampleMemory = memory) -> list[str]:
        ex = asyncio.run(mem.examples("summarize", record_id, 7))  # sees records 0..5
        assert all(set(c) == {"id", "input", "instance", "problems", "record_id"}
                   for c in ex.good + ex.bad)  # whole cases, without internal scores
        assert len(ex.good) == 2 and len(ex.bad) == 2
        return [c["id"] for c in ex.good + ex.bad]

    first = draw("a")
    assert draw("a") == first  # stored: the same on every call
    assert len({tuple(draw(f"r{i}")) for i in range(12)}) > 3  # and varies across records
    other = ExampleMemory(run_store, size=10, shots=2, block=1, seed=4)
    for seq in range(6):
        other.finish(seq, [outcome(seq), outcome(50 + seq, "bad")])
    assert [draw(f"s{i}", other) for i in range(6)] != [draw(f"s{i}") for i in range(6)]


def test_a_new_run_looks_up_no_draw_and_a_rerun_finds_them_all(tmp_path: Path) -> None:
    statements: list[str] = []

    def draws(store: RunStore) -> list[list[str]]:
        memory = ExampleMemory(store, size=10, shots=2, block=1, seed=3)
        memory.finish(0, [outcome(0), outcome(1), outcome(2)])
        return [[c["id"] for c in asyncio.run(memory.examples("summarize", f"r{i}", 2)).good]
                for i in range(5)]

    with RunStore(tmp_path / "run") as store:
        store.begin("generate")
        store.db.set_trace_callback(statements.append)
        first = draws(store)
    assert sum("FROM fewshot WHERE" in s for s in statements) == 0
    assert sum("FROM fewshot LIMIT 1" in s for s in statements) == 1
    statements.clear()
    with RunStore(tmp_path / "run") as store:
        store.begin("generate")
        store.db.set_trace_callback(statements.append)
        memory = ExampleMemory(store, size=10, shots=2, block=1, seed=3)  # other cases in it
        memory.finish(0, [outcome(7), outcome(8), outcome(9)])
        again = [[c["id"] for c in asyncio.run(memory.examples("summarize", f"r{i}", 2)).good]
                 for i in range(5)]
    assert again == first  # the stored draws, not new ones from the new memory
    assert sum("FROM fewshot WHERE" in s for s in statements) == 5


def test_no_shots_means_no_examples(run_store: RunStore) -> None:
    memory = ExampleMemory(run_store, shots=0, block=1)
    memory.finish(0, [outcome(0)])
    ex = asyncio.run(memory.examples("summarize", "x", 5))
    assert ex.good == () and ex.bad == ()


def test_persisted_a_completed_run_is_the_next_base_a_killed_one_is_not(tmp_path: Path) -> None:
    with RunStore(tmp_path / "run") as store:
        store.begin("generate")
        memory = ExampleMemory(store, size=4, block=2)
        for seq in range(3):  # block 1 stays partial until the run completes
            memory.finish(seq, [outcome(seq)])
        memory.close(complete=True)
    with RunStore(tmp_path / "run") as store:
        store.begin("generate")
        memory = ExampleMemory(store, size=4, block=2)
        assert ids(memory) == ["c0", "c1", "c2"]
        memory.finish(0, [outcome(9)])
        memory.finish(1, [])
        memory.close(complete=False)  # killed: saved, but not a base for the next run
        assert [row[2] for row in store.memory_load(store.gen)] == ["c0", "c1", "c2", "c9"]
    with RunStore(tmp_path / "run") as store:
        store.begin("generate")
        assert ids(ExampleMemory(store, size=4, block=2)) == ["c0", "c1", "c2"]


def test_seeds_pinned_cases_from_a_file(run_store: RunStore, tmp_path: Path) -> None:
    path = tmp_path / "cases.jsonl"
    rows = [
        {"task": "summarize", "instruction": "Explain this.", "response": "It adds.",
         "seed": "a + b", "lang": "python"},
        {"task": "summarize", "kind": "bad", "instruction": "Summarize.", "response": "a + b",
         "seed": "a + b", "critique": "the summary is the code"},
        {"task": "repair", "instruction": "Fix it.", "response": "x"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tasks = {"summarize": get_task("summarize")}
    memory = ExampleMemory(run_store, size=1, block=1)
    assert memory.seed_from(path, tasks) == 2
    assert memory.seed_from(path, tasks) == 0  # idempotent
    good, = memory.cases("summarize", "good")
    assert good["instance"]["instruction"] == "Explain this." and "a + b" in good["input"]
    bad, = memory.cases("summarize", "bad")
    assert bad["problems"] == [{"rule": "", "reason": "the summary is the code"}]
    for seq in range(3):  # pinned cases survive any number of newer ones
        memory.finish(seq, [outcome(seq)])
    assert ids(memory) == [good["id"], "c2"]
    # a later invocation keeps them
    assert len(ExampleMemory(run_store, size=1).cases("summarize", "good")) == 1
    path.write_text(json.dumps({"task": "summarize", "kind": "meh", "instruction": "x"}) + "\n")
    with pytest.raises(InputError, match="kind must be good or bad"):
        memory.seed_from(path, tasks)


def test_bad_settings(run_store: RunStore) -> None:
    with pytest.raises(ConfigError, match="--memory-policy"):
        ExampleMemory(run_store, policy="random")
    with pytest.raises(ConfigError, match="negative"):
        ExampleMemory(run_store, size=-1)
