"""The config fields --set and --config take, read off gancli.config's dataclasses: name, type, default and a
meaning (the train option's help for a field it sets, else the field's source comment), so the list cannot fall
behind the code."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import textwrap
import tokenize
from typing import Any

from gancli.config import RunConfig


# The sections whose fields train's options set under the field's own name (--lr sets optimizer.lr); --preset
# picks a recipe, which the preset field only names.
OPTION_SECTIONS = ("", "optimizer.", "penalty.")
NOT_OPTIONS = ("preset",)


def config_fields(option_help: dict[str, str] | None = None) -> list[tuple[str, str, str, str]]:
    """(section.field, type, default, meaning) of every field of RunConfig and its sections, in source order.
    option_help: train's options' help by parameter name (batch_size), the meaning of the fields they set."""
    return _walk(RunConfig, "", {k: v for k, v in (option_help or {}).items() if k not in NOT_OPTIONS})


def _walk(cls: type, prefix: str, option_help: dict[str, str]) -> list[tuple[str, str, str, str]]:
    meanings = _comments(cls)
    default = cls()
    rows = []
    for f in dataclasses.fields(cls):
        value = getattr(default, f.name)
        if dataclasses.is_dataclass(value):
            rows += _walk(type(value), f"{prefix}{f.name}.", option_help)
            continue
        meaning = (option_help.get(f.name) if prefix in OPTION_SECTIONS else None) or meanings.get(f.name, "")
        rows.append((prefix + f.name, str(f.type), _default(value), meaning))
    return rows


def _default(value: Any) -> str:
    """A default as --set takes it: tuples comma-separated, bools lower case, text bare."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


def _comments(cls: type) -> dict[str, str]:
    """Each field's comment in the class's source: the one ending its line, else the block just above it."""
    source = textwrap.dedent(inspect.getsource(cls))
    comments: dict[int, str] = {}  # line -> comment text
    ends: set[int] = set()  # lines where a comment follows code
    code_lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
            if tok.start[0] in code_lines:
                ends.add(tok.start[0])
        elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER):
            code_lines.add(tok.start[0])
    out = {}
    (node,) = ast.parse(source).body
    for item in node.body:
        if not (isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)):
            continue
        line = item.lineno
        if line in ends:
            out[item.target.id] = comments[line]
            continue
        above = []
        while line - 1 in comments and line - 1 not in ends:
            line -= 1
            above.insert(0, comments[line])
        if above:
            out[item.target.id] = " ".join(above)
    return out
