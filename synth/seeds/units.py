"""Function-level and file-level seed units (``--mode function`` / ``--mode file``).

Function mode takes whole functions, methods and classes. A unit longer than the line limit is
opened up and its members (methods, nested functions) are tried instead, so a huge class still
yields its methods; a unit shorter than the limit is dropped. Python is parsed with the standard
library's ``ast``; other languages with tree-sitter and the grammar wheels published by the
tree-sitter organisation (``tree-sitter-rust``, ``tree-sitter-javascript``, …, the ``treesitter``
extra). Leading doc comments are part of a unit.
"""

from __future__ import annotations

import ast
import importlib
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

from synth.config import SeedsConfig
from synth.errors import ConfigError
from synth.seeds.corpus import SourceFile

TREESITTER_EXTRA = "pip install 'synth[treesitter]'"

# language -> (grammar module, function returning the language pointer, unit node types)
GRAMMARS: dict[str, tuple[str, str, frozenset[str]]] = {
    "rust": ("tree_sitter_rust", "language",
             frozenset({"function_item", "impl_item", "trait_item"})),
    "go": ("tree_sitter_go", "language",
           frozenset({"function_declaration", "method_declaration"})),
    "javascript": ("tree_sitter_javascript", "language",
                   frozenset({"function_declaration", "generator_function_declaration",
                              "class_declaration", "method_definition"})),
    "typescript": ("tree_sitter_typescript", "language_typescript",
                   frozenset({"function_declaration", "generator_function_declaration",
                              "class_declaration", "abstract_class_declaration",
                              "method_definition", "interface_declaration"})),
    "java": ("tree_sitter_java", "language",
             frozenset({"class_declaration", "interface_declaration", "enum_declaration",
                        "record_declaration", "method_declaration",
                        "constructor_declaration"})),
    "c": ("tree_sitter_c", "language", frozenset({"function_definition"})),
    "cpp": ("tree_sitter_cpp", "language",
            frozenset({"function_definition", "class_specifier", "struct_specifier"})),
    "csharp": ("tree_sitter_c_sharp", "language",
               frozenset({"class_declaration", "struct_declaration", "interface_declaration",
                          "record_declaration", "method_declaration",
                          "constructor_declaration"})),
    "ruby": ("tree_sitter_ruby", "language",
             frozenset({"method", "singleton_method", "class", "module"})),
    "php": ("tree_sitter_php", "language_php",
            frozenset({"function_definition", "method_declaration", "class_declaration"})),
    "shell": ("tree_sitter_bash", "language", frozenset({"function_definition"})),
}


@dataclass(frozen=True, slots=True)
class Unit:
    """Lines ``start``..``end`` (1-based, inclusive) of a file, and the unit's name."""

    start: int
    end: int
    name: str


def function_units(source: SourceFile, cfg: SeedsConfig, counts: Counter[str]) -> list[Unit]:
    """The functions/methods/classes of ``source`` within the line limits (counted drops)."""
    if source.lang == "python":
        return _python_units(source.text, cfg, counts)
    if source.lang not in GRAMMARS:
        counts["skip_no_grammar"] += 1
        return []
    return _treesitter_units(source, cfg, counts)


def file_unit(source: SourceFile) -> Unit:
    """The whole file as one unit (the size gate decides whether it is kept)."""
    return Unit(1, max(1, len(source.text.splitlines())), source.path)


def _python_units(text: str, cfg: SeedsConfig, counts: Counter[str]) -> list[Unit]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escape sequences in old code
            tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        counts["skip_parse_error"] += 1
        return []
    lines = text.splitlines()
    out: list[Unit] = []
    defs = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, ast.stmt):
                continue
            if not isinstance(child, defs):
                visit(child, prefix)  # defs under if/try/with blocks
                continue
            start = min([d.lineno for d in child.decorator_list] + [child.lineno])
            end = child.end_lineno or child.lineno
            name = prefix + child.name
            verdict = _size(end - start + 1, cfg)
            if verdict == "too_long":
                counts["unit_too_long"] += 1
                visit(child, name + ".")
            elif verdict == "too_short":
                counts["unit_too_short"] += 1
            elif cfg.require_doc and not (ast.get_docstring(child, clean=False)
                                          or _has_hash_comment(lines, start, end)):
                counts["unit_no_doc"] += 1
            else:
                out.append(Unit(start, end, name))

    visit(tree, "")
    return out


def _has_hash_comment(lines: list[str], start: int, end: int) -> bool:
    return any(ln.lstrip().startswith("#") for ln in lines[max(0, start - 2):end])


def _size(n_lines: int, cfg: SeedsConfig) -> str | None:
    if n_lines > cfg.fn_max_lines:
        return "too_long"
    if n_lines < cfg.fn_min_lines:
        return "too_short"
    return None


@cache
def _parser(lang: str) -> Any:
    module_name, attr, _ = GRAMMARS[lang]
    try:
        import tree_sitter

        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"--mode function for {lang} files needs tree-sitter and its "
            f"{module_name.replace('_', '-')} grammar: {TREESITTER_EXTRA}") from exc
    return tree_sitter.Parser(tree_sitter.Language(getattr(module, attr)()))


def _treesitter_units(source: SourceFile, cfg: SeedsConfig, counts: Counter[str]) -> list[Unit]:
    kinds = GRAMMARS[source.lang][2]
    tree = _parser(source.lang).parse(source.text.encode("utf-8", "surrogatepass"))
    out: list[Unit] = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        children = list(reversed(node.named_children))
        if node.type not in kinds:
            stack.extend(children)
            continue
        start_node = node
        prev = node.prev_named_sibling
        while prev is not None and "comment" in prev.type and \
                prev.end_point[0] >= start_node.start_point[0] - 1:
            start_node, prev = prev, prev.prev_named_sibling
        start, end = start_node.start_point[0] + 1, node.end_point[0] + 1
        if node.end_point[1] == 0 and end > start:
            end -= 1  # a node ending at column 0 ends on the line before
        verdict = _size(end - start + 1, cfg)
        if verdict == "too_long":
            counts["unit_too_long"] += 1
            stack.extend(children)
        elif verdict == "too_short":
            counts["unit_too_short"] += 1
        elif cfg.require_doc and start_node is node and not _has_comment(node):
            counts["unit_no_doc"] += 1
        else:
            out.append(Unit(start, end, _name(node)))
    out.sort(key=lambda u: u.start)
    return out


def _has_comment(node: Any) -> bool:
    stack = [node]
    while stack:
        n = stack.pop()
        if "comment" in n.type:
            return True
        stack.extend(n.children)
    return False


def _name(node: Any) -> str:
    ident = node.child_by_field_name("name")
    if ident is None:
        ident = node.child_by_field_name("type")  # rust impl blocks
    text = ident.text if ident is not None else None
    return text.decode("utf-8", "replace") if text else node.type


def iter_unit_text(source: SourceFile, units: list[Unit]) -> Iterator[tuple[Unit, str]]:
    """Each unit with its text."""
    lines = source.text.splitlines()
    for unit in units:
        yield unit, "\n".join(lines[unit.start - 1:unit.end])
