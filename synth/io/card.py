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
