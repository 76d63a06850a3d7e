"""The echo and copy checks give exactly the verdicts difflib alone gave.

The recorded set: every task's real request wording (both answer formats) against replies of
the kinds the tests and small models produce: honest answers, a field that parrots one line of
the request (verbatim, re-cased, re-spaced, with a few words changed), and mutations of prompt
lines walked across the 0.8 ratio bound so that pairs on both sides of it are covered.
"""

from __future__ import annotations

import random
import re
from difflib import SequenceMatcher

import pytest

from synth.generators import TASKS, get_task
from synth.generators.base import Examples
from synth.generators.loop import ECHO_RATIO, _near, copied_field, echoed_field
from synth.prompts import Prompts
from synth.records import Record

HONEST = [
    "Explain this Python function.",
    "It adds two numbers.",
    "Explain function number 3.",
    "Write a function that returns the sum of two integers, raising TypeError on strings.",
    "def add(a, b):\n    return a + b",
    "The function walks the list once and keeps the running maximum.",
    "Translate this Python function to Go, keeping the error handling.",
    "Fix the off-by-one error in the loop bound so the last element is visited.",
    "x" * 700,
    "short",
]


def _old_near(a: str, b: str) -> bool:
    """The check as it was before rapidfuzz (the reference the verdicts must match)."""
    if not (10 <= len(a) <= 2000 and 10 <= len(b) <= 2000):
        return False
    matcher = SequenceMatcher(None, a, b, autojunk=False)
    return matcher.real_quick_ratio() >= ECHO_RATIO and matcher.ratio() >= ECHO_RATIO


def _plain(text: str) -> str:
    return " ".join(text.lower().split())


def _old_echoed_field(instance: dict[str, str], prompt: str) -> str | None:
    lines = [_plain(re.sub(r"^\s*[-*]?\s*\w+:\s", "", line)) for line in prompt.splitlines()]
    for key, value in instance.items():
        text = _plain(value)
        if key != "task_name" and len(text) <= 600 and any(_old_near(text, line)
                                                           for line in lines):
            return key
    return None


def _wordings() -> list[str]:
    prompts = Prompts()
    out = []
    for name in TASKS:
        task = get_task(name, to="go") if name == "translate" else get_task(name)
        record = Record.from_seed("def f(a, b):\n    return a + b", "python", {"path": "m.py"})
        record = record.for_task(task.name)
        record.meta["target_lang"] = "go"
        for fmt in ("json", "sections"):
            try:
                out.append(task.messages(task.blank(record), prompts, fmt)[-1]["content"])
            except Exception:  # noqa: BLE001 - a task without this format has no wording
                continue
    assert out
    return out


def _mutate(line: str, rng: random.Random, edits: int) -> str:
    chars = list(line)
    for _ in range(edits):
        op = rng.randrange(3)
        pos = rng.randrange(len(chars) + 1)
        letter = rng.choice("abcdefghijklmnopqrstuvwxyz ")
        if op == 0 and chars:
            del chars[min(pos, len(chars) - 1)]
        elif op == 1:
            chars.insert(pos, letter)
        elif chars:
            chars[min(pos, len(chars) - 1)] = letter
    return "".join(chars)


def _recorded_replies(wording: str, rng: random.Random) -> list[dict[str, str]]:
    lines = [ln.strip() for ln in wording.splitlines() if len(ln.strip()) >= 12]
    replies = [{"task_name": "t", "instruction": h, "solution": HONEST[(i + 1) % len(HONEST)]}
               for i, h in enumerate(HONEST)]
    for line in lines:
        replies.append({"task_name": line, "instruction": "Explain it."})  # task_name is exempt
        replies.append({"instruction": "Explain it.", "solution": line})
        replies.append({"instruction": line.upper() + "  ", "solution": "ok"})
        replies.append({"instruction": "  ".join(line.split()), "solution": "fine answer here"})
        words = line.split()
        if len(words) > 4:
            words[rng.randrange(len(words))] = "something"
            replies.append({"instruction": " ".join(words)})
        for edits in range(1, max(2, len(line) // 3), max(1, len(line) // 25)):
            replies.append({"instruction": _mutate(line, rng, edits)})
    return replies


def test_echo_verdicts_match_difflib_on_the_recorded_set() -> None:
    rng = random.Random(14)
    seen = {"echo": 0, "none": 0}
    for wording in _wordings():
        for reply in _recorded_replies(wording, rng):
            old = _old_echoed_field(reply, wording)
            assert echoed_field(reply, wording) == old, reply
            seen["echo" if old else "none"] += 1
    # the set holds many cases on each side of the bound (what the check exists to catch)
    assert seen["echo"] > 100 and seen["none"] > 100, seen


def test_the_echo_the_loop_test_relies_on_is_caught() -> None:
    wording = next(w for w in _wordings() if "concise explanation" in w.lower())
    reply = {"task_name": "code summarization", "instruction": "Explain it.",
             "solution": "A correct, concise explanation of what the code does and how, "
                         "in plain prose."}
    assert echoed_field(reply, wording) == "solution"
    assert echoed_field({"instruction": "Explain it.", "solution": "It adds two numbers."},
                        wording) is None


def test_near_matches_difflib_across_the_bound() -> None:
    rng = random.Random(7)
    base = "return the sum of the two numbers, or raise a value error when one is negative"
    agree = {True: 0, False: 0}
    for edits in range(0, 40):
        for _ in range(8):
            other = _mutate(base, rng, edits)
            old = _old_near(base, other)
            assert _near(base, other) == old, other
            agree[old] += 1
    assert agree[True] > 20 and agree[False] > 20


@pytest.mark.parametrize("a,b", [("", ""), ("short", "short"), ("a" * 2001, "a" * 2001),
                                 ("abcdefghij", "abcdefghij"), ("abcdefghij", "jihgfedcba")])
def test_near_edges(a: str, b: str) -> None:
    assert _near(a, b) == _old_near(a, b)


def test_copied_field_uses_the_same_verdicts() -> None:
    shown = {"instruction": "Write a function that reverses a linked list in place.",
             "solution": "def rev(h):\n    ..."}
    examples = Examples(good=({"instance": shown, "input": "x"},), bad=())
    assert copied_field({"instruction": "Write a function that reverses a linked list "
                                        "in place!"}, examples) == "instruction"
    assert copied_field({"instruction": "Sort a list of tuples by their second item."},
                        examples) is None
