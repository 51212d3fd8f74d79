"""Discovery of declarations and resolution of their entry points.

A catalog root holds ``tasks/``, ``methods/``, ``hardware/`` and ``suites/``; every ``*.yaml``
below one of them is a declaration of that kind, named by its ``id`` (which is also its file
name). The built-in root ships with the package; ``--catalog DIR`` adds the user's roots.
Loading reads YAML and validates it, and imports no task or method code: entry points are
resolved only when a run needs them.

Examples
--------
>>> catalog = Catalog.load()  # doctest: +SKIP
>>> catalog.methods["gd"].spec.requires  # doctest: +SKIP
('grad',)
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Generic, TypeVar

from harness.spec import SPEC_TYPES, HardwareProfile, MethodSpec, Spec, SuiteSpec, TaskSpec
from harness.yamlio import DeclarationError, Document, Issue, load, validate

__all__ = ["KIND_DIRS", "Catalog", "Entry", "builtin_root", "kind_of", "resolve_entry_point"]

T = TypeVar("T", bound=Spec)

#: Directory name -> declaration kind.
KIND_DIRS = {"tasks": "task", "methods": "method", "hardware": "hardware", "suites": "suite"}


def builtin_root() -> Path:
    """The built-in catalog: inside the installed package, or at the source tree's top."""
    package = Path(__file__).resolve().parent
    shipped = package / "_builtin"
    return shipped if shipped.is_dir() else package.parent


def kind_of(path: Path) -> str | None:
    """The declaration kind of ``path``, from the nearest ancestor directory named like a kind."""
    for parent in path.resolve().parents:
        if parent.name in KIND_DIRS:
            return KIND_DIRS[parent.name]
    return None


@dataclass(frozen=True)
class Entry(Generic[T]):
    """A validated declaration and where it came from."""

    spec: T
    path: Path
    document: Document = field(repr=False, compare=False)

    def resolve(self, entry_point: str) -> Any:
        """Resolve ``module:attr`` (a ``.py`` module relative to this file)."""
        return resolve_entry_point(entry_point, relative_to=self.path.parent)


@dataclass
class Catalog:
    """Every declaration of the loaded roots, keyed by kind and id."""

    tasks: dict[str, Entry[TaskSpec]] = field(default_factory=dict)
    methods: dict[str, Entry[MethodSpec]] = field(default_factory=dict)
    hardware: dict[str, Entry[HardwareProfile]] = field(default_factory=dict)
    suites: dict[str, Entry[SuiteSpec]] = field(default_factory=dict)

    @classmethod
    def load(
        cls,
        roots: Sequence[str | os.PathLike[str]] = (),
        *,
        files: Sequence[str | os.PathLike[str]] = (),
        builtin: bool = True,
    ) -> Catalog:
        """Load and cross-check the built-in root, ``roots`` and single ``files``.

        Raises
        ------
        DeclarationError
            With every problem of every file, each as ``path:line:col: field: message``.
        """
        catalog = cls()
        issues: list[Issue] = []
        all_roots = [builtin_root()] if builtin else []
        all_roots += [Path(r) for r in roots]
        found: list[tuple[Path, str]] = []
        for root in all_roots:
            if not Path(root).is_dir():
                issues.append(Issue(str(root), 1, 1, "", "catalog directory not found"))
                continue
            for dirname, kind in KIND_DIRS.items():
                found += [(p, kind) for p in sorted((Path(root) / dirname).rglob("*.yaml"))]
        for file in map(Path, files):
            kind = kind_of(file)
            if kind is None:
                issues.append(Issue(str(file), 1, 1, "", f"not below a directory named one of {sorted(KIND_DIRS)}"))
            else:
                found.append((file, kind))
        seen: set[Path] = set()
        for path, kind in found:
            if path.resolve() in seen:
                continue
            seen.add(path.resolve())
            try:
                catalog._add(path, kind)
            except DeclarationError as exc:
                issues += exc.issues
        issues += catalog._cross_check()
        if issues:
            raise DeclarationError(issues)
        return catalog

    def _table(self, kind: str) -> dict[str, Entry[Any]]:
        return {"task": self.tasks, "method": self.methods, "hardware": self.hardware, "suite": self.suites}[kind]

    def _add(self, path: Path, kind: str) -> None:
        document = load(path, display=_display(path))
        spec = validate(document, SPEC_TYPES[kind])
        if spec.id != path.stem:
            raise DeclarationError([document.issue(("id",), f"id {spec.id!r} differs from the file name {path.stem!r}")])
        table = self._table(kind)
        if spec.id in table:
            first = table[spec.id]
            line = first.document.position(("id",))[0]
            raise DeclarationError(
                [document.issue(("id",), f"{kind} {spec.id!r} is already declared at {first.document.path}:{line}")]
            )
        table[spec.id] = Entry(spec=spec, path=path, document=document)

    def _cross_check(self) -> list[Issue]:
        """References between files: a suite's tasks, methods, hardware, grid and overrides; probe ids."""
        from harness.probes import PROBES

        issues = []
        for entry in self.tasks.values():
            for i, probe in enumerate(entry.spec.probes):
                if probe.id not in PROBES:
                    issues.append(entry.document.issue(("probes", i, "id"), _unknown("probe", probe.id, PROBES)))
        for entry in self.suites.values():
            suite, doc = entry.spec, entry.document
            for i, hw in enumerate(suite.hardware):
                if hw not in self.hardware:
                    issues.append(doc.issue(("hardware", i), _unknown("hardware profile", hw, self.hardware)))
            for e, block in enumerate(suite.entries):
                at = ("entries", e)
                for i, probe in enumerate(block.probes):
                    if probe.id not in PROBES:
                        issues.append(doc.issue((*at, "probes", i, "id"), _unknown("probe", probe.id, PROBES)))
                tasks = [self.tasks[t].spec for t in block.tasks if t in self.tasks]
                for i, task_id in enumerate(block.tasks):
                    if task_id not in self.tasks:
                        issues.append(doc.issue((*at, "tasks", i), _unknown("task", task_id, self.tasks)))
                for i, method_id in enumerate(block.methods):
                    if method_id not in self.methods:
                        issues.append(doc.issue((*at, "methods", i), _unknown("method", method_id, self.methods)))
                for name, values in block.grid.items():
                    for task in tasks:
                        try:
                            for value in values:
                                task.resolve_parameters({name: value})
                        except ValueError as exc:
                            issues.append(doc.issue((*at, "grid", name), str(exc)))
                for method_id, overrides in block.hyperparameters.items():
                    if method_id in self.methods:
                        try:
                            self.methods[method_id].spec.resolve_hyperparameters(overrides)
                        except ValueError as exc:
                            issues.append(doc.issue((*at, "hyperparameters", method_id), str(exc)))
        return issues

    def get(self, kind: str, spec_id: str) -> Entry[Any]:
        """The entry ``spec_id`` of ``kind``; an unknown id raises ``KeyError`` naming the known ones."""
        table = self._table(kind)
        if spec_id not in table:
            raise KeyError(_unknown(kind, spec_id, table))
        return table[spec_id]


def _unknown(kind: str, spec_id: str, known: Iterable[str]) -> str:
    return f"unknown {kind} {spec_id!r} (known: {', '.join(sorted(known)) or 'none'})"


def _display(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def resolve_entry_point(entry_point: str, *, relative_to: Path) -> Any:
    """Import ``module:attr``; a module ending in ``.py`` is a file relative to ``relative_to``."""
    module_name, _, attr = entry_point.partition(":")
    if module_name.endswith(".py"):
        module = _load_file((relative_to / module_name).resolve())
    else:
        module = importlib.import_module(module_name)
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ImportError(f"{entry_point}: module {module.__name__!r} has no attribute {attr!r}") from None


@cache
def _load_file(path: Path) -> Any:
    """Import a catalog module by path, once per process, under a name unique to its path."""
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    name = f"_harness_catalog_{path.stem.replace('-', '_')}_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before exec: dataclasses and pickling look the module up
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
