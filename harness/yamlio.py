"""YAML 1.2 loading with line marks, and errors that point at ``path:line:col``.

Every problem found in a declaration is reported as one line::

    tasks/convex/logreg.yaml:12:5: budget.steps: Input should be greater than 0

All errors of a file are collected, not just the first; duplicate keys are errors.

Examples
--------
>>> doc = parse_text("a: 1\\nb: [x, y]\\n", path="inline.yaml")
>>> doc.data, doc.position(("b", 1))
({'a': 1, 'b': ['x', 'y']}, (2, 8))
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

__all__ = ["DeclarationError", "Document", "Issue", "load", "parse_text", "validate"]

Loc = tuple[str | int, ...]


@dataclass(frozen=True, order=True)
class Issue:
    """One problem in one file, at a line and column (1-based)."""

    path: str
    line: int
    col: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}:{self.col}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class DeclarationError(Exception):
    """One or more declaration problems; ``str()`` gives one ``path:line:col`` line each."""

    def __init__(self, issues: Iterable[Issue]) -> None:
        self.issues = sorted(issues)
        super().__init__("\n".join(map(str, self.issues)))


@dataclass
class Document:
    """A parsed YAML file: plain data plus the position of every key and item."""

    path: str
    data: Any
    marks: dict[Loc, tuple[int, int]] = field(default_factory=dict)

    def position(self, loc: Sequence[str | int]) -> tuple[int, int]:
        """Line and column of ``loc``, or of its nearest marked ancestor."""
        loc = tuple(loc)
        while loc:
            if loc in self.marks:
                return self.marks[loc]
            loc = loc[:-1]
        return self.marks.get((), (1, 1))

    def issue(self, loc: Sequence[str | int], message: str) -> Issue:
        """An :class:`Issue` located at ``loc`` of this document."""
        line, col = self.position(loc)
        return Issue(self.path, line, col, ".".join(str(part) for part in loc), message)


def _yaml() -> YAML:
    yaml = YAML(typ="rt")  # round-trip mode keeps line marks; YAML 1.2 semantics
    yaml.allow_duplicate_keys = False
    return yaml


def parse_text(text: str, *, path: str) -> Document:
    """Parse YAML text; syntax errors and duplicate keys raise :class:`DeclarationError`."""
    try:
        node = _yaml().load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        message = "; ".join(str(part) for part in (exc.context, exc.problem) if part)
        duplicate = re.search(r'duplicate key "([^"]*)"', message)
        if duplicate:
            message = f"duplicate key {duplicate.group(1)!r}"
        raise DeclarationError([Issue(path, line, col, "", message or "invalid YAML")]) from None
    except YAMLError as exc:
        raise DeclarationError([Issue(path, 1, 1, "", f"invalid YAML: {exc}")]) from None
    document = Document(path=path, data=None)
    document.marks[()] = (1, 1)
    document.data = _plain(node, (), document.marks)
    return document


def _plain(node: Any, loc: Loc, marks: dict[Loc, tuple[int, int]]) -> Any:
    """Convert ruamel's commented containers to plain ones, recording positions."""
    if isinstance(node, CommentedMap):
        out = {}
        for key, value in node.items():
            line, col = node.lc.key(key)
            marks[(*loc, str(key))] = (line + 1, col + 1)
            out[str(key)] = _plain(value, (*loc, str(key)), marks)
        return out
    if isinstance(node, CommentedSeq):
        out_list = []
        for index, value in enumerate(node):
            line, col = node.lc.item(index)
            marks[(*loc, index)] = (line + 1, col + 1)
            out_list.append(_plain(value, (*loc, index), marks))
        return out_list
    if node is None or isinstance(node, (bool, int, float, str)):
        # ruamel's scalar subclasses (ScalarFloat, ...) become the plain builtins.
        return node if node is None or type(node) in (bool, int, float, str) else _builtin(node)
    return str(node)


def _builtin(value: Any) -> Any:
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return kind(value)
    return value


def load(path: str | os.PathLike[str], *, display: str | None = None) -> Document:
    """Read and parse the YAML file at ``path``; ``display`` is the path shown in errors."""
    shown = display or str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DeclarationError([Issue(shown, 1, 1, "", f"cannot read: {exc}")]) from None
    return parse_text(text, path=shown)


def validate(document: Document, model: type[BaseModel]) -> BaseModel:
    """Validate ``document`` against ``model``; every error is reported with its position."""
    if not isinstance(document.data, dict):
        kind = "an empty file" if document.data is None else f"a {type(document.data).__name__}"
        raise DeclarationError([document.issue((), f"expected a mapping of fields, found {kind}")])
    try:
        return model.model_validate(document.data)
    except ValidationError as exc:
        raise DeclarationError(_issues(document, exc)) from None


def _issues(document: Document, exc: ValidationError) -> list[Issue]:
    issues = []
    errors = exc.errors(include_url=False)
    located = [(_data_loc(document, e["loc"]), e) for e in errors]
    for loc, error in located:
        # A container is "too short" only because an item failed: report the item alone.
        if error["type"] == "too_short" and any(len(other) > len(loc) and other[: len(loc)] == loc for other, _ in located):
            continue
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        elif error["type"] == "missing":
            message = "required field is missing"
        issues.append(document.issue(loc, message))
    return sorted(set(issues))


def _data_loc(document: Document, loc: Sequence[str | int]) -> Loc:
    """Drop pydantic's type tags (e.g. 'tuple[str, ...]', 'function-after[...]') from ``loc``."""
    path: list[str | int] = []
    data = document.data
    for part in loc:
        if isinstance(data, dict) and isinstance(part, str) and part in data:
            data = data[part]
            path.append(part)
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
            path.append(part)
        elif isinstance(data, dict) and isinstance(part, str) and not path_is_tag(part):
            path.append(part)  # a missing or unknown key: point at its parent, name it in the field
            data = None
    return tuple(path)


def path_is_tag(part: str) -> bool:
    """pydantic's internal loc tags: ``function-after[...]``, ``tuple[...]``, ``literal[...]``..."""
    return "[" in part or part in {"int", "float", "str", "bool"}
