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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import ScalarNode

__all__ = ["MAX_BYTES", "MAX_DEPTH", "MAX_EXPANDED", "DeclarationError", "Document", "Issue", "load", "parse_text", "validate"]

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


#: Limits that keep a hostile file cheap to reject: bytes read, nesting depth, and the size of
#: the data once aliases are expanded (a container counts 1, a scalar 1 plus its length), which
#: stops an alias bomb before it is built, and bounds what validation walks.
MAX_BYTES = 64 * 1024
MAX_DEPTH = 32
MAX_EXPANDED = 256 * 1024

_MERGE = "<<"
_STR = "tag:yaml.org,2002:str"  # `!!str 1.0`: the one tag kept, a way to write a string


class _Stop(Exception):
    """A problem after which the rest of the stream is not worth reading."""

    def __init__(self, line: int, col: int, message: str) -> None:
        super().__init__(message)
        self.line, self.col, self.message = line, col, message


@dataclass
class _Frame:
    """An open mapping or sequence while the event stream is read."""

    loc: Loc
    data: dict[str, Any] | list[Any]
    anchor: str | None
    weight: int = 1
    key: str | None = None  # a mapping's key whose value comes next
    dropped: bool = False  # the pending key was rejected: its value is read and dropped


def parse_text(text: str, *, path: str) -> Document:
    """Parse YAML text into plain data with positions; every problem raises :class:`DeclarationError`.

    Data only: no tags, no merge keys (``<<``), one document, scalar keys. Aliases are
    expanded (sharing their anchor's objects), within :data:`MAX_EXPANDED`; nesting stops at
    :data:`MAX_DEPTH`. The events are read one by one and the tree is built without recursion,
    so neither a deep nor an aliased file can exhaust the stack or the memory.
    """
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:
        raise DeclarationError([Issue(path, 1, 1, "", _too_big(size))])
    issues: list[Issue] = []
    document = Document(path=path, data=None)
    document.marks[()] = (1, 1)
    try:
        _build(text, document, issues)
    except _Stop as stop:
        issues.append(Issue(path, stop.line, stop.col, "", stop.message))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        message = "; ".join(str(part) for part in (exc.context, exc.problem) if part)
        issues.append(Issue(path, line, col, "", message or "invalid YAML"))
    except YAMLError as exc:
        issues.append(Issue(path, 1, 1, "", f"invalid YAML: {_one_line(str(exc))}"))
    if issues:
        raise DeclarationError(issues)
    return document


def _too_big(size: int) -> str:
    return f"file too large: {size} bytes (a declaration is at most {MAX_BYTES} bytes)"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _libyaml_events(text: str) -> list[Any] | None:
    """The events of ``text`` from libyaml (PyYAML's C parser), or ``None`` where ruamel must read it.

    ruamel's pure-Python parser is 0.2 s of every command's start-up on the catalog; libyaml
    gives the same events (types, values, tags, anchors, marks) 10-20x faster. It stands only
    for a text it parses without error and where the two are known to agree: any error goes
    to ruamel, whose messages are the project's, and so does a text with an empty plain
    scalar (libyaml marks one at the end of the line before, ruamel at the next token; no
    mark of one is used today, a later use would differ). Plain style is ``''`` in libyaml,
    ``None`` in ruamel: normalized. ``tests/test_yamlio.py`` checks that both give the same
    document or the same issues on every YAML file of the project, the bad-declaration corpora
    and a list of tricky texts. Scalars are still resolved by ruamel's YAML 1.2 resolver.
    """
    try:
        import yaml
        from yaml import CLoader  # noqa: F401 - only with libyaml: the pure PyYAML parser is no faster
    except ImportError:
        return None
    loader = yaml.CLoader(text)
    events = []
    try:
        while loader.check_event():
            event = loader.get_event()
            if type(event).__name__ == "ScalarEvent":
                if event.style == "":
                    event.style = None
                if event.style is None and event.value == "":
                    return None
            events.append(event)
    except yaml.YAMLError:
        return None
    finally:
        loader.dispose()
    return events


def _build(text: str, document: Document, issues: list[Issue], *, fast: bool = True) -> None:
    """Read the event stream of ``text`` into ``document`` (data and marks), collecting issues."""
    yaml = YAML(typ="safe", pure=True)  # YAML 1.2 resolution of plain scalars
    resolver = yaml.resolver
    events = _libyaml_events(text) if fast else None
    anchors: dict[str, tuple[Any, int]] = {}
    stack: list[_Frame] = []
    documents = 0
    path = document.path

    def issue(mark: Any, message: str, loc: Loc = ()) -> None:
        issues.append(Issue(path, mark.line + 1, mark.column + 1, ".".join(map(str, loc)), message))

    def place(value: Any, weight: int) -> None:
        """Put a finished node into its parent (or make it the document)."""
        if not stack:
            document.data = value
            return
        parent = stack[-1]
        parent.weight += weight
        if parent.weight > MAX_EXPANDED:
            child = (*parent.loc, len(parent.data) if isinstance(parent.data, list) else parent.key)
            line, col = document.position(child)
            raise _Stop(line, col, f"the data grows past {MAX_EXPANDED} bytes once aliases are expanded")
        if isinstance(parent.data, list):
            parent.data.append(value)
        else:
            if not parent.dropped:
                parent.data[parent.key] = value
            parent.key, parent.dropped = None, False

    def open_loc(event: Any) -> Loc | None:
        """The location of the node that ``event`` starts; ``None`` when it is a mapping key."""
        if not stack:
            return ()
        parent = stack[-1]
        mark = (event.start_mark.line + 1, event.start_mark.column + 1)
        if isinstance(parent.data, list):
            loc = (*parent.loc, len(parent.data))
            document.marks.setdefault(loc, mark)
            return loc
        if parent.key is None and not parent.dropped:
            return None
        return (*parent.loc, parent.key) if not parent.dropped else (*parent.loc, "<dropped>")

    for event in events if events is not None else yaml.parse(text):
        name = type(event).__name__
        if name == "DocumentStartEvent":
            documents += 1
            if documents > 1:
                issue(event.start_mark, "a declaration is one YAML document: remove the second '---'")
                return
            continue
        if name not in ("ScalarEvent", "AliasEvent", "MappingStartEvent", "SequenceStartEvent", "MappingEndEvent", "SequenceEndEvent"):
            continue
        if name in ("MappingEndEvent", "SequenceEndEvent"):
            frame = stack.pop()
            if frame.anchor is not None:
                anchors[frame.anchor] = (frame.data, frame.weight)
            place(frame.data, frame.weight)
            continue
        loc = open_loc(event)
        if loc is None:  # a mapping key
            parent = stack[-1]
            if name != "ScalarEvent":
                mark = event.start_mark
                raise _Stop(mark.line + 1, mark.column + 1, "a key must be a plain scalar (no alias, mapping or sequence)")
            key = event.value
            if event.tag is not None:
                issue(event.start_mark, f"tag {event.tag!s} is not supported: a declaration is plain data", (*parent.loc, key))
                parent.dropped = True
            elif key == _MERGE and event.style is None:
                issue(event.start_mark, "merge keys (<<) are not supported: write the keys out", parent.loc)
                parent.dropped = True
            elif key in parent.data:
                issue(event.start_mark, f"duplicate key {key!r}", parent.loc)
                parent.dropped = True
            else:
                parent.key = key
                document.marks[(*parent.loc, key)] = (event.start_mark.line + 1, event.start_mark.column + 1)
            if event.anchor is not None:
                issue(event.start_mark, "an anchor on a key is not supported", parent.loc)
            continue
        if name != "AliasEvent" and event.tag is not None and not (name == "ScalarEvent" and str(event.tag) == _STR):
            issue(event.start_mark, f"tag {event.tag!s} is not supported: a declaration is plain data", loc)
        if name == "AliasEvent":
            if event.anchor not in anchors:
                issue(event.start_mark, f"alias *{event.anchor} names no anchor defined before it", loc)
                place(None, 1)
            else:
                place(*anchors[event.anchor])
        elif name == "ScalarEvent":
            value = _scalar(event, resolver, issue, loc)
            weight = 1 + len(event.value)
            if event.anchor is not None:
                anchors[event.anchor] = (value, weight)
            place(value, weight)
        else:
            if len(stack) >= MAX_DEPTH:
                raise _Stop(event.start_mark.line + 1, event.start_mark.column + 1, f"nested deeper than {MAX_DEPTH} levels")
            container: dict[str, Any] | list[Any] = {} if name == "MappingStartEvent" else []
            stack.append(_Frame(loc=loc, data=container, anchor=event.anchor))


_FLOATS = {".inf": float("inf"), "+.inf": float("inf"), "-.inf": float("-inf"), ".nan": float("nan")}


def _scalar(event: Any, resolver: Any, issue: Any, loc: Loc) -> Any:
    """The builtin value of a scalar event under YAML 1.2's core schema."""
    if event.style is not None or event.tag is not None:  # quoted or block: always a string
        return event.value
    tag = str(resolver.resolve(ScalarNode, event.value, (True, False))).rpartition(":")[2]
    text = event.value
    try:
        if tag == "null":
            return None
        if tag == "bool":
            return text.lower() == "true"
        if tag == "int":
            digits = text.replace("_", "")
            sign, body = (digits[0], digits[1:]) if digits[:1] in "+-" else ("", digits)
            base = {"0x": 16, "0o": 8, "0b": 2}.get(body[:2].lower(), 10)
            value = int(body[2:] if base != 10 else body, base)
            return -value if sign == "-" else value
        if tag == "float":
            special = _FLOATS.get(text.lower())
            return special if special is not None else float(text.replace("_", ""))
    except ValueError:  # only an int of more digits than Python converts
        issue(event.start_mark, f"{tag} {text[:20]!r}... has too many digits", loc)
        return None
    return text


def load(path: str | os.PathLike[str], *, display: str | None = None) -> Document:
    """Read and parse the YAML file at ``path``; ``display`` is the path shown in errors."""
    shown = display or str(path)
    try:
        size = os.stat(path).st_size
        if size > MAX_BYTES:  # before reading: a huge file costs nothing
            raise DeclarationError([Issue(shown, 1, 1, "", _too_big(size))])
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
    located = [(_data_loc(document, (*e["loc"], *_extra_loc(e))), e) for e in errors]
    # Every proper prefix of a located error: a set, so many errors stay linear.
    parents = {loc[:n] for loc, _ in located for n in range(len(loc))}
    for loc, error in located:
        # A container is "too short" only because an item failed: report the item alone.
        if error["type"] == "too_short" and loc in parents:
            continue
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        elif error["type"] == "missing":
            message = "required field is missing"
        issues.append(document.issue(loc, message))
    return sorted(set(issues))


def _extra_loc(error: Any) -> Loc:
    """The key below the failing model that a validator named (``harness.spec.LocatedError``)."""
    cause = (error.get("ctx") or {}).get("error")
    return tuple(getattr(cause, "loc", ()))


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
