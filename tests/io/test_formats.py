"""Every row format in every file format loads with ``datasets`` as a trainer would."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from run_factory import make_run  # noqa: F401 (the fixture)

import synth.report
from synth.errors import ConfigError
from synth.io.formats import OutputConfig, convert, data_files

# A minimal chat template in the shape of the ones tokenizers ship (TRL's SFTTrainer applies the
# tokenizer's template to the ``messages`` column); it raises on a turn out of order.
CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'system' and not loop.first %}"
    "{{ raise('system must be first') }}{% endif %}"
    "{% if m['role'] == 'user' and loop.index0 % 2 != (1 if messages[0]['role'] == 'system' "
    "else 0) %}{{ raise('user out of turn') }}{% endif %}"
    "<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n"
    "{% endfor %}"
)


@pytest.fixture(autouse=True)
def no_card(monkeypatch: pytest.MonkeyPatch) -> None:
    """Formats only: the card and its plots have their own tests (and take the time)."""
    monkeypatch.setattr(synth.report, "build_report", lambda run_dir: {})


def _render(messages: list[dict[str, str]]) -> str:
    import jinja2

    def fail(msg: str) -> None:
        raise ValueError(msg)

    env = jinja2.Environment()
    env.globals["raise"] = fail
    return env.from_string(CHAT_TEMPLATE).render(messages=messages)


def _load(dataset: Path, kind: str) -> object:
    import datasets

    if kind == "arrow":
        return datasets.load_from_disk(str(dataset))
    return datasets.load_dataset(str(dataset), split="train")


@pytest.mark.parametrize("kind", ["parquet", "jsonl", "arrow"])
@pytest.mark.parametrize("fmt", ["raw", "alpaca", "messages"])
def test_every_format_loads_with_datasets(make_run: Callable[..., Path], fmt: str,
                                          kind: str) -> None:
    run = make_run(OutputConfig(format=fmt, output_format=kind), n=12, rejected=2)
    ds = _load(run / "dataset", kind)
    assert len(ds) == 12  # type: ignore[arg-type]
    row = ds[0]  # type: ignore[index]
    assert row["id"] == "r0000" and row["license"] == "MIT" and row["lang"] == "python"
    assert row["scores"]["complexity"] == 1.0
    if fmt == "raw":
        assert {"instruction", "input", "response"} <= set(row)
    elif fmt == "alpaca":
        assert list(row)[:3] == ["instruction", "input", "output"]
        assert "response" not in row
    else:
        assert "instruction" not in row and "response" not in row
        assert [t["role"] for t in row["messages"]] == ["user", "assistant"]
    found = data_files(run / "dataset")
    assert found["kind"] == kind and found["files"]


def test_messages_follow_chat_template_order(make_run: Callable[..., Path]) -> None:
    import datasets

    run = make_run(OutputConfig(format="messages", system="You are a coding assistant."),
                   n=6, rejected=0)
    ds = datasets.load_dataset(str(run / "dataset"), split="train")
    for row in ds:
        roles = [t["role"] for t in row["messages"]]
        assert roles == ["system", "user", "assistant"]
        text = _render(row["messages"])
        assert text.index("<|user|>") < text.index("<|assistant|>")
    with_input = ds[1]["messages"][1]["content"]
    assert with_input == "Write a rust function number 1.\n\nSome context."
    assert ds[0]["messages"][1]["content"] == "Write a python function number 0."


def test_convert_keeps_other_columns() -> None:
    row = {"id": "a", "instruction": "I", "input": "", "response": "R", "lang": "go",
           "license": "MIT"}
    assert convert(row, "alpaca") == {"instruction": "I", "input": "", "output": "R",
                                      "id": "a", "lang": "go", "license": "MIT"}
    msgs = convert(row, "messages")
    assert msgs["messages"] == [{"role": "user", "content": "I"},
                                {"role": "assistant", "content": "R"}]
    assert msgs["lang"] == "go" and "instruction" not in msgs
    assert convert(row, "raw") is row


@pytest.mark.parametrize("kw, needle", [
    ({"format": "sharegpt"}, "--format"),
    ({"output_format": "csv"}, "--output-format"),
    ({"push_to_hub": "no-slash"}, "--push-to-hub"),
])
def test_bad_output_options(kw: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        OutputConfig(**kw).validate()  # type: ignore[arg-type]


def test_synth_reads_its_own_formats_back(make_run: Callable[..., Path]) -> None:
    from synth.io.rows import read_records

    for kind in ("jsonl", "arrow"):
        run = make_run(OutputConfig(format="alpaca", output_format=kind), name=kind, n=4,
                       rejected=0)
        recs = list(read_records(run / "dataset"))
        assert [r.id for r in recs] == ["r0000", "r0001", "r0002", "r0003"]
        assert recs[1].response.startswith("Here it is")
