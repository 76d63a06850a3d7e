"""``synth estimate`` / ``generate --dry-run``: what a run will send and cost, sending nothing.

The pipeline runs with the client in collect mode: every prompt is rendered exactly as a live
run would render it (same templates, dialect, few-shot cases, cache keys), requests already
cached are skipped, and the rest are counted instead of sent. Input tokens are counted with the
model's tokenizer (:func:`synth.llm.limits.count_message_tokens`); output tokens are bounded by
``--max-tokens`` and, when the run directory already has answers, expected at their observed
mean. Later discriminator rounds depend on the answers, so only the first round is rendered;
the upper bound assumes every record uses every round.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from synth.llm.cost import price_for
from synth.llm.limits import count_message_tokens, tokenizer_name

if TYPE_CHECKING:
    from synth.config import GenerateConfig, LLMConfig
    from synth.llm.batch import Collector
    from synth.store import RunStore


def estimate(collector: Collector, store: RunStore, model: str, gen: GenerateConfig,
             llm: LLMConfig) -> dict[str, Any]:
    """Requests, tokens and a cost range per task for the requests ``collector`` saw."""
    price = price_for(model, llm.price_in, llm.price_out)
    observed = store.mean_tokens_out()
    # generator + discriminator per round; each later round is a revision and a new verdict
    per_record_max = 2 * gen.max_rounds if gen.discriminator else 1
    tasks: dict[str, dict[str, Any]] = defaultdict(lambda: {"requests": 0, "input_tokens": 0})
    for key, body in collector.requests.items():
        t = tasks[collector.tasks.get(key) or "-"]
        t["requests"] += 1
        t["input_tokens"] += count_message_tokens(body["messages"], model)
    out: dict[str, Any] = {"model": model, "tokenizer": tokenizer_name(model),
                           "observed_mean_tokens_out": observed,
                           "price": None if price is None else {
                               "in": price.usd_in, "out": price.usd_out,
                               "source": price.source},
                           "first_round_only": gen.discriminator, "tasks": {}}
    for name, t in sorted(tasks.items()):
        n, tin = t["requests"], t["input_tokens"]
        out_max = n * gen.max_tokens
        out_expected = None if observed is None else round(n * observed)
        row: dict[str, Any] = {"requests": n, "input_tokens": tin,
                               "output_tokens_max": out_max,
                               "output_tokens_expected": out_expected,
                               "requests_max": n * per_record_max}
        if price is not None:
            low = price.cost(tin, out_expected if out_expected is not None else 0)
            # every round: the generator prompt again plus the previous answer, then a verdict
            high = price.cost((tin + n * gen.max_tokens) * per_record_max, out_max * per_record_max)
            row["usd_low"] = round(low, 6)
            row["usd_high"] = round(high, 6)
            row["usd_batch_high"] = round(high * 0.5, 6)
        out["tasks"][name] = row
    return out


def render(report: dict[str, Any]) -> str:
    """The estimate as a small table for the terminal."""
    lines = [f"model {report['model']} (tokenizer {report['tokenizer']}); price: "
             + (f"${report['price']['in']}/${report['price']['out']} per 1M in/out "
                f"({report['price']['source']})" if report["price"] else
                "unknown (pass --price-in/--price-out)"),
             "task | requests | input tokens | output tokens (expected / max) | USD low..high"]
    for name, r in report["tasks"].items():
        exp = "-" if r["output_tokens_expected"] is None else r["output_tokens_expected"]
        usd = (f"{r['usd_low']:.4f}..{r['usd_high']:.4f}" if "usd_low" in r else "unknown")
        lines.append(f"{name} | {r['requests']} (up to {r['requests_max']}) | "
                     f"{r['input_tokens']} | {exp} / {r['output_tokens_max']} | {usd}")
    if not report["tasks"]:
        lines.append("(nothing to send: every request is cached)")
    if report["first_round_only"]:
        lines.append("first discriminator round rendered; 'up to' and the high cost assume "
                     "every record uses every round")
    if report["observed_mean_tokens_out"] is None:
        lines.append("no answers in this run directory yet: the low cost counts input only")
    return "\n".join(lines)
