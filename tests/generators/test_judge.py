"""Discriminator replies as small models really write them: clean, fenced, prose around, missing
rules, wrong case, truncated, text lines, inconsistent verdicts."""

from __future__ import annotations

import json

import pytest

from synth.generators import TASKS
from synth.generators.base import response_format
from synth.generators.judge import Rule, Verdict, parse_verdict, verdict_schema, yes_no
from synth.generators.parsing import Reject

RULES = (Rule("language_named", "x"), Rule("solution_correct", "y"), Rule("imports_present", "z"))
SCHEMA_SHAPED = json.dumps({
    "language_named": {"reason": "it says Python", "answer": "yes"},
    "solution_correct": {"reason": "there is no bug", "answer": "yes"},
    "imports_present": {"reason": "math is not imported", "answer": "no"},
    "verdict": "no"})

CASES = [
    # (id, reply, asked format, expected {rule: yes/no} or reject reason, overall, accepted)
    ("clean json", SCHEMA_SHAPED, "json",
     {"language_named": True, "solution_correct": True, "imports_present": False}, False, False),
    ("fenced json with prose", f"Here is my review:\n```json\n{SCHEMA_SHAPED}\n```\nDone.",
     "json", {"language_named": True, "solution_correct": True, "imports_present": False},
     False, False),
    ("prose around bare json", f"Sure. {SCHEMA_SHAPED} Hope this helps.", "json",
     {"imports_present": False}, False, False),
    ("list of rules, wrong case, overall key",
     json.dumps({"rules": [{"rule": "Language_Named", "answer": "YES"},
                           {"rule": "solution correct", "answer": "Yes."},
                           {"rule": "IMPORTS-PRESENT", "answer": "yes, all there"}],
                 "Overall Answer": "Yes"}), "json",
     {"language_named": True, "solution_correct": True, "imports_present": True}, True, True),
    ("plain values and booleans",
     json.dumps({"language_named": "no - it never says", "solution_correct": True,
                 "imports_present": False, "verdict": False}), "json",
     {"language_named": False, "solution_correct": True, "imports_present": False}, False, False),
    ("numbered keys", json.dumps({"1": "yes", "2": "yes", "3": "yes", "verdict": "yes"}), "json",
     {"language_named": True}, True, True),
    ("verdict missing is derived from the rules",
     json.dumps({r.id: {"reason": "ok", "answer": "yes"} for r in RULES}), "json",
     {"language_named": True, "solution_correct": True, "imports_present": True}, None, True),
    ("yes verdict over a failed rule is a reject",
     json.dumps({"language_named": "yes", "solution_correct": "no", "imports_present": "yes",
                 "verdict": "yes"}), "json", {"solution_correct": False}, True, False),
    ("no verdict over passing rules is a reject",
     json.dumps({"language_named": "yes", "solution_correct": "yes", "imports_present": "yes",
                 "verdict": "no"}), "json", {"solution_correct": True}, False, False),
    ("text lines", "1. language_named: yes - says Python\n2. solution_correct: no - wrong\n"
     "3. imports_present: yes - fine\nVerdict: no", "sections",
     {"language_named": True, "solution_correct": False, "imports_present": True}, False, False),
    ("text lines, markdown, wrong case, a rule named inside a reason",
     "- **Language Named**: YES, and the solution_correct part is not my business\n"
     "- **Solution Correct**: **No** — off by one\n- **Imports Present**: yes\n"
     "**Overall answer:** no", "sections",
     {"language_named": True, "solution_correct": False, "imports_present": True}, False, False),
    ("numbered lines without rule names", "1. yes, names Python\n2) no, wrong result\n"
     "3. yes\nOverall: no", "sections",
     {"language_named": True, "solution_correct": False, "imports_present": True}, False, False),
    ("json asked, text given", "language_named: yes\nsolution_correct: yes\n"
     "imports_present: yes\nFinal verdict: yes", "json",
     {"imports_present": True}, True, True),
    ("text asked, json given", SCHEMA_SHAPED, "sections", {"imports_present": False}, False,
     False),
    ("a reason holding 'no' is not the answer",
     '{"language_named": {"reason": "no doubt", "answer": "yes"}, '
     '"solution_correct": {"reason": "no bug", "answer": "yes"}, '
     '"imports_present": {"reason": "no imports needed", "answer": "yes"}, "verdict": "yes"',
     "json", {"language_named": True, "solution_correct": True, "imports_present": True}, True,
     True),
    ("missing rules", json.dumps({"language_named": "yes", "verdict": "yes"}), "json",
     "judge_missing_rules", None, None),
    ("missing rules in text", "1. language_named: yes\n2. solution_correct: yes\nVerdict: yes",
     "sections", "judge_missing_rules", None, None),
    ("truncated json", SCHEMA_SHAPED[:120], "json", "judge_missing_rules", None, None),
    ("truncated before any rule", '{"langu', "json", "judge_unparseable", None, None),
    ("an answer that is not yes or no",
     json.dumps({"language_named": "maybe", "solution_correct": "yes", "imports_present": "yes",
                 "verdict": "yes"}), "json", "judge_missing_rules", None, None),
    ("prose only", "This looks like a great sample to me!", "json", "judge_unparseable", None,
     None),
    ("empty", "", "sections", "judge_unparseable", None, None),
    ("the generator's instance instead of a verdict",
     json.dumps({"instruction": "Explain it.", "solution": "It adds."}), "json",
     "judge_unparseable", None, None),
]


@pytest.mark.parametrize(("reply", "fmt", "expected", "overall", "accepted"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_verdicts(reply: str, fmt: str, expected: dict[str, bool] | str, overall: bool | None,
                  accepted: bool | None) -> None:
    result = parse_verdict(reply, RULES, fmt)
    if isinstance(expected, str):
        assert isinstance(result, Reject), result
        assert result.reason == expected and result.detail
        return
    assert isinstance(result, Verdict), result
    assert set(result.answers) == {r.id for r in RULES}
    for rule, ok in expected.items():
        assert result.answers[rule][0] is ok, rule
    assert result.overall is overall
    assert result.accepted is accepted
    assert result.failed == [r for r, (ok, _) in result.answers.items() if not ok]


def test_reasons_are_kept() -> None:
    v = parse_verdict(SCHEMA_SHAPED, RULES, "json")
    assert isinstance(v, Verdict)
    assert v.answers["imports_present"] == (False, "math is not imported")
    text = parse_verdict("1. language_named: no - it never names one\n2. solution_correct: yes\n"
                         "3. imports_present: yes\nVerdict: no", RULES, "sections")
    assert isinstance(text, Verdict)
    assert text.answers["language_named"] == (False, "it never names one")
    assert text.to_meta()["rules"]["language_named"] == {"answer": "no",
                                                        "reason": "it never names one"}


@pytest.mark.parametrize(("value", "expected"), [
    ("Yes", True), ("YES.", True), ("**yes**", True), ("no, because", False), ("Not met", False),
    (True, True), (0, None), ("perhaps", None), ({"answer": "no"}, False), ("", None)])
def test_yes_no(value: object, expected: bool | None) -> None:
    assert yes_no(value) is expected


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_task_has_a_checklist_and_schema(task: str) -> None:
    t = TASKS[task]()
    assert len(t.rules) >= 4 and len({r.id for r in t.rules}) == len(t.rules)
    schema = verdict_schema(t.rules)
    assert schema["required"] == [r.id for r in t.rules] + ["verdict"]
    # the reason comes before the answer, so a constrained model argues before it decides
    assert list(schema["properties"][t.rules[0].id]["properties"]) == ["reason", "answer"]
    # OpenAI's strict mode refuses maxLength; llama.cpp's grammar gets it
    strict = response_format(t.judge_schema, f"{task}_verdict", "json_schema")
    assert strict is not None and "maxLength" not in json.dumps(strict)
    assert "maxLength" in json.dumps(response_format(t.judge_schema, task, "json_object"))
