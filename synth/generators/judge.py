"""The discriminator's checklist and the reading of its verdicts (WaveCoder / CodeOcean).

A discriminator LLM answers every rule of a task's checklist with a reason and yes/no, then
gives an overall verdict. Replies come as JSON (schema-constrained where the endpoint supports
it: a reason before each answer, so the model argues before it decides) or as text lines
``1. rule_id: yes - reason`` and ``Verdict: yes``.

A sample is accepted only when every rule is answered yes *and* the overall verdict (if given)
is yes: the rules are the evidence, so a "yes" verdict over a failed rule is a reject. A reply
that does not answer every rule is a :class:`~synth.generators.parsing.Reject`
(``judge_missing_rules`` / ``judge_unparseable``), never an accept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from synth.generators.parsing import Reject, parse_json_object, pick

# Bound on a reason's length under grammar-constrained decoding: a small model otherwise can
# fill a reason string until the token limit. Dropped for OpenAI-style strict schemas.
REASON_MAX_CHARS = 240

_YES = {"yes", "y", "true", "pass", "passed", "ok", "met", "accept", "accepted", "correct"}
_NO = {"no", "n", "not", "false", "fail", "failed", "reject", "rejected", "incorrect", "unmet"}
_ANSWER_WORD = r"(yes|no|true|false|pass(?:ed)?|fail(?:ed)?|accept(?:ed)?|reject(?:ed)?)"
_VERDICT_LINE = re.compile(
    r"(?:overall(?:[ \t_]+(?:answer|verdict|evaluation))?|final[ \t_]+(?:verdict|answer)|verdict)"
    r"[\"'*\s]*(?:is\b)?[\s:=\-–—>\"'*]*" + _ANSWER_WORD + r"\b",
    re.IGNORECASE)
_ANSWER_KEY = re.compile(r"\banswer[\"'*\s]*[:=]\s*[\"'*]*\s*" + _ANSWER_WORD + r"\b",
                         re.IGNORECASE)
_REASON_KEY = re.compile(r"\breason[\"'*\s]*[:=]\s*\"((?:[^\"\\]|\\.)*)\"?", re.IGNORECASE)

RULE_ID_KEYS = ("rule", "id", "name", "rule_id", "key")
ANSWER_KEYS = ("answer", "result", "verdict", "met", "pass", "passed", "ok", "value", "decision")
REASON_KEYS = ("reason", "reasoning", "explanation", "why", "comment", "analysis")
VERDICT_KEYS = ("verdict", "overall", "overall answer", "overall verdict", "final verdict",
                "final answer", "accept", "accepted")
CONTAINER_KEYS = ("rules", "checklist", "checks", "answers", "evaluation")


@dataclass(frozen=True)
class Rule:
    """One item of a task's checklist: a short id (also the JSON key) and what it checks."""

    id: str
    text: str


@dataclass
class Verdict:
    """A parsed discriminator reply.

    Attributes:
        answers: rule id → (passed, reason), for every rule of the checklist.
        overall: the model's overall verdict, None when it gave none.
    """

    answers: dict[str, tuple[bool, str]]
    overall: bool | None
    failed: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.failed = [rid for rid, (ok, _) in self.answers.items() if not ok]

    @property
    def accepted(self) -> bool:
        return not self.failed and self.overall is not False

    def to_meta(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "overall": _word(self.overall),
                "failed": list(self.failed),
                "rules": {rid: {"answer": _word(ok), "reason": reason}
                          for rid, (ok, reason) in self.answers.items()}}


def _word(value: bool | None) -> str | None:
    return None if value is None else ("yes" if value else "no")


def verdict_schema(rules: tuple[Rule, ...]) -> dict[str, Any]:
    """JSON schema of a verdict: one ``{reason, answer}`` object per rule, then ``verdict``."""
    answer = {"type": "string", "enum": ["yes", "no"]}
    item = {"type": "object",
            "properties": {"reason": {"type": "string", "maxLength": REASON_MAX_CHARS},
                           "answer": answer},
            "required": ["reason", "answer"], "additionalProperties": False}
    props: dict[str, Any] = {r.id: item for r in rules}
    props["verdict"] = answer
    return {"type": "object", "properties": props, "required": list(props),
            "additionalProperties": False}


def yes_no(value: Any) -> bool | None:
    """A yes/no answer from whatever the model wrote (``"Yes."``, ``"NO - because"``, true)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, dict):
        return yes_no(pick(value, ANSWER_KEYS))
    if not isinstance(value, str):
        return None
    m = re.match(r"[\s\"'*`_\[(]*([a-z]+)", value.lower())
    if not m:
        return None
    word = m.group(1)
    return True if word in _YES else False if word in _NO else None


def parse_verdict(text: str, rules: tuple[Rule, ...], answer_format: str) -> Verdict | Reject:
    """The verdict in a discriminator reply; the requested shape is tried first.

    Rejects: ``judge_unparseable`` (neither a JSON verdict nor checklist lines),
    ``judge_missing_rules`` (some rule has no yes/no answer).
    """
    order = (_from_json, _from_text) if answer_format == "json" else (_from_text, _from_json)
    first = order[0](text, rules)
    if not isinstance(first, Reject):
        return first
    second = order[1](text, rules)
    if not isinstance(second, Reject):
        return second
    # The more specific failure tells the user more.
    return first if first.reason == "judge_missing_rules" or second.reason != (
        "judge_missing_rules") else second


def _norm(name: Any) -> str:
    return re.sub(r"[\s_\-]+", "", str(name)).lower()


def _from_json(text: str, rules: tuple[Rule, ...]) -> Verdict | Reject:
    obj = parse_json_object(text)
    if isinstance(obj, Reject):
        return Reject("judge_unparseable", obj.detail)
    container: Any = pick(obj, CONTAINER_KEYS)
    if not isinstance(container, dict | list):
        container = obj
    values: dict[str, Any] = {}
    if isinstance(container, list):
        by_id = {}
        for pos, item in enumerate(container):
            if isinstance(item, dict):
                rid = pick(item, RULE_ID_KEYS)
                by_id[_norm(rid) if rid is not None else str(pos)] = item
        for i, r in enumerate(rules):
            values[r.id] = by_id.get(_norm(r.id), by_id.get(str(i)))
    else:
        for i, r in enumerate(rules):
            values[r.id] = pick(container, (r.id, str(i + 1), f"rule {i + 1}"))
    answers: dict[str, tuple[bool, str]] = {}
    missing = []
    for r in rules:
        value = values[r.id]
        ok = yes_no(value)
        if ok is None:
            missing.append(r.id)
            continue
        reason = pick(value, REASON_KEYS) if isinstance(value, dict) else None
        if reason is None and isinstance(value, str):
            reason = re.sub(r"^\W*\w+\W*", "", value, count=1)  # "no - because ..." → "because"
        answers[r.id] = (ok, str(reason or "").strip())
    overall = yes_no(pick(obj, VERDICT_KEYS))
    return _finish(answers, missing, overall, rules)


def _finish(answers: dict[str, tuple[bool, str]], missing: list[str], overall: bool | None,
            rules: tuple[Rule, ...]) -> Verdict | Reject:
    if missing:
        if len(missing) == len(rules) and overall is None:
            return Reject("judge_unparseable", "no rule answered and no verdict")
        return Reject("judge_missing_rules", "no yes/no answer for: " + ", ".join(missing))
    return Verdict({r.id: answers[r.id] for r in rules}, overall)


def _rule_pattern(rule: Rule, number: int) -> re.Pattern[str]:
    words = [re.escape(w) for w in re.split(r"[_\s\-]+", rule.id) if w]
    named = r"[ \t_\-]*".join(words)
    # The rule's id anywhere, or a line starting with the rule's number ("2." / "Rule 2:").
    return re.compile(
        rf"(?P<named>\b{named}\b)|^[ \t>*#\-]*(?:rule[ \t]*)?{number}[ \t]*[.):\]][ \t]*",
        re.IGNORECASE | re.MULTILINE)


# What may precede a rule's name on its own line: bullets, numbers, markup ("- **2. name**").
_LEADING = re.compile(r"[ \t>*#`\-]*(?:rule[ \t]*)?(?:\d+[ \t]*[.):\]])?[ \t*`\[\"'(]*$",
                      re.IGNORECASE)


def _rank(text: str, m: re.Match[str]) -> int:
    """Lower is better: the name leading its line, then the number, then the name anywhere
    (an id inside another rule's reason must not be taken for that rule's line)."""
    if not m.group("named"):
        return 1
    line_start = text.rfind("\n", 0, m.start()) + 1
    return 0 if _LEADING.fullmatch(text, line_start, m.start()) else 2


def _from_text(text: str, rules: tuple[Rule, ...]) -> Verdict | Reject:
    verdicts = list(_VERDICT_LINE.finditer(text))
    end_of_rules = verdicts[-1].start() if verdicts else len(text)
    spans: dict[str, tuple[int, int]] = {}
    for i, r in enumerate(rules):
        matches = list(_rule_pattern(r, i + 1).finditer(text, 0, end_of_rules))
        if matches:
            best = min(matches, key=lambda m: (_rank(text, m), m.start()))
            spans[r.id] = (best.start(), best.end())
    starts = sorted(s for s, _ in spans.values())
    answers: dict[str, tuple[bool, str]] = {}
    missing = []
    for r in rules:
        if r.id not in spans:
            missing.append(r.id)
            continue
        start, after = spans[r.id]
        end = min([s for s in starts if s > start] + [end_of_rules])
        if end < len(text):  # the bullet of the next rule (or verdict) line is not a reason
            end = text.rfind("\n", after, end) + 1 or end
        found = _answer_in(text[after:end])
        if found is None:
            missing.append(r.id)
            continue
        answers[r.id] = found
    overall = yes_no(verdicts[-1].group(1)) if verdicts else None
    return _finish(answers, missing, overall, rules)


def _answer_in(segment: str) -> tuple[bool, str] | None:
    """(passed, reason) from the text after a rule's name, up to the next rule."""
    m = _ANSWER_KEY.search(segment)  # "answer": "no" in JSON-ish text wins over any word
    if m:
        why = _REASON_KEY.search(segment)
        return bool(yes_no(m.group(1))), (why.group(1) if why else "").strip()
    # The answer right after the separator ("rule: **No** - reason"), else the first answer
    # word on the rule's line, else the first one in the segment.
    m = re.match(r"[\s\"'*`:=\-–—|)\]>(]*" + _ANSWER_WORD + r"\b", segment, re.IGNORECASE)
    if m is None:
        line = segment.split("\n", 1)[0]
        m = re.search(r"\b" + _ANSWER_WORD + r"\b", line, re.IGNORECASE) or re.search(
            r"\b" + _ANSWER_WORD + r"\b", segment, re.IGNORECASE)
    if m is None:
        return None
    reason = segment[m.end():].strip().strip("*\"'.,:;-–—)] \t`").strip()
    return bool(yes_no(m.group(1))), " ".join(reason.split())
