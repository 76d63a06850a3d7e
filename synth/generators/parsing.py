"""Reading LLM replies: JSON objects (fenced or wrapped in prose) and ``[Section]`` layouts.

Small models wrap JSON in fences or chatter, reorder sections, bold or ``#``-prefix headers
and stop mid-sentence; these helpers accept the reasonable variants and name what is wrong
otherwise, so every unusable reply gets a specific reject reason.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n(.*?)\n?```", re.DOTALL)


@dataclass(frozen=True)
class Reject:
    """Why a reply cannot be used: a short reason code and a human-readable detail."""

    reason: str
    detail: str = ""


def parse_json_object(text: str) -> dict[str, Any] | Reject:
    """The JSON object in ``text``: bare, inside a ```json fence, or surrounded by prose."""
    last_error = "no JSON object found"
    for candidate in _candidates(text):
        if not candidate.startswith("{"):
            continue
        try:
            value = orjson.loads(candidate)  # the common case: a reply that is the object
        except orjson.JSONDecodeError:
            try:  # literal newlines in strings are common; json accepts them when not strict
                value = json.loads(candidate, strict=False)
            except json.JSONDecodeError as exc:
                last_error = f"invalid JSON: {exc.msg} at char {exc.pos}"
                continue
        if isinstance(value, dict):
            return value
        last_error = f"expected a JSON object, got {type(value).__name__}"
    return Reject("parse_invalid_json", last_error)


def _candidates(text: str) -> Iterator[str]:
    """Where the object may be, most likely first (found lazily: most replies are bare)."""
    yield text.strip()
    for m in _FENCE.finditer(text):
        yield m.group(1).strip()
    start, end = text.find("{"), text.rfind("}")
    if start != -1 and end > start:
        yield text[start:end + 1]


_SEPARATORS = re.compile(r"[\s_-]+")


@functools.lru_cache(maxsize=1024)
def _fold(name: str) -> str:
    return _SEPARATORS.sub("", name).lower()


def pick(obj: dict[str, Any], names: tuple[str, ...]) -> Any:
    """The value of the first key in ``names`` present in ``obj`` (keys compared loosely)."""
    value = obj.get(names[0])  # the common case: a reply that followed the schema
    if value is not None:
        return value
    folded = {_fold(str(k)): v for k, v in obj.items()}
    for name in names:
        value = folded.get(_fold(name))
        if value is not None:
            return value
    return None


def _header_pattern(names: Mapping[str, tuple[str, ...]]) -> re.Pattern[str]:
    alternatives = "|".join(
        re.escape(alias).replace(r"\ ", r"[ \t_]+")
        for aliases in names.values() for alias in sorted(aliases, key=len, reverse=True)
    )
    # A header is a line holding the name, optionally in [brackets], **bold**, after #'s,
    # followed by an optional colon; text may follow on the same line after the colon/bracket.
    return re.compile(
        rf"^[ \t]*(?:#{{1,6}}[ \t]*)?(?:\*\*|__)?[ \t]*(?P<open>\[)?[ \t]*(?P<name>{alternatives})"
        rf"[ \t]*(?(open)\])[ \t]*(?:\*\*|__)?[ \t]*:?[ \t]*(?:\*\*|__)?[ \t]*(?P<rest>.*)$",
        re.IGNORECASE | re.MULTILINE,
    )


def parse_sections(text: str, names: Mapping[str, tuple[str, ...]]) -> dict[str, str] | Reject:
    """Split ``text`` into the sections ``names`` maps to their header aliases.

    Sections may come in any order; prose before the first header is ignored; when a header
    repeats, the first occurrence wins. Returns every section found (possibly not all of
    ``names``); the caller decides which are required.
    """
    pattern = _header_pattern(names)
    lookup = {alias.lower().replace("_", " "): key
              for key, aliases in names.items() for alias in aliases}
    fenced = _fenced_spans(text)
    matches = [m for m in pattern.finditer(text)
               if not any(a <= m.start() < b for a, b in fenced)]
    if not matches:
        return Reject("parse_no_sections",
                      "none of the headers " + ", ".join(f"[{a[0]}]" for a in names.values()))
    found: dict[str, str] = {}
    for i, m in enumerate(matches):
        key = lookup[re.sub(r"[ \t_]+", " ", m.group("name")).lower()]
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        body = (m.group("rest") + text[m.end():end]).strip()
        if key not in found:
            found[key] = body
    return found


def _fenced_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of fenced code blocks: a ``# Solution`` comment in code is no header."""
    spans, start = [], None
    for m in re.finditer(r"^[ \t]*(```+|~~~+)", text, re.MULTILINE):
        if start is None:
            start = m.start()
        else:
            spans.append((start, m.end()))
            start = None
    if start is not None:
        spans.append((start, len(text)))
    return spans


def unfence(text: str) -> str:
    """Strip one fence wrapping the whole text (models often fence a whole JSON string value)."""
    m = re.fullmatch(r"\s*```[^\n]*\n(.*?)\n?```\s*", text, re.DOTALL)
    return m.group(1) if m else text


@dataclass(frozen=True)
class ReplyField:
    """One field of a generator's reply: its JSON key, its section headers, where it goes.

    Attributes:
        key: the JSON key the templates ask for; also names reject reasons
            (``parse_missing_<key>``, ``parse_empty_<key>``).
        headers: section headers accepted in the sections format; the first is the one asked for.
        aliases: other JSON keys accepted for this field (models rename keys).
        target: the Record attribute the value fills (``instruction``, ``input``, ``response``),
            or None for fields only kept in ``meta['instance']`` (CodeOcean's ``task_name``).
        required: a reply without this field is rejected; optional fields default to "".
        unfence: strip a code fence wrapping the whole value.
    """

    key: str
    headers: tuple[str, ...]
    aliases: tuple[str, ...] = ()
    target: str | None = None
    required: bool = True
    unfence: bool = False


def parse_reply(text: str, fields: tuple[ReplyField, ...],
                answer_format: str) -> dict[str, str] | Reject:
    """The values of ``fields`` from a reply in either shape; the requested shape is tried first.

    Returns ``{key: value}`` for every field (optional ones absent from the reply are ""), or the
    Reject of the requested shape when neither shape yields the required fields.
    """
    order = (_reply_from_json, _reply_from_sections) if answer_format == "json" else (
        _reply_from_sections, _reply_from_json)
    first = order[0](text, fields)
    if not isinstance(first, Reject):
        return first
    second = order[1](text, fields)
    return first if isinstance(second, Reject) else second


def _reply_from_json(text: str, fields: tuple[ReplyField, ...]) -> dict[str, str] | Reject:
    obj = parse_json_object(text)
    if isinstance(obj, Reject):
        return obj
    return _check_reply({f.key: pick(obj, (f.key,) + f.aliases) for f in fields}, fields)


def _reply_from_sections(text: str, fields: tuple[ReplyField, ...]) -> dict[str, str] | Reject:
    found = parse_sections(text, {f.key: f.headers for f in fields})
    if isinstance(found, Reject):
        return found
    return _check_reply({f.key: found.get(f.key) for f in fields}, fields)


def _check_reply(values: dict[str, Any], fields: tuple[ReplyField, ...]) -> dict[str, str] | Reject:
    for f in fields:
        if f.required and values[f.key] is None:
            return Reject(f"parse_missing_{f.key}", f"no {f.key} in the reply")
    if any(v is not None and not isinstance(v, str) for v in values.values()):
        return Reject("parse_wrong_type",
                      " and ".join(f.key for f in fields) + " must be strings")
    out: dict[str, str] = {}
    for f in fields:
        value = values[f.key] or ""
        out[f.key] = (unfence(value) if f.unfence else value).strip()
        if f.required and not out[f.key]:
            return Reject(f"parse_empty_{f.key}", f"the {f.key} is empty")
    return out


def format_reply(values: dict[str, str], fields: tuple[ReplyField, ...],
                 answer_format: str) -> str:
    """``values`` written the way the templates ask the generator to reply (for few-shot)."""
    if answer_format == "json":
        return json.dumps({f.key: values.get(f.key, "") for f in fields}, ensure_ascii=False,
                          indent=2)
    return "\n\n".join(f"[{f.headers[0]}]\n{values.get(f.key, '')}" for f in fields)


_CODE_BLOCK = re.compile(r"^[ \t]*(`{3,}|~{3,})[^\n]*\n(.*?)^[ \t]*\1", re.DOTALL | re.MULTILINE)


def code_of(text: str) -> str:
    """The code in ``text``: the first fenced block's body, else the whole text."""
    m = _CODE_BLOCK.search(text)
    return m.group(2) if m else text


def has_code_block(text: str) -> bool:
    """Whether ``text`` holds a fenced code block with something in it."""
    m = _CODE_BLOCK.search(text)
    return bool(m and m.group(2).strip())
