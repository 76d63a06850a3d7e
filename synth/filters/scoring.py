"""DEITA's LLM scores: complexity of the instruction, quality of the response.

Both ask the LLM for a 1–6 rating (templates ``deita_complexity`` and ``deita_quality``) and read
the score as the expectation Σ p(k)·k over the tokens "1".."6" among the ``top_logprobs`` of the
first generated token, with those six probabilities renormalised (DEITA, Liu et al. 2023).
When the first token is not a digit (a chat model starting with "Score:"), the first position
whose generated token is a digit is used instead (method ``logprobs_later``). When the endpoint
gives no logprobs, the first integer 1–6 of the reply is the score (method ``parsed``). When none
of this works the score is NaN with a counted reason — never DEITA's silent constant 3.0.

Reads ``instruction``/``input``/``response``; writes ``scores["complexity"]``,
``scores["quality"]``, ``meta["score_methods"]`` and ``meta["score_errors"]``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from synth.llm.client import Completion, LLMClient, LLMRequestFailed, SamplingParams
from synth.pipeline import AsyncStage
from synth.prompts import Prompts
from synth.records import Record

log = logging.getLogger("synth")

SCORES = {"1": 1, "2": 2, "3": 3, "4": 4, "5": 5, "6": 6}
TEMPLATES = {"complexity": "deita_complexity", "quality": "deita_quality"}
_INT = re.compile(r"(?<![\d.])([1-6])(?!\d|\.\d)")


def expected_score(top_logprobs: Sequence[dict[str, Any]]) -> float | None:
    """Σ p(k)·k over the score tokens among ``top_logprobs``, renormalised; None if none.

    A token counts for k when it is "k" after stripping whitespace (" 4" and "4" both).
    """
    probs = dict.fromkeys(SCORES.values(), 0.0)
    for cand in top_logprobs:
        value = SCORES.get(str(cand.get("token", "")).strip())
        logprob = cand.get("logprob")
        if value is not None and logprob is not None and math.isfinite(logprob):
            probs[value] += math.exp(logprob)
    total = sum(probs.values())
    if total <= 0.0:
        return None
    return sum(k * p for k, p in probs.items()) / total


def parse_score(text: str) -> int | None:
    """The first standalone integer 1–6 in a reply ("Score: 4/6" → 4; "10" is not a score)."""
    m = _INT.search(text)
    return int(m.group(1)) if m else None


def score_mass(top_logprobs: Sequence[dict[str, Any]]) -> float:
    """Total probability of the score tokens: how much the model meant to answer a digit."""
    return sum(math.exp(c["logprob"]) for c in top_logprobs
               if str(c.get("token", "")).strip() in SCORES and c.get("logprob") is not None
               and math.isfinite(c["logprob"]))


def score_completion(completion: Completion) -> tuple[float, str, float | None]:
    """``(score, method, digit mass)``, or ``(nan, reason, None)`` when there is no score.

    The digit mass (probability of "1".."6" at the position used) is kept so that scores read
    from a model that hardly meant to answer with a digit can be told apart.
    """
    if completion.logprobs:
        first = completion.logprobs[0].get("top_logprobs") or []
        value = expected_score(first)
        if value is not None:
            return value, "logprobs", score_mass(first)
        for position in completion.logprobs[1:]:
            if str(position.get("token", "")).strip() in SCORES:
                top = position.get("top_logprobs") or []
                value = expected_score(top)
                if value is not None:
                    return value, "logprobs_later", score_mass(top)
                break
    parsed = parse_score(completion.text)
    if parsed is not None:
        return float(parsed), "parsed", None
    return math.nan, "no_score_in_reply", None


def _user_side(record: Record) -> str:
    return record.instruction + ("\n\n" + record.input if record.input else "")


class DeitaScores(AsyncStage):
    """Adds DEITA complexity and/or quality scores to every record; drops nothing.

    Args:
        client: the LLM client.
        prompts: templates (``deita_complexity``, ``deita_quality``).
        which: score names to compute, from ``complexity`` and ``quality``.
        top_logprobs: alternatives asked for per token (20 is OpenAI's maximum).
        max_tokens: reply length; a few tokens leave room for "Score: 4".
    """

    name = "score"

    def __init__(self, client: LLMClient, prompts: Prompts, which: Sequence[str],
                 top_logprobs: int = 20, max_tokens: int = 4, window: int | None = None) -> None:
        super().__init__(window or max(2 * client.config.concurrency, 1))
        unknown = set(which) - set(TEMPLATES)
        if unknown:
            raise ValueError(f"unknown DEITA scores: {sorted(unknown)}")
        self.client = client
        self.prompts = prompts
        self.which = list(which)
        self.writes = tuple(f"scores.{k}" for k in self.which) + ("score_methods",)
        self.params = SamplingParams(temperature=0.0, max_tokens=max_tokens, logprobs=True,
                                     top_logprobs=top_logprobs)
        self.template_hashes = {k: prompts.template_hash(TEMPLATES[k]) for k in self.which}

    def messages(self, which: str, record: Record) -> list[dict[str, str]]:
        return self.prompts.messages(TEMPLATES[which], instruction=_user_side(record),
                                     response=record.response)

    async def _ask(self, messages: list[dict[str, str]]) -> Completion:
        params = self.params
        try:
            return await self.client.complete(messages, params)
        except LLMRequestFailed as exc:
            if params.logprobs and exc.reason == "llm_bad_request" and (
                    "logprob" in exc.detail.lower()):
                # The endpoint refuses logprobs: from now on ask for the digit only.
                log.warning("the endpoint refused logprobs; scores will be parsed from text")
                self.params = replace(self.params, logprobs=False, top_logprobs=None)
                return await self.client.complete(messages, self.params)
            raise

    async def _score(self, which: str, record: Record) -> None:
        counts = self.ctx.stats.stages[self.name].counts
        try:
            completion = await self._ask(self.messages(which, record))
        except LLMRequestFailed as exc:
            value, how = math.nan, exc.reason
        else:
            value, how, mass = score_completion(completion)
            record.meta.setdefault("score_raw", {})[which] = completion.text
            if mass is not None:
                record.meta.setdefault("score_mass", {})[which] = round(mass, 6)
        record.scores[which] = value
        if math.isnan(value):
            record.meta.setdefault("score_errors", {})[which] = how
            counts[f"nan:{which}:{how}"] += 1
        else:
            record.meta.setdefault("score_methods", {})[which] = how
            counts[f"method:{which}:{how}"] += 1
        record.meta.setdefault("score_templates", {})[which] = self.template_hashes[which]

    async def process(self, record: Record) -> Record | None:
        # Both requests of a record in flight at once.
        await asyncio.gather(*(self._score(which, record) for which in self.which))
        return record
