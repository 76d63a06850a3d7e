"""``repair``: CodeOcean's code repair (WaveCoder, Yu et al. 2023).

Reads seed records; the generator writes a buggy variant of the seed code (``information``), a
bug report that asks for a fix (``instruction``), and the fixed code with an explanation
(``solution``). A solution without a code block, or a variant identical to the fix, is rejected
before any discriminator call.
Writes ``instruction`` = bug report, ``input`` = buggy code, ``response`` = fix + explanation.
"""

from __future__ import annotations

from synth.generators.base import INSTRUCTION, SOLUTION, TASK_NAME, TESTS, Task
from synth.generators.judge import Rule
from synth.generators.parsing import Reject, ReplyField, code_of, has_code_block
from synth.records import Record

BUGGY_CODE = ReplyField("information", ("Information", "Buggy Code", "Input", "Code"),
                        ("buggy_code", "buggy code", "input", "code"), target="input",
                        unfence=True)

RULES = (
    Rule("language_named", "The instruction names the programming language."),
    Rule("bug_reported", "The instruction describes what goes wrong and asks for a fix, "
         "without giving the fix away."),
    Rule("bug_present", "The information holds code with a real bug that matches the report."),
    Rule("bug_fixed", "The solution's code fixes the bug and otherwise keeps the behaviour."),
    Rule("fix_explained", "The solution explains what was wrong and how the fix works."),
)


class RepairTask(Task):
    """Code repair: find and fix a bug planted in a variant of real code."""

    name = "repair"
    template = "repair"
    task_name = "code repair"
    fields = (TASK_NAME, BUGGY_CODE, INSTRUCTION, SOLUTION, TESTS)  # the bug first, then its report
    rules = RULES
    verifiable = True
    test_note = ("The tests must pass on the fixed code, and at least one of them must fail on "
                 "the buggy code.")
    description = ("Code repair samples (CodeOcean, WaveCoder): a bug report, a buggy variant of "
                   "a snippet of real source code (the input), and the fix with an explanation.")

    def check(self, record: Record) -> Record | Reject:
        if not has_code_block(record.response):
            return Reject("parse_no_code_block", "the solution has no fenced code block with "
                          "the fixed code")
        buggy = " ".join(code_of(record.input).split())
        fixed = " ".join(code_of(record.response).split())
        if buggy == fixed:
            return Reject("parse_no_bug", "the buggy code is the same as the fixed code")
        return record
