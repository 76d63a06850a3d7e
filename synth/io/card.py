"""The dataset card: README.md of a dataset directory, saying what made the data."""

from __future__ import annotations

import json
from typing import Any


def dataset_card(title: str, rows: int, stats: dict[str, Any], config: dict[str, Any],
                 extra_sections: list[str] | None = None, description: str | None = None) -> str:
    """The Markdown body of a dataset card: what made the data and what each stage did."""
    body = [f"# {title}", "", description or f"{rows} instruction samples written by synth.", ""]
    llm = config.get("LLMConfig")
    if llm:
        body.append(f"- model: `{llm.get('model')}`")
    body += [
        f"- rows: {rows}",
        f"- wall time: {stats.get('wall_time_s')} s",
        "",
        "## Stages",
        "",
        "| stage | in | out | rejected |",
        "|---|---|---|---|",
    ]
    for name, s in stats.get("stages", {}).items():
        rejected = ", ".join(f"{k}: {v}" for k, v in s.get("rejected", {}).items()) or "-"
        body.append(f"| {name} | {s.get('in')} | {s.get('out')} | {rejected} |")
    body += ["", "## Configuration", "", "```json", json.dumps(config, indent=2), "```", ""]
    for section in extra_sections or []:
        body += [section, ""]
    return "\n".join(body)


def secrets_section(stats: dict[str, Any]) -> str | None:
    """The dataset card's "Secrets and personal data" section from stats.json's ``secrets``."""
    sec = stats.get("secrets")
    if not sec:
        return None
    if sec.get("mode") == "off":
        return ("## Secrets and personal data\n\nMode `off`: seeds, input rows and LLM replies "
                "were not scanned for secrets or personal data.")
    lines = ["## Secrets and personal data", "",
             f"Mode `{sec.get('mode')}`: findings in seeds, input rows and LLM replies are "
             "replaced by typed placeholders (`<API_KEY>`, `<PASSWORD>`, `<EMAIL>`, ...)"
             + (" or the record is left out" if sec.get("mode") == "drop" else "") + "."]
    by_kind = sec.get("by_kind") or {}
    if by_kind:
        lines += ["", "| kind | found |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in by_kind.items()]
    else:
        lines += ["", "Nothing was found."]
    return "\n".join(lines)
