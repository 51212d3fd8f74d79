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

import ast
import builtins
import functools
import hashlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
import threading
import time
import types
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from harness.spec import SPEC_TYPES, HardwareProfile, MethodSpec, Spec, SuiteSpec, TaskSpec
from harness.yamlio import DeclarationError, Document, Issue, load, validate

__all__ = [
    "KIND_DIRS",
    "Catalog",
    "Entry",
    "builtin_root",
    "check_implementations",
    "implementation_digests",
    "kind_of",
    "resolve_entry_point",
    "tuning_problem",
]

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

    def digests(self, entry_point: str) -> dict[str, str]:
        """The content digests of the catalog-local files ``entry_point`` loads (see :func:`implementation_digests`)."""
        return implementation_digests(entry_point, relative_to=self.path.parent)


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
                for method_id in block.hyperparameters:
                    if method_id in self.methods:
                        try:
                            for point in block.hyperparameter_grid(method_id):
                                self.methods[method_id].spec.resolve_hyperparameters(point)
                        except ValueError as exc:
                            issues.append(doc.issue((*at, "hyperparameters", method_id), str(exc)))
                if suite.tuning is not None:
                    for task in tasks:
                        problem = tuning_problem(suite.tuning, task)
                        if problem:
                            issues.append(doc.issue(("tuning", "metric"), f"task {task.id!r}: {problem}"))
        return issues

    def get(self, kind: str, spec_id: str) -> Entry[Any]:
        """The entry ``spec_id`` of ``kind``; an unknown id raises ``KeyError`` naming the known ones."""
        table = self._table(kind)
        if spec_id not in table:
            raise KeyError(_unknown(kind, spec_id, table))
        return table[spec_id]


def tuning_problem(tuning: Any, task: Any) -> str | None:
    """Why ``tuning`` (a :class:`~harness.spec.Tuning`) cannot select on ``task``, in one line; ``None`` when it can."""
    from harness.spec import STEPS_TO_TARGET

    if tuning.metric == STEPS_TO_TARGET:
        return None if task.target is not None else "steps_to_target needs a target, and the task declares none"
    column = tuning.column()
    declared = [m.id for m in task.metrics]
    if column not in declared:
        return f"declares no metric {column!r} to select on (it has: {', '.join(declared)})"
    return None


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


def implementation_digests(entry_point: str, *, relative_to: Path) -> dict[str, str]:
    """SHA-256 (16 hex digits) of every catalog-local file that ``entry_point`` loads.

    Keyed by path relative to ``relative_to`` (the declaration's directory): the module file
    and, transitively, the modules and packages beside it that it imports (``import helpers``,
    ``from .sub import x``).
    A regular import (``package.module:attr``: the harness's own code, an installed package)
    has none. A module file that does not exist is ``{"<name>": "missing"}``: its run fails
    when it imports it, with the import's own error.
    """
    module_name = entry_point.partition(":")[0]
    if not module_name.endswith(".py"):
        return {}
    path = (relative_to / module_name).resolve()
    if not path.is_file():
        return {module_name: "missing"}
    base = relative_to.resolve()
    return {Path(os.path.relpath(path.parent / file, base)).as_posix(): digest for file, digest in _scan(path).digests.items()}


@dataclass(frozen=True)
class _LocalModules:
    """A catalog module and the catalog-local modules it imports, as read from disk at one moment.

    Absolute imports resolve against ``root`` (the entry module's directory, as for a script);
    relative ones against the importing module's package. What runs is exactly what was read
    and hashed here: the modules are executed from ``sources``, never read again.
    """

    root: Path
    entry: str  # the entry module's name, relative to the synthetic package
    modules: dict[str, tuple[str, bool]]  # dotted name -> (path relative to root, is a package)
    sources: dict[str, bytes]  # path relative to root -> content

    @property
    def digests(self) -> dict[str, str]:
        return {path: hashlib.sha256(data).hexdigest()[:16] for path, data in sorted(self.sources.items())}

    @property
    def package(self) -> str:
        """A name unique to this directory and this content: an edit loads fresh modules."""
        key = json.dumps([str(self.root), self.entry, self.digests], sort_keys=True)
        return f"_harness_catalog_{self.entry}_{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def _module_name(stem: str) -> str:
    return stem.replace("-", "_").replace(".", "_")


def _scan(path: Path) -> _LocalModules:
    """Read ``path`` and, transitively, the catalog-local modules its import statements name."""
    root = path.parent
    entry = _module_name(path.stem)
    modules = {entry: (path.name, False)}
    sources = {path.name: path.read_bytes()}
    queue = [entry]
    while queue:
        name = queue.pop()
        relative, is_package = modules[name]
        package = name if is_package else name.rpartition(".")[0]
        for target in _imported_names(sources[relative], package):
            for found, location in _locate(root, target):
                if found not in modules:
                    modules[found] = location
                    sources[location[0]] = (root / location[0]).read_bytes()
                    queue.append(found)
    return _LocalModules(root=root, entry=entry, modules=modules, sources=sources)


@functools.lru_cache(maxsize=1024)
def _imported_names(source: bytes, package: str) -> tuple[str, ...]:
    """Dotted names (relative to the catalog directory) that the import statements of ``source`` may load.

    Cached by content: a plan scans the same modules for many runs.
    """
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return ()  # importing it reports the error
    return tuple(_import_targets(tree, package))


def _import_targets(tree: ast.AST, package: str) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".") if package else []
                if node.level - 1 > len(parts):
                    continue  # above the catalog directory: the import itself fails
                base = ".".join(parts[: len(parts) - (node.level - 1)])
                module = ".".join(p for p in (base, node.module or "") if p)
            else:
                module = node.module or ""
            if module:
                yield module
            for alias in node.names:
                if alias.name != "*":
                    yield f"{module}.{alias.name}" if module else alias.name


def _locate(root: Path, dotted: str) -> Iterator[tuple[str, tuple[str, bool]]]:
    """The catalog-local modules and packages that importing ``dotted`` loads (none for other imports)."""
    parts = dotted.split(".")
    directory = root
    for i, part in enumerate(parts):
        name = ".".join(parts[: i + 1])
        if (directory / part / "__init__.py").is_file():
            yield name, ((directory / part / "__init__.py").relative_to(root).as_posix(), True)
            directory = directory / part
        elif (directory / f"{part}.py").is_file():
            yield name, ((directory / f"{part}.py").relative_to(root).as_posix(), False)
            return
        else:
            return


_LOADED: dict[str, _LocalModules] = {}  # synthetic package name -> what its modules execute
_LOCK = threading.RLock()


def _load_file(path: Path) -> Any:
    """Import a catalog module by path, keyed by its content and its catalog-local imports' content.

    The module and the sibling modules it imports live in a synthetic package named after
    their directory and content, so an edited file is imported afresh by a long-lived process
    (a warm worker, a test session), two catalogs' ``helpers.py`` never collide, and nothing
    is added to ``sys.path``.
    """
    local = _scan(path)
    package = local.package
    name = f"{package}.{local.entry}"
    with _LOCK:
        if name in sys.modules:
            return sys.modules[name]
        _install_finder()
        _LOADED[package] = local
        holder = types.ModuleType(package)
        holder.__path__ = []  # only the finder below finds its submodules: nothing unread runs
        holder.__package__ = package
        holder.__spec__ = importlib.machinery.ModuleSpec(package, None, is_package=True)
        sys.modules[package] = holder
        try:
            return importlib.import_module(name)
        except BaseException:
            for key in [k for k in sys.modules if k == package or k.startswith(package + ".")]:
                del sys.modules[key]
            del _LOADED[package]
            raise


class _CatalogFinder(importlib.abc.MetaPathFinder):
    """Finds the modules of a synthetic catalog package among the sources read for it."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        package, _, relative = fullname.partition(".")
        local = _LOADED.get(package)
        if local is None or relative not in local.modules:
            return None
        file, is_package = local.modules[relative]
        loader = _SourceLoader(local.sources[file], _builtins_for(package, local))
        return importlib.util.spec_from_file_location(
            fullname, local.root / file, loader=loader, submodule_search_locations=[] if is_package else None
        )


class _SourceLoader(importlib.abc.Loader):
    """Executes the bytes that were hashed (no bytecode cache: an edit within a second counts too)."""

    def __init__(self, source: bytes, builtins_: dict[str, Any]) -> None:
        self.source = source
        self.builtins = builtins_

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        # Its own builtins: a plain ``import helpers`` (also inside a function, later) finds the sibling.
        module.__dict__["__builtins__"] = self.builtins
        code = compile(self.source, module.__spec__.origin, "exec", dont_inherit=True)
        exec(code, module.__dict__)  # noqa: S102 - a catalog module is code the user asked to run


def _builtins_for(package: str, local: _LocalModules) -> dict[str, Any]:
    tops = {name.partition(".")[0] for name in local.modules}
    real = builtins.__import__

    def import_(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
        top = name.partition(".")[0]
        if level == 0 and top in tops:
            module = real(f"{package}.{name}", globals, locals, fromlist, 0)
            return module if fromlist else getattr(module, top)
        return real(name, globals, locals, fromlist, level)

    return {**builtins.__dict__, "__import__": import_}


_FINDER = _CatalogFinder()


def _install_finder() -> None:
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


# --- Checking implementations: what `harness validate` imports, in a child process ----------

#: Seconds the implementation check may take in all (imports of torch and jax included).
CHECK_TIMEOUT_S = 180.0
#: ... and with ``--smoke`` (a step of every method, jax compilations included).
SMOKE_TIMEOUT_S = 600.0


def check_implementations(catalog: Catalog, *, timeout: float = CHECK_TIMEOUT_S, smoke: bool = False) -> list[Issue]:
    """Import every task and method implementation as a run would, in one child process.

    Checks that each module imports, that its attribute exists and is callable, and that it
    accepts what a run passes: a problem class the task parameters (and ``backend``), a
    method factory the hyperparameters, a library optimizer its ``args`` and ``fixed``
    keywords (against the real signature). A module that crashes or hangs the child cannot
    take the caller down: the check it was on is reported and the child restarted for the rest.

    With ``smoke``, every method then runs ``init`` and one step, with its declared
    hyperparameters, in each framework it declares, on the first task that provides what it
    requires (``logreg`` when it can), at the task's declared parameters: the step must return a
    finite vector of the framework, shaped as its input.

    Returns
    -------
    list of Issue
        Each at the YAML key it is about (the entry, the hyperparameter, the keyword).
    """
    import subprocess
    import tempfile

    checks, owners = _implementation_checks(catalog, smoke=smoke)
    issues: list[Issue] = []
    pending = list(range(len(checks)))
    deadline = time.monotonic() + timeout
    while pending:
        with tempfile.NamedTemporaryFile("w+", suffix=".jsonl", encoding="utf-8") as out:
            request = json.dumps([dict(checks[i], index=i) for i in pending])
            left = max(deadline - time.monotonic(), 1.0)
            try:
                proc = subprocess.run(
                    [sys.executable, "-c", "from harness.catalog import _check_child; _check_child()", out.name],
                    input=request, capture_output=True, text=True, timeout=left, check=False,
                )
                ended = f"exit status {proc.returncode}" + _last_line(proc.stderr)
            except subprocess.TimeoutExpired:
                ended = f"still running after {timeout:.0f} s"
            out.seek(0)
            started: int | None = None
            for line in out.read().splitlines():
                record = json.loads(line)
                if "started" in record:
                    started = record["started"]
                    continue
                started = None
                pending.remove(record["done"])
                document = owners[record["done"]]
                issues += [document.issue(tuple(loc), message) for loc, message in record["problems"]]
        if started is None:
            for i in pending:  # the child died between checks: report each, do not loop
                issues.append(owners[i].issue(tuple(checks[i]["loc"]), f"not checked: the check process ended ({ended})"))
            break
        pending.remove(started)
        issues.append(owners[started].issue(tuple(checks[started]["loc"]), f"importing {checks[started]['target']} ended the check process ({ended})"))
        if "still running" in ended:
            issues += [owners[i].issue(tuple(checks[i]["loc"]), "not checked: the time for the check ran out") for i in pending]
            break
    return sorted(issues)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return f": {lines[-1][:300]}" if lines else ""


def _implementation_checks(catalog: Catalog, *, smoke: bool = False) -> tuple[list[dict[str, Any]], list[Document]]:
    """One check per (declaration, framework): what to import and what it must accept (and, with ``smoke``, run)."""
    checks: list[dict[str, Any]] = []
    owners: list[Document] = []
    for entry in catalog.tasks.values():
        for framework, target in entry.spec.implementations.items():
            checks.append({
                "kind": "task", "target": target, "relative_to": str(entry.path.parent),
                "loc": ["implementations", framework], "fixed_kwargs": ["backend"],
                "names": {name: ["parameters", name] for name in entry.spec.parameters},
            })
            owners.append(entry.document)
    for entry in catalog.methods.values():
        for framework, impl in entry.spec.implementations.items():
            at = ["implementations", framework]
            if impl.entry is not None:
                check = {
                    "kind": "method", "target": impl.entry, "relative_to": str(entry.path.parent),
                    "loc": [*at, "entry"], "fixed_kwargs": [],
                    "names": {name: ["hyperparameters", name] for name in entry.spec.hyperparameters},
                }
            else:
                names = {kwarg: [*at, "args", kwarg] for kwarg in impl.args}
                names |= {kwarg: [*at, "fixed", kwarg] for kwarg in impl.fixed}
                check = {
                    "kind": framework, "target": impl.optimizer, "relative_to": str(entry.path.parent),
                    "loc": [*at, "optimizer"], "fixed_kwargs": ["params"] if framework == "torch" else [],
                    "names": names,
                }
            if smoke:
                check["smoke"] = _smoke_plan(catalog, entry.spec, framework)
            checks.append(check)
            owners.append(entry.document)
    return checks, owners


def _smoke_plan(catalog: Catalog, method: MethodSpec, framework: str) -> dict[str, Any] | str:
    """What the child needs to step ``method`` once in ``framework``, or why it cannot."""
    hyperparameters = dict(method.hyperparameters)
    needs = method.requirements(hyperparameters)
    tasks = sorted(catalog.tasks.values(), key=lambda e: (e.spec.id != "logreg", e.spec.id))
    for entry in tasks:
        task = entry.spec
        if framework in task.implementations and needs <= set(task.provides):
            impl = method.implementations[framework]
            return {
                "framework": framework, "task": task.id, "problem": task.implementations[framework],
                "problem_dir": str(entry.path.parent), "parameters": task.resolve_parameters({}),
                "provides": list(task.provides), "dtype": task.dtype, "hyperparameters": hyperparameters,
                "optimizer_kwargs": method.optimizer_kwargs(framework, hyperparameters) if impl.optimizer else None,
            }
    return f"no task of the catalog provides {sorted(needs)} in {framework}: nothing to step it on"


def _check_child() -> None:
    """The child of :func:`check_implementations`: checks from stdin, one JSON line per event to ``argv[1]``."""
    checks = json.loads(sys.stdin.read())
    with open(sys.argv[1], "a", encoding="utf-8") as out:
        for check in checks:
            out.write(json.dumps({"started": check["index"]}) + "\n")
            out.flush()
            try:
                problems = _check_one(check)
            except BaseException as exc:  # noqa: BLE001 - a bad module may raise anything, SystemExit too
                problems = [(check["loc"], f"checking {check['target']} raised {_describe(exc)}")]
            out.write(json.dumps({"done": check["index"], "problems": problems}) + "\n")
            out.flush()
    os._exit(0)  # skip interpreter teardown: a module's atexit or thread must not change the outcome


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        return f"SyntaxError: {exc.msg} ({exc.filename}:{exc.lineno}:{exc.offset})"
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:500]


def _check_one(check: dict[str, Any]) -> list[tuple[list[Any], str]]:
    import difflib

    loc, target = check["loc"], check["target"]
    if check["kind"] in ("task", "method"):
        module_name = target.partition(":")[0]
        if module_name.endswith(".py") and not (Path(check["relative_to"]) / module_name).is_file():
            return [(loc, f"{module_name}: no such file beside the YAML")]
        try:
            obj = resolve_entry_point(target, relative_to=Path(check["relative_to"]))
        except ImportError as exc:
            if isinstance(exc, ModuleNotFoundError) and exc.name == module_name:
                return [(loc, f"no module named {module_name!r}")]
            if str(exc).startswith(f"{target}: module"):  # the synthetic package's name says nothing to the user
                return [(loc, f"{module_name} has no attribute {target.partition(':')[2]!r}")]
            return [(loc, f"importing {module_name} raised {_describe(exc)}")]
        except BaseException as exc:  # noqa: BLE001
            return [(loc, f"importing {module_name} raised {_describe(exc)}")]
    else:
        module_name, _, attr = target.rpartition(".")
        try:
            module = importlib.import_module(module_name)
        except BaseException as exc:  # noqa: BLE001 - torch or optax not installed, or broken
            return [(loc, f"cannot import {module_name}: {_describe(exc)}")]
        obj = getattr(module, attr, None)
        if obj is None:
            known = [n for n in dir(module) if not n.startswith("_")]
            near = difflib.get_close_matches(attr, known, n=3)
            return [(loc, f"{module_name} has no {attr!r}" + (f" (did you mean {', '.join(near)}?)" if near else ""))]
    if not callable(obj):
        return [(loc, f"{target} is not callable (it is a {type(obj).__name__})")]
    problems = _signature_problems(check, obj)
    if not problems and "smoke" in check:
        problems = _smoke(check, obj)
    return problems


def _smoke(check: dict[str, Any], obj: Any) -> list[tuple[list[Any], str]]:
    """The offline phase, ``init`` and one step of the method on a real task, as a run calls them; problems found."""
    import numpy as np

    from harness.backends import make_backend
    from harness.sealed import facts_of, offline_operator, seal

    plan, loc = check["smoke"], check["loc"]
    if isinstance(plan, str):
        return [(loc, f"smoke step skipped: {plan}")]
    framework = plan["framework"]
    try:
        backend = make_backend(framework, dtype=plan["dtype"])
        problem_cls = resolve_entry_point(plan["problem"], relative_to=Path(plan["problem_dir"]))
        problem = problem_cls(backend=backend, **plan["parameters"])
        oracle = backend.make_oracle(problem, capabilities=frozenset(plan["provides"]))
    except BaseException as exc:  # noqa: BLE001 - the task is checked on its own line; say why the step could not run
        return [(loc, f"smoke step skipped: task {plan['task']!r} could not be built ({_describe(exc)})")]
    try:
        if plan["optimizer_kwargs"] is not None:
            method = backend.library_method(check["target"], plan["optimizer_kwargs"])
        else:
            method = obj(**plan["hyperparameters"])
        params = problem.init_params(0)
        facts = facts_of(problem, oracle, params, seed=0, to_numpy=backend.to_numpy)
        sealed = seal(oracle, facts)
        if callable(getattr(method, "offline", None)):  # before init, as a run calls it
            method.offline(facts, offline_operator(oracle, facts))
        state = method.init(params, sealed)
        new, state = method.step(params, state, sealed)
    except BaseException as exc:  # noqa: BLE001 - a method may raise anything
        return [(loc, f"smoke step on task {plan['task']!r} ({framework}) raised {_describe(exc)}")]
    if type(new) is not type(params) or tuple(getattr(new, "shape", ())) != tuple(params.shape):
        return [(loc, f"smoke step on task {plan['task']!r} ({framework}) returned {type(new).__name__} of shape "
                      f"{tuple(getattr(new, 'shape', ()))}, not a parameter vector like its input {tuple(params.shape)}")]
    if not np.all(np.isfinite(backend.to_numpy(new))):
        return [(loc, f"smoke step on task {plan['task']!r} ({framework}) returned non-finite parameters")]
    return []


def _signature_problems(check: dict[str, Any], obj: Any) -> list[tuple[list[Any], str]]:
    """What the signature of ``obj`` does not accept of what a run passes it."""
    import difflib
    import inspect

    target, loc = check["target"], check["loc"]
    try:
        parameters = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        return []  # a builtin without a signature: the run finds out
    problems: list[tuple[list[Any], str]] = []
    open_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    keywords = {n for n, p in parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    given = set(check["names"]) | set(check["fixed_kwargs"])
    for name, where in check["names"].items():
        if name not in keywords and not open_kwargs:
            near = difflib.get_close_matches(name, sorted(keywords), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else f" (it accepts {', '.join(sorted(keywords)) or 'none'})"
            problems.append((where, f"{target} has no keyword argument {name!r}{hint}"))
    if check["kind"] == "task" and "backend" not in keywords and not open_kwargs:
        problems.append((loc, f"{target} does not accept the keyword argument 'backend' that every problem is given"))
    for name, p in parameters.items():
        required = p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        if required and name not in given:
            what = {"task": "a task parameter", "method": "a hyperparameter"}.get(check["kind"], "given in args or fixed")
            problems.append((loc, f"{target} requires {name!r}, which is not {what}"))
    return problems

