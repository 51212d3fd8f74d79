"""The ``harness`` command line.

Start-up stays light: ``--help``, ``validate``, ``list`` and ``schema`` import neither torch
nor jax (nor polars); each command imports what it needs when it runs.

Exit status: 0 on success; 1 when a bench leaves a run of its plan in status error, timeout
or oom; 2 for bad input (declaration errors, unknown ids, bad options, a --store that is no
store); 3 when the store cannot be written (a full disk, a read-only store); each error one
line on stderr, never a traceback; 130 when interrupted.
"""

from __future__ import annotations

import errno
import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(
    name="harness",
    help="Declarative benchmarks for gradient-based optimization methods.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DEFAULT_STORE = Path("harness-store")

#: Exit statuses: a run of the plan ended in error, timeout or oom; the input was wrong; the
#: store could not be written.
RUNS_FAILED, BAD_INPUT, STORE_UNWRITABLE = 1, 2, 3

CatalogOpt = Annotated[
    Optional[list[Path]],
    typer.Option("--catalog", help="An extra catalog root (with tasks/, methods/, hardware/, suites/). Repeatable."),
]
StoreOpt = Annotated[Path, typer.Option("--store", help="The store directory.")]


def _console():  # noqa: ANN202 - rich is imported lazily
    import os

    from rich.console import Console

    # Piped output (CI logs, files) gets COLUMNS when set, else 160 rather than rich's 80: the
    # tables fit any width (they wrap, abbreviate or split), and logs read better wider.
    width = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", "0") or 0) or _PIPED_WIDTH
    # soft_wrap: a message (a path, an error's last line) stays one line, to be read or grepped whole.
    return Console(highlight=False, width=width, soft_wrap=True)


_PIPED_WIDTH = 160


def _load_catalog(roots: list[Path] | None, files: list[Path] = ()):  # noqa: ANN202
    # Through the executors' per-process cache: `bench` then hands the same source to its executor,
    # which finds the catalog already loaded instead of reading every YAML file again.
    from harness.execute.worker import CatalogSource
    from harness.yamlio import DeclarationError

    try:
        return CatalogSource.of(roots or (), files=files).load()
    except DeclarationError as exc:
        for issue in exc.issues:
            typer.echo(str(issue), err=True)
        typer.echo(f"{len(exc.issues)} error(s) in the declarations", err=True)
        raise typer.Exit(BAD_INPUT) from None


def _fail(message: str, status: int = BAD_INPUT) -> typer.Exit:
    """Print ``error: message`` on stderr; raise the result (exit ``status``, by default 2: bad input)."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(status)


@app.command()
def validate(
    paths: Annotated[Optional[list[Path]], typer.Argument(help="Files or catalog roots; default: the built-in catalog.")] = None,
    catalog: CatalogOpt = None,
    imports: Annotated[bool, typer.Option("--imports/--no-imports", help="Also import every implementation (in a child process) and check what it accepts.")] = True,
    smoke: Annotated[bool, typer.Option("--smoke", help="Also run init and one step of every method, in each framework it declares, on a task it can run on.")] = False,
) -> None:
    """Check declarations: every error is printed as path:line:col: field: message.

    After the YAML, every task and method implementation is imported in a child process (a
    module that crashes or hangs cannot take this command down) and checked against its
    declaration: the factory exists and accepts the declared parameters, a library optimizer
    exists and accepts its keywords. With ``--smoke`` every method then takes one step, in
    each framework it declares, on the first task that provides what it requires.
    """
    roots = list(catalog or [])
    files: list[Path] = []
    for path in paths or []:
        if path.is_dir() and any((path / d).is_dir() for d in ("tasks", "methods", "hardware", "suites")):
            roots.append(path)
        elif path.is_dir():
            files += sorted(path.rglob("*.yaml"))
        elif path.exists():
            files.append(path)
        else:
            typer.echo(f"{path}: no such file or directory", err=True)
            raise typer.Exit(BAD_INPUT)
    loaded = _load_catalog(roots, files)
    if imports or smoke:
        _check_implementations(loaded, smoke=smoke)
    counts = {kind: len(getattr(loaded, kind)) for kind in ("tasks", "methods", "hardware", "suites")}
    typer.echo("ok: " + ", ".join(f"{n} {kind}" for kind, n in counts.items()))


def _check_implementations(loaded, *, smoke: bool) -> None:  # noqa: ANN001 - a Catalog, imported lazily
    """``validate``'s second stage: the implementations, checked in a child process; exit 2 on a problem."""
    from harness.catalog import CHECK_TIMEOUT_S, SMOKE_TIMEOUT_S, check_implementations

    issues = check_implementations(loaded, smoke=smoke, timeout=SMOKE_TIMEOUT_S if smoke else CHECK_TIMEOUT_S)
    for issue in issues:
        typer.echo(str(issue), err=True)
    if issues:
        typer.echo(f"{len(issues)} error(s) in the implementations", err=True)
        raise typer.Exit(BAD_INPUT)


@app.command("list")
def list_(
    kind: Annotated[str, typer.Argument(help="tasks | methods | hardware | suites")],
    catalog: CatalogOpt = None,
) -> None:
    """List the declarations of one kind, with their source."""
    from rich.table import Table
    from rich.text import Text

    if kind not in ("tasks", "methods", "hardware", "suites"):
        typer.echo(f"unknown kind {kind!r}: choose tasks, methods, hardware or suites", err=True)
        raise typer.Exit(BAD_INPUT)
    loaded = _load_catalog(catalog)
    table = Table(title=kind)
    for column in ("id", "name / description", "details"):
        table.add_column(column, overflow="fold")
    for spec_id, entry in sorted(getattr(loaded, kind).items()):
        spec = entry.spec
        if kind == "tasks":
            details = f"{spec.family}; {', '.join(spec.implementations)}; params: {', '.join(spec.parameters) or '-'}"
            title = spec.name
        elif kind == "methods":
            details = f"{spec.family}; {', '.join(spec.implementations)}; requires: {', '.join(spec.requires)}"
            title = spec.name
        elif kind == "hardware":
            details = f"{spec.device} x{spec.devices}, {spec.ranks} rank(s)"
            title = spec.name
        else:
            n_runs = len(spec.seeds) * len(spec.hardware)
            details = f"{len(spec.entries)} entries; seeds {list(spec.seeds)}; frameworks {', '.join(spec.frameworks)}; x{n_runs}"
            title = spec.description
        table.add_row(*map(Text, (spec_id, title, details)))  # YAML text is data, never markup
    _console().print(table)


@app.command()
def schema(
    kind: Annotated[Optional[str], typer.Argument(help="task | method | hardware | suite; default: all four.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Write <kind>.schema.json files into this directory.")] = None,
) -> None:
    """Print the JSON Schema of the declarations (for editors' YAML completion)."""
    from harness.spec import SPEC_TYPES

    kinds = [kind] if kind else list(SPEC_TYPES)
    for k in kinds:
        if k not in SPEC_TYPES:
            typer.echo(f"unknown kind {k!r}: choose {', '.join(SPEC_TYPES)}", err=True)
            raise typer.Exit(BAD_INPUT)
    schemas = {k: SPEC_TYPES[k].model_json_schema() for k in kinds}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        for k, s in schemas.items():
            (out / f"{k}.schema.json").write_text(json.dumps(s, indent=2) + "\n")
        typer.echo(f"wrote {len(schemas)} schema file(s) to {out}")
    else:
        typer.echo(json.dumps(schemas[kind] if kind else schemas, indent=2))


@app.command()
def bench(
    suite: Annotated[Optional[str], typer.Option("--suite", "-s", help="Suite id (default: quick; with --task/--method: their own matrix).")] = None,
    task: Annotated[Optional[list[str]], typer.Option("--task", "-t", help="Only this task. Repeatable.")] = None,
    method: Annotated[Optional[list[str]], typer.Option("--method", "-m", help="Only this method. Repeatable.")] = None,
    framework: Annotated[Optional[list[str]], typer.Option("--framework", help="Only this framework. Repeatable.")] = None,
    hardware: Annotated[Optional[list[str]], typer.Option("--hardware", help="Hardware profile(s) instead of the suite's.")] = None,
    seeds: Annotated[Optional[int], typer.Option("--seeds", min=1, help="Seeds 0..N-1 instead of the suite's.")] = None,
    store: StoreOpt = DEFAULT_STORE,
    catalog: CatalogOpt = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="[ID.]NAME=VALUE: a task parameter or hyperparameter.")] = None,
    jobs: Annotated[Optional[int], typer.Option("--jobs", "-j", min=1, help="Worker processes (default: cores / threads per run).")] = None,
    executor: Annotated[str, typer.Option("--executor", help="pool (isolated worker processes), ray, or inline (this process).")] = "pool",
    address: Annotated[Optional[str], typer.Option("--address", help="Ray cluster address (default: start a local Ray instance).")] = None,
    grace: Annotated[Optional[float], typer.Option("--grace", min=0, help="Seconds past a run's time budget before it is killed.")] = None,
    pin: Annotated[bool, typer.Option("--pin/--no-pin", help="Pin each pool worker to cores of its own.")] = True,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Run again the stored runs whose status is error, timeout or oom.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Run again every selected run, stored or not.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan (to run, to run again, stored, skipped) and exit; the store is not touched.")] = False,
) -> None:
    """Run a suite's matrix; finished runs in the store are not run again.

    Without --suite, --task and --method build the matrix of those tasks and methods (every
    compatible method of a task, or task of a method, when only one is given): declared
    defaults, every framework both implement, the cpu profile, 3 seeds. Exit status 0 when
    every run of the plan ended as reached_target, completed, diverged or skipped; 1 when
    one is stored as error, timeout or oom (they are listed last); 2 for bad input.
    """
    from harness.plan import adhoc_suite, make_plan, parse_overrides

    loaded = _load_catalog(catalog)
    try:
        overrides = parse_overrides(set_ or [])
        chosen = adhoc_suite(loaded, tasks=task or (), methods=method or ()) if suite is None and (task or method) else suite or "quick"
        plan = make_plan(
            loaded,
            suite=chosen,
            tasks=task or (),
            methods=method or (),
            frameworks=framework or (),
            hardware=hardware or (),
            seeds=seeds,
            overrides=overrides,
        )
    except (KeyError, ValueError) as exc:
        raise _fail(str(exc.args[0] if exc.args else exc)) from None
    if not plan.runs:
        raise _fail(f"no runs to do: {plan.why_empty()}")
    studies = _plan_studies(loaded, chosen, plan)
    from harness.execute import check_executor, make_executor

    try:
        check_executor(executor, address=address)  # a dry run refuses what the bench would
    except ValueError as exc:
        raise _fail(str(exc)) from None
    _check_store_path(store)
    _plain_warnings()
    if dry_run:
        _run_plan(plan, None, store, retry_failed=retry_failed, force=force, studies=studies)
        return
    opened = _open_store(store)  # before any worker starts
    _save_declarations(opened, loaded, plan, store)
    try:
        runner = make_executor(executor, jobs=jobs, address=address, catalog_roots=catalog or (), grace_s=grace, pin=pin)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    _run_plan(plan, runner, store, retry_failed=retry_failed, force=force, opened=opened, studies=studies)


def _plan_studies(loaded, chosen, plan) -> list:  # noqa: ANN001 - Catalog, suite id or SuiteSpec, Plan
    """The tuning studies of the plan (none without the suite's ``tuning`` protocol)."""
    from harness.tuning import make_studies

    spec = loaded.get("suite", chosen).spec if isinstance(chosen, str) else chosen
    return [] if spec.tuning is None else make_studies(plan.runs, loaded, spec.tuning)


def _save_declarations(opened, loaded, plan, store: Path) -> None:  # noqa: ANN001 - Store, Catalog, Plan
    """Keep the plan's method declarations in the store: the leaderboard shows them without ``--catalog``."""
    from harness.store import StoreFullError

    try:
        for method_id in sorted({r.method for r in plan.runs}):
            opened.save_declaration("methods", method_id, loaded.methods[method_id].path.read_text(encoding="utf-8"))
    except StoreFullError:
        raise _store_error(f"no space left in {store}: nothing was run") from None
    except OSError as exc:
        raise _store_error(f"cannot write the store {store}: {_os_reason(exc)}") from None


def _check_store_path(store: Path) -> None:
    """Refuse a ``--store`` that cannot be a store directory, before anything is created."""
    for path in (store, *store.parents):
        if path.exists():
            if not path.is_dir():
                raise _fail(f"--store {store}: not a directory" if path == store else
                            f"--store {store}: {path} is not a directory")
            if path == store and (store / "runs").exists() and not (store / "runs").is_dir():
                raise _fail(f"--store {store}: not a store ({store / 'runs'} is not a directory)")
            return


def _open_store(store_dir: Path):  # noqa: ANN202 - harness.store is imported lazily
    """The store, created when missing and checked writable: a one-line error (exit 3) when it is not."""
    from harness.store import Store, StoreFullError

    try:
        opened = Store(store_dir)
        opened.check_writable()
    except StoreFullError:
        raise _store_error(f"no space left in {store_dir}: nothing was run") from None
    except OSError as exc:
        raise _store_error(f"cannot write the store {store_dir}: {_os_reason(exc)}") from None
    return opened


def _os_reason(exc: OSError) -> str:
    return exc.strerror or " ".join(str(exc).split())


def _store_error(message: str) -> typer.Exit:
    """Print ``error: message`` on stderr; raise the result (exit status 3: the store cannot be written)."""
    return _fail(message, STORE_UNWRITABLE)


def _plain_warnings() -> None:
    """Show the store's warnings (damaged files) as one ``warning: ...`` line each on stderr."""
    import warnings

    from harness.store import CorruptFileWarning

    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
        if issubclass(category, CorruptFileWarning):
            typer.echo(f"warning: {message}", err=True)
        else:
            default(message, category, filename, lineno, file, line)

    warnings.showwarning = show


def _stored(store_dir: Path, run_ids: set[str]) -> dict[str, dict]:
    """The newest stored attempt of each of ``run_ids`` that the store holds (read only: no directory is created)."""
    return _by_id(_read_plan_runs(store_dir, run_ids, _STORED_COLUMNS))


_STORED_COLUMNS = ("run_id", "attempt", "status", "error", "task", "method", "framework", "seed")


def _read_plan_runs(store_dir: Path, run_ids: set[str], columns: tuple[str, ...] | None = None):  # noqa: ANN202 - polars is imported lazily
    """The stored runs (newest attempts) among ``run_ids``, as a frame of ``columns`` (``None``: all).

    Only those runs are read (their per-run files, a filtered scan of the parts): a bench costs
    what its plan holds, not what the store holds.
    """
    from harness.store import read_runs

    return read_runs(store_dir, columns, run_ids=run_ids)


def _by_id(frame) -> dict[str, dict]:  # noqa: ANN001 - a polars DataFrame
    return {row["run_id"]: row for row in frame.iter_rows(named=True)}


def _last_line(text: str | None) -> str:
    return ((text or "").strip().splitlines() or [""])[-1]


def _run_plan(plan, runner, store_dir: Path, *, retry_failed: bool, force: bool, opened=None, studies=()) -> None:  # noqa: ANN001
    """Run what ``plan`` still needs (``runner`` ``None``: print it only), then exit with the plan's status.

    With ``studies`` (the suite's tuning protocol), their trials and reruns follow the plan's runs
    (:func:`harness.tuning.run_studies`); stored ones are read back, not run again.

    ``opened`` is the :class:`~harness.store.Store` of ``store_dir``, opened by the bench
    (``None`` for a dry run, which opens nothing). Damaged runs are moved aside first and run again, also where an older attempt
    is stored (a repair must not leave that attempt's error as the run's result). A disk
    that fills stops the bench (exit 3), every run stored so far kept.
    """
    from rich.markup import escape
    from rich.text import Text

    from harness.record import NO_RESULT

    console = _console()
    for note in plan.unmatched:
        console.print(Text(f"note: {note}", style="dim"))
    for skip in plan.skipped:
        console.print(f"[dim]skipped {escape(skip.task)} x {escape(skip.method)} ({skip.framework}): {escape(skip.reason)}[/dim]")
    ids = {r.run_id for r in plan.runs}
    moved = {}
    if runner is not None:
        store = opened
        try:
            moved = store.repair()
        except OSError as exc:
            raise _store_error(f"cannot repair the store {store_dir}: {_os_reason(exc)}") from None
    plan_runs = _read_plan_runs(store_dir, ids)
    stored = _by_id(plan_runs.select(_STORED_COLUMNS))
    again = {
        r.run_id: stored[r.run_id]["attempt"]
        for r in plan.runs
        if r.run_id in stored and (force or r.run_id in moved or (retry_failed and stored[r.run_id]["status"] in NO_RESULT))
    }
    todo = [r for r in plan.runs if r.run_id not in stored or r.run_id in again]
    why = "--force" if force else "--retry-failed" if retry_failed else "damaged"
    console.print(
        f"suite [bold]{escape(plan.suite)}[/bold]: {len(plan.runs)} runs, {len(stored)} already in {escape(str(store_dir))}, "
        f"{len(todo)} to run" + (f" ({len(again)} of them again: {why})" if again else "")
    )
    if runner is None:
        _print_dry_run(plan, stored, again, console=console)
        if studies:
            protocol = studies[0].protocol
            console.print(f"tuning: {len(studies)} studies of {protocol.trials} {protocol.sampler} trials on seed "
                          f"{protocol.trial_seed}, the selected settings rerun on seeds 0..{protocol.rerun_seeds - 1}")
        return

    if todo:
        plan_runs = _drive_plan(todo, plan, store, runner, store_dir, again=again, moved=moved, console=console)
    _print_report(plan_runs, console=console)
    final = _by_id(plan_runs)
    failed = [final[r.run_id] for r in plan.runs if r.run_id in final and final[r.run_id]["status"] in NO_RESULT]
    total = len(plan.runs)
    if studies:
        tuned = _run_studies(studies, plan, store, runner, store_dir, defaults=final, console=console)
        failed += [row for row in tuned.values() if row["status"] in NO_RESULT]
        total += len(tuned)
    console.print(f"store: {store_dir.resolve()}")
    if failed:
        # Last, where a CI log ends: the runs that make this bench exit 1.
        console.print(Text(f"{len(failed)} of {total} runs failed (error, timeout or oom); "
                           "--retry-failed runs them again:", style="bold red"))
        for row in failed:
            console.print(Text(f"  {row['status']} ", style="red") + Text(
                f"{row['task']} / {row['method']} / {row['framework']} / seed {row['seed']}: {_last_line(row['error'])}"))
        raise typer.Exit(RUNS_FAILED)


def _run_studies(studies, plan, store, runner, store_dir: Path, *, defaults: dict[str, dict], console) -> dict[str, dict]:  # noqa: ANN001
    """Run the tuning studies' trials and reruns through the bench's executor; their rows, by run id.

    Each study's record is kept in the store when it finishes; the tuned-against-default table
    (``defaults``: the plan's stored rows, by run id) is printed.
    """
    from rich.markup import escape

    from harness.leaderboard import tuning_renderable
    from harness.plan import Plan
    from harness.tuning import run_studies, study_record, tuned_against_default

    rows: dict[str, dict] = {}

    def execute(runs):  # noqa: ANN001, ANN202 - RunSpecs; rows by id
        unique = list({run.run_id: run for run in runs}.values())
        found = _by_id(_read_plan_runs(store_dir, {run.run_id for run in unique}))
        todo = [run for run in unique if run.run_id not in found]
        console.print(f"tuning [bold]{escape(plan.suite)}[/bold]: {len(unique)} runs, {len(unique) - len(todo)} "
                      f"already in {escape(str(store_dir))}, {len(todo)} to run")
        if todo:  # the batch's rows afterwards, read once
            found = _by_id(_drive_plan(todo, Plan(suite=plan.suite, runs=unique), store, runner, store_dir,
                                       again={}, moved={}, console=console))
        rows.update(found)
        return found

    records = []

    def keep(result) -> None:  # noqa: ANN001 - a StudyResult
        record = study_record(result)
        records.append(record)
        try:
            store.save_study(result.study.id, record)
        except OSError as exc:
            raise _store_error(f"cannot write the store {store_dir}: {_os_reason(exc)}") from None

    run_studies(studies, execute, on_study=keep)
    console.print(tuning_renderable(tuned_against_default(records, [*rows.values(), *defaults.values()])))
    return rows


def _drive_plan(todo, plan, store, runner, store_dir: Path, *, again: dict[str, int], moved: dict[str, str], console):  # noqa: ANN001, ANN202
    """Run ``todo`` with a progress bar; the plan's stored runs afterwards (a frame, every column)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.text import Text

    from harness.execute import drive
    from harness.record import NO_RESULT, Status
    from harness.store import StoreFullError

    ids = {r.run_id for r in plan.runs}
    failures = 0
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        bar = progress.add_task("runs", total=len(todo), failed=0)

        def advance(result) -> None:  # noqa: ANN001
            nonlocal failures
            if result.status in (*NO_RESULT, Status.DIVERGED):
                failures += result.status in NO_RESULT
                progress.console.print(
                    Text(f"{result.status} ", style="red" if result.status in NO_RESULT else "yellow")
                    + Text(f"{result.row['task']} / {result.row['method']} / {result.row['framework']} / "
                           f"seed {result.row['seed']}: {_last_line(result.row['error'])}")
                )
            progress.update(bar, advance=1, failed=failures)

        try:
            results = drive(todo, store, runner, on_result=advance, replace=again, repaired=moved)
        except KeyboardInterrupt:
            progress.stop()
            kept = len(store.finished_run_ids() & ids)
            console.print(f"interrupted: {kept} of {len(plan.runs)} runs are stored in {store_dir}; run the same command again to finish the rest")
            raise typer.Exit(130) from None
        except StoreFullError:
            progress.stop()
            raise _store_error(f"no space left in {store_dir}: {len(_stored(store_dir, ids))} runs kept, rerun to finish") from None
        except OSError as exc:
            if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise
            progress.stop()
            raise _store_error(f"cannot write the store {store_dir} ({_os_reason(exc)}): "
                               f"{len(_stored(store_dir, ids))} runs kept, rerun to finish") from None
    if len(results) < len(todo):
        console.print(f"{len(todo) - len(results)} run(s) were taken by another bench sharing {store_dir}")
    return _read_plan_runs(store_dir, ids)  # once: for the report and the exit status


def _print_dry_run(plan, stored: dict[str, dict], again: dict[str, int], *, console) -> None:  # noqa: ANN001
    from rich.text import Text

    groups = (
        ("to run", [r for r in plan.runs if r.run_id not in stored], None),
        ("to run again", [r for r in plan.runs if r.run_id in again], "was"),
        ("already stored", [r for r in plan.runs if r.run_id in stored and r.run_id not in again], ""),
    )
    for title, runs, status in groups:
        console.print(Text(f"{title} ({len(runs)}):", style="bold"))
        for run in runs:
            line = f"  {run.run_id}  {run.label()}"
            if status is not None:
                row = stored[run.run_id]
                error = _last_line(row["error"])
                line += f"  [{(status + ' ') if status else ''}{row['status']}{': ' + error if error else ''}]"
            console.print(Text(line))
    console.print("dry run: nothing was run or written")


@app.command()
def report(
    store: StoreOpt = DEFAULT_STORE,
    traces: Annotated[bool, typer.Option("--traces/--no-traces", help="Include the ECDF (reads the traces).")] = True,
    every: Annotated[bool, typer.Option("--all", help="Also print the rankings of every configuration.")] = False,
    task: Annotated[Optional[list[str]], typer.Option(
        "--task", help="Print the configurations' rankings of this task id. Repeatable.")] = None,
    method: Annotated[Optional[list[str]], typer.Option(
        "--method", help="Print the configurations' rankings of this method id. Repeatable.")] = None,
) -> None:
    """Score the store: profile scores, each problem's best, ECDFs (as the leaderboard).

    The per-configuration rankings (95% intervals, ties) grow with the store: --all prints them
    all, --task and --method those of some (ranked within their whole problems).
    """
    from harness.leaderboard import UnknownIdError, report_tables

    _require_store(store)
    _plain_warnings()
    console = _console()
    try:
        tables = report_tables(store, traces=traces, configurations="all" if every else "summary",
                               tasks=task or (), methods=method or ())
    except UnknownIdError as exc:
        raise _fail(str(exc)) from None
    for table in tables:
        console.print(table)


@app.command()
def leaderboard(
    store: StoreOpt = DEFAULT_STORE,
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8501,
    host: Annotated[str, typer.Option("--host", help="Address to bind (loopback by default).")] = "127.0.0.1",
    catalog: CatalogOpt = None,
    asv_config: Annotated[Optional[Path], typer.Option(
        "--asv-config", help="asv's configuration, whose recorded results the Regressions page shows "
                             "(default: asv.conf.json here, when there is one).")] = None,
) -> None:
    """Serve the Streamlit leaderboard of a store (read only) until interrupted."""
    from harness.leaderboard import serve

    _require_store(store)
    from harness.store import read_runs

    read_runs(store, columns=["run_id"])  # an old store is refused here, not inside the app
    asv_results = None
    config = asv_config if asv_config is not None else Path("asv.conf.json")
    if asv_config is not None and not asv_config.is_file():
        raise _fail(f"--asv-config {asv_config}: no asv configuration (asv.conf.json) there")
    if config.is_file():
        try:
            from harness.regress.results import load_config

            asv_results = Path(load_config(config).results_dir)
        except Exception as exc:  # noqa: BLE001 - asv's own errors (a bad JSON file, asv not installed)
            if asv_config is not None:
                raise _fail(f"--asv-config {asv_config}: {exc}") from None
            typer.echo(f"warning: {config}: {exc}; the Regressions page shows no results", err=True)
    typer.echo(f"leaderboard of {store.resolve()} on http://{host}:{port}  (Ctrl-C stops it)"
               + (f"; asv results: {asv_results}" if asv_results is not None else ""))
    raise typer.Exit(serve(store, port=port, host=host, catalog=catalog or (), asv_results=asv_results))


@app.command()
def export(
    store: StoreOpt = DEFAULT_STORE,
    out: Annotated[Path, typer.Option("--out", help="Directory to write index.html into (created when missing).")] = Path("harness-report"),
    title: Annotated[Optional[str], typer.Option("--title", help="The page's title (default: the store's name).")] = None,
    catalog: CatalogOpt = None,
) -> None:
    """Write the leaderboard's views as a static HTML page (OUT/index.html) that opens offline.

    Everything is inlined (Vega's JavaScript once, the charts' data, the styles): the page loads
    nothing from the network, to attach to a paper or a pull request. The numbers are those of
    the leaderboard and `harness report`, over every run of the store.
    """
    from harness.export import export as write_report

    _require_store(store)
    if out.exists() and not out.is_dir():
        raise _fail(f"--out {out}: not a directory")
    _plain_warnings()
    try:
        index = write_report(store, out, title=title, catalog=catalog or ())
    except OSError as exc:
        raise _fail(f"cannot export {store} to {out}: {_os_reason(exc)}", STORE_UNWRITABLE) from None
    typer.echo(f"wrote {index} ({index.stat().st_size / 1e6:.1f} MB); open it in a browser, no server needed")


@app.command()
def compact(store: StoreOpt = DEFAULT_STORE) -> None:
    """Merge the per-run files and parts of a store into one part file (large stores open much faster)."""
    from harness.store import StoreFullError
    from harness.store import compact as compact_store

    _require_store(store)
    _plain_warnings()
    try:
        merged = compact_store(store)
    except StoreFullError:
        raise _store_error(f"no space left in {store}: nothing was compacted, the store is as it was") from None
    except OSError as exc:
        raise _store_error(f"cannot write the store {store}: {_os_reason(exc)}") from None
    typer.echo(f"compacted {store}: {merged} per-run file(s) merged")


regress_app = typer.Typer(
    name="regress",
    help="Regression tracking over commits with asv: record a commit, compare two, publish asv's HTML.",
    no_args_is_help=True,
)
app.add_typer(regress_app)

ConfigOpt = Annotated[Path, typer.Option("--config", help="asv's configuration file.")]


@regress_app.command("record")
def regress_record(
    config: ConfigOpt = Path("asv.conf.json"),
    suite: Annotated[str, typer.Option("--suite", "-s", help="The suite the catalog benchmarks are generated from.")] = "asv",
    hardware: Annotated[Optional[str], typer.Option("--hardware", help="Hardware profile (default: the suite's one).")] = None,
    catalog: CatalogOpt = None,
    commit: Annotated[str, typer.Option("--commit", help="The commit to record the results as (a git name).")] = "HEAD",
    quick: Annotated[bool, typer.Option("--quick", help="One sample of each benchmark (asv run --quick).")] = False,
    bench: Annotated[Optional[str], typer.Option("--bench", "-b", help="Only benchmarks matching this regular expression.")] = None,
    show_stderr: Annotated[bool, typer.Option("--show-stderr", help="Show the benchmarks' stderr.")] = False,
) -> None:
    """Run the benchmarks once in this environment and record them as COMMIT (asv run --python=same).

    The machine is named after the hardware profile and this host's fingerprint. Exits with asv's
    status: 2 when a benchmark failed (its failure is recorded, as a value would be).
    """
    from harness.regress.record import RecordError, machine_name, record, suite_hardware

    try:
        hardware = hardware or suite_hardware(config.resolve(), suite=suite, catalog=catalog or ())
        typer.echo(f"recording {commit} on machine {machine_name(hardware)} (suite {suite}, hardware {hardware})")
        status = record(config, suite=suite, hardware=hardware, catalog=catalog or (), commit=commit, quick=quick,
                        bench=bench, show_stderr=show_stderr)
    except RecordError as exc:
        raise _fail(str(exc)) from None
    if status == 2:
        typer.echo("some benchmarks failed: their failures are recorded (see asv's output above)", err=True)
    raise typer.Exit(status)


@regress_app.command("compare")
def regress_compare(
    base: Annotated[str, typer.Argument(help="The commit compared against (a git name or a recorded hash).")],
    head: Annotated[str, typer.Argument(help="The commit compared.")] = "HEAD",
    config: ConfigOpt = Path("asv.conf.json"),
    machine: Annotated[Optional[str], typer.Option("--machine", help="asv machine (default: the one with results; else this host's cpu machine).")] = None,
    metric_factor: Annotated[float, typer.Option("--metric-factor", min=1.0, help="Results and memory: worse by more than this factor is a regression.")] = 1.10,
    time_factor: Annotated[float, typer.Option("--time-factor", min=1.0, help="Times: slower by more than this factor is a regression.")] = 1.25,
    only_changed: Annotated[bool, typer.Option("--only-changed", help="Leave out the unchanged benchmarks.")] = False,
) -> None:
    """Compare two recorded commits; exit 1 when a benchmark regressed (or newly fails), printing the table."""
    from harness.regress.results import compare_commits, regressions

    if not config.is_file():
        raise _fail(f"{config}: no asv configuration (asv.conf.json) there")
    try:
        changes = compare_commits(config, base, head, machine=machine or _default_machine(config),
                                  metric_factor=metric_factor, time_factor=time_factor)
    except LookupError as exc:
        raise _fail(str(exc).strip("'\"")) from None
    console = _console()
    console.print(_changes_table(changes, base=base, head=head, only_changed=only_changed))
    worse = regressions(changes)
    counts = {state: sum(c.state == state for c in changes) for state in dict.fromkeys(c.state for c in changes)}
    console.print(", ".join(f"{n} {state}" for state, n in counts.items()))
    if worse:
        typer.echo(f"{len(worse)} regression(s): " + "; ".join(c.name for c in worse), err=True)
        raise typer.Exit(RUNS_FAILED)


def _default_machine(config: Path) -> str | None:
    # This host's machine when it has results, so that a results directory shared by several
    # hosts compares this one's without --machine; else let the comparison pick the only one.
    from harness.regress.record import machine_name
    from harness.regress.results import load_config, machines

    mine = machine_name("cpu")
    return mine if mine in machines(load_config(config).results_dir) else None


def _changes_table(changes, *, base: str, head: str, only_changed: bool):  # noqa: ANN001, ANN202 - rich is imported lazily
    from asv.util import human_value
    from rich.table import Table

    marks = {"regressed": "+", "failed": "!", "improved": "-", "fixed": "*", "not comparable": "x"}
    table = Table(title=f"{base} -> {head}", title_justify="left", show_edge=False)
    for header, justify in (("change", "left"), ("before", "right"), ("after", "right"), ("ratio", "right"),
                            ("factor", "right"), ("benchmark (parameters)", "left")):
        table.add_column(header, justify=justify)
    for change in changes:
        if only_changed and change.state in ("unchanged", "skipped"):
            continue
        unit = (change.after or change.before).unit

        def shown(m) -> str:  # noqa: ANN001
            if m is None:
                return "-"
            if m.failed:
                return "failed"
            # asv writes seconds and bytes humanly (39.1ms, 390M); a metric gets 4 digits and its unit.
            return human_value(m.value, unit) if unit in ("seconds", "bytes") else f"{m.value:.4g} {unit}".strip()

        ratio = "-" if change.ratio is None else f"{change.ratio:.2f}"
        table.add_row(f"{marks.get(change.state, ' ')} {change.state}", shown(change.before), shown(change.after),
                      ratio, f"{change.factor:.2f}", change.name)
    return table


@regress_app.command("publish")
def regress_publish(config: ConfigOpt = Path("asv.conf.json")) -> None:
    """Build asv's HTML of every recorded commit (html_dir), with its scripts and styles local, so it opens offline.

    Serve it (asv's pages load their data by HTTP): `python -m http.server -d asv/html`, or `asv preview`.
    """
    from harness.regress.publish import PublishError, publish

    if not config.is_file():
        raise _fail(f"{config}: no asv configuration (asv.conf.json) there")
    try:
        html = publish(config)
    except PublishError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"wrote {html}  (serve it: python -m http.server -d {html})")


def _require_store(store: Path) -> None:
    """Refuse (exit 2, one line) a ``--store`` of a read-only command that is no store."""
    if not store.exists():
        raise _fail(f"--store {store}: no such directory; run `harness bench --store {store}` first")
    if not store.is_dir():
        raise _fail(f"--store {store}: not a directory")
    if not (store / "runs").is_dir():
        raise _fail(f"--store {store}: not a store (no runs/ directory); run `harness bench --store {store}` first")


def _print_report(runs, *, console) -> None:  # noqa: ANN001 - a polars DataFrame of runs
    """The table at the end of a bench: :func:`harness.score.results_table`, rendered."""
    from harness.score import results_table

    if runs.is_empty():
        console.print("no runs")
        return
    console.print(results_renderable(results_table(runs)))


def results_renderable(table):  # noqa: ANN001, ANN201 - a polars DataFrame; a FitTable (rich is imported lazily)
    """The bench's results table (:func:`harness.score.results_table`) as a table that fits the console.

    One row per configuration. A framework or hardware column is shown only when it varies
    (else the title names it), a method's hyperparameters only those that vary within it;
    long labels wrap or are abbreviated with a legend below the table.
    """
    from harness.leaderboard import FitColumn, FitTable, number_text

    rows = table.to_dicts()
    title = "results (median over seeds), one row per configuration"
    constant = {k: {r[k] for r in rows} for k in ("framework", "hardware")}
    title += "".join(f"; {k} {next(iter(v))}" for k, v in constant.items() if len(v) == 1)
    columns = [
        FitColumn("task", [r["variant"] for r in rows], kind="key", code="t"),
        FitColumn("method", [f"{r['method']} {r['setting']}" if r["setting"] else r["method"] for r in rows],
                  kind="key", code="c"),
        *(FitColumn(k, [str(r[k]) for r in rows], kind="key", code=k[0]) for k, v in constant.items() if len(v) > 1),
        FitColumn("reached", [f"{r['n_reached']}/{r['n_runs']}" for r in rows]),
        FitColumn("failed", [str(r["n_failed"]) for r in rows]),
        FitColumn("skipped", [str(r["n_skipped"]) for r in rows]),
        FitColumn("subopt. ↓", [number_text(r["median_suboptimality"]) for r in rows]),
        FitColumn("to target ↓ [s]", [number_text(r["median_time_to_target_s"]) for r in rows]),
        FitColumn("steps", [number_text(r["median_steps"]) for r in rows]),
        FitColumn("ms/step ↓", [number_text(None if r["median_time_per_step_s"] is None else 1e3 * r["median_time_per_step_s"])
                                for r in rows]),
    ]
    caption = ("failed: diverged, error, timeout or oom, counted as infinite suboptimality and time to target; "
               "skipped: not run, no sample; ms/step: the clock less init and output, over the steps")
    return FitTable(title, columns, caption=caption, group=True)


def main() -> int:
    """Console-script entry point; returns the exit status.

    A usage error (an unknown option, a value out of range) is one ``error:`` line on stderr
    with exit status 2, as every other bad input, not click's framed message.
    """
    try:
        status = app(standalone_mode=False)
    except typer.TyperException as exc:  # click's usage errors among them
        if type(exc).__name__ == "NoArgsIsHelpError":
            exc.show()  # the help text, as typer prints it
            return BAD_INPUT
        ctx = getattr(exc, "ctx", None)
        where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        typer.echo(f"error: {' '.join(exc.format_message().split())}{where}", err=True)
        return exc.exit_code
    except typer.Abort:
        typer.echo("interrupted", err=True)
        return 130
    except BrokenPipeError:  # `harness report | head`: the reader has what it wanted
        return 1
    except Exception as exc:
        store = sys.modules.get("harness.store")  # loaded by every command that reads a store
        if store is not None and isinstance(exc, store.StoreSchemaError):
            typer.echo(f"error: {exc}", err=True)  # an old store: the message says how to migrate it
            return BAD_INPUT
        raise
    return status if isinstance(status, int) else 0


if __name__ == "__main__":
    sys.exit(main())
