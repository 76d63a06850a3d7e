"""``summarize``: CodeOcean's code summarization (WaveCoder, Yu et al. 2023).

Reads seed records; the generator writes an instruction asking to explain the seed code and the
explanation itself. The seed is the sample's ``input`` (CodeOcean's ``information``), filled in
by us rather than copied by the model, so it is exact and costs no output tokens. Writes
``instruction``, ``input`` = seed, ``response`` = summary.
"""

from __future__ import annotations

from synth.generators.base import INSTRUCTION, TASK_NAME, Task
from synth.generators.judge import Rule
from synth.generators.parsing import Reject, ReplyField
from synth.records import Record

SUMMARY = ReplyField("solution", ("Solution", "Summary", "Explanation", "Answer"),
                     ("summary", "explanation", "answer", "response"), target="response")

RULES = (
    Rule("language_named", "The instruction names the programming language of the code."),
    Rule("asks_explanation", "The instruction asks to explain or summarize the given code and "
         "does not itself contain the answer."),
    Rule("summary_accurate", "The solution correctly describes what the code does and invents "
         "nothing the code does not do."),
    Rule("prose_summary", "The solution is an explanation in prose, not a copy of the code."),
)


class SummarizeTask(Task):
    """Code summarization: explain what a piece of real code does."""

    name = "summarize"
    template = "summarize"
    task_name = "code summarization"
    fields = (TASK_NAME, INSTRUCTION, SUMMARY)
    rules = RULES
    description = ("Code summarization samples (CodeOcean, WaveCoder): an instruction asking to "
                   "explain a snippet of real source code (the input) and the explanation.")

    def check(self, record: Record) -> Record | Reject:
        record.input = record.seed
        if " ".join(record.response.split()) == " ".join(record.seed.split()):
            return Reject("parse_copied_code", "the summary is the code itself")
        return record
