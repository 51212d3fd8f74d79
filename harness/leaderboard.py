"""The leaderboard: a Streamlit app over a store, started as a subprocess.

``serve(store, port=...)`` runs ``streamlit run leaderboard/app.py`` headless, bound to
127.0.0.1 unless told otherwise, without usage statistics. The app reads the store only; for
large stores run :func:`harness.store.compact` first (``harness compact``), so the overview
reads a few part files instead of one file per run.

This module also holds the app's plain helpers (no Streamlit import): store fingerprint,
method declarations from the catalog and Markdown escaping.

Examples
--------
Command line (the same as ``harness leaderboard``)::

    python -m harness.leaderboard --store harness-store --port 8501
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import functools
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "ASV_RESULTS_ENV",
    "CATALOG_ENV",
    "FitColumn",
    "FitTable",
    "STORE_ENV",
    "app_path",
    "escape_markdown",
    "main",
    "method_declarations",
    "report_renderables",
    "report_tables",
    "number_text",
    "results_fingerprint",
    "serve",
    "store_fingerprint",
    "streamlit_command",
    "tuning_renderable",
]

#: Environment variable naming the store directory (``--store`` after ``--`` also works).
STORE_ENV = "HARNESS_STORE"
#: Environment variable of extra catalog roots, separated by ``os.pathsep``.
CATALOG_ENV = "HARNESS_CATALOG"
#: Environment variable naming asv's results directory, for the Regressions page (``--asv-results`` also works).
ASV_RESULTS_ENV = "HARNESS_ASV_RESULTS"

_MARKDOWN_SPECIAL = set("\\`*_{}[]()<>#+-.!|~:$&\"'=^%@;,/?")


def app_path() -> Path:
    """The app's entry script: ``leaderboard/app.py`` of the source tree or of the wheel."""
    package = Path(__file__).resolve().parent
    for candidate in (package.parent / "leaderboard" / "app.py", package / "_builtin" / "leaderboard" / "app.py"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("leaderboard/app.py is not installed beside the harness package")


def streamlit_command(
    store: str | os.PathLike[str], *, port: int, host: str = "127.0.0.1",
    catalog: Sequence[str | os.PathLike[str]] = (), asv_results: str | os.PathLike[str] | None = None,
) -> list[str]:
    """The ``streamlit run`` command line of :func:`serve` (headless, no telemetry)."""
    command = [
        sys.executable, "-m", "streamlit", "run", str(app_path()),
        "--server.port", str(port),
        "--server.address", host,
        "--server.headless", "true",
        "--server.runOnSave", "false",
        "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false",
        "--global.developmentMode", "false",
        "--client.toolbarMode", "minimal",
        "--", "--store", str(Path(store).resolve()),
    ]
    for root in catalog:
        command += ["--catalog", str(Path(root).resolve())]
    if asv_results is not None:
        command += ["--asv-results", str(Path(asv_results).resolve())]
    return command


def serve(
    store: str | os.PathLike[str],
    *,
    port: int,
    host: str = "127.0.0.1",
    catalog: Sequence[str | os.PathLike[str]] = (),
    asv_results: str | os.PathLike[str] | None = None,
) -> int:
    """Run the leaderboard on ``host:port`` until interrupted; return the exit code.

    The server is a ``streamlit run`` child process. SIGTERM and SIGHUP are forwarded to it,
    Ctrl-C stops it, one that does not stop within 10 s is killed, and on Linux it dies with
    this process.

    Parameters
    ----------
    store
        The store directory (read only).
    port
        TCP port.
    host
        Address to bind; loopback by default.
    catalog
        Extra catalog roots, for method declarations beside the built-in catalog.
    asv_results
        asv's results directory (``results_dir`` of ``asv.conf.json``), read by the Regressions
        page; None: that page says how to record results.
    """
    env = {
        **os.environ,
        STORE_ENV: str(Path(store).resolve()),
        CATALOG_ENV: os.pathsep.join(str(Path(r).resolve()) for r in catalog),
        ASV_RESULTS_ENV: str(Path(asv_results).resolve()) if asv_results is not None else "",
        "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
    }
    command = streamlit_command(store, port=port, host=host, catalog=catalog, asv_results=asv_results)
    process = subprocess.Popen(command, env=env, preexec_fn=_die_with_parent)  # noqa: PLW1509
    stopping: list[float] = []

    def forward(signum: int, _frame: object) -> None:
        stopping.append(time.monotonic())
        if process.poll() is None:
            process.send_signal(signum)

    previous = _install({signal.SIGTERM: forward, signal.SIGHUP: forward})
    try:
        while process.poll() is None:
            try:
                process.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                if stopping and time.monotonic() - stopping[0] > _GRACE_S:
                    process.kill()
        return process.returncode
    except KeyboardInterrupt:
        _stop(process)
        return 130
    finally:
        _install(previous)
        if process.poll() is None:
            _stop(process)


_GRACE_S = 10.0


def _install(handlers: dict[int, Any]) -> dict[int, Any]:
    """Install signal handlers (main thread only); return the previous ones."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {signum: signal.signal(signum, handler) for signum, handler in handlers.items()}


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Ask the server to stop; kill it when it does not within the grace period."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux for SIGTERM when the parent dies (else no-op)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def store_fingerprint(store: str | os.PathLike[str]) -> tuple[int, int, int, int]:
    """A cheap fingerprint that changes whenever runs are added, compacted or removed.

    The modification times of ``runs/`` and ``traces/`` (a file created, renamed in or
    removed changes them) and their entry counts.
    """
    values: list[int] = []
    for name in ("runs", "traces"):
        directory = Path(store) / name
        try:
            values += [directory.stat().st_mtime_ns, len(os.listdir(directory))]
        except FileNotFoundError:
            values += [0, 0]
    return (values[0], values[1], values[2], values[3])


def results_fingerprint(results_dir: str | os.PathLike[str]) -> tuple[int, ...]:
    """A cheap fingerprint of asv's results directory that changes whenever a commit is recorded.

    ``benchmarks.json``'s modification time and size, then per machine directory (sorted) its
    modification time, its JSON files' count and their newest modification time (asv rewrites a
    commit's file when it records it again). A missing directory: ``()``.
    """
    root = Path(results_dir)
    values: list[int] = []
    try:
        stat = (root / "benchmarks.json").stat()
        values += [stat.st_mtime_ns, stat.st_size]
    except FileNotFoundError:
        values += [0, 0]
    try:
        with os.scandir(root) as entries:
            machines = sorted((e for e in entries if e.is_dir()), key=lambda e: e.name)
        for machine in machines:
            with os.scandir(machine.path) as entries:
                files = [e.stat().st_mtime_ns for e in entries if e.name.endswith(".json")]
            values += [machine.stat().st_mtime_ns, len(files), max(files, default=0)]
    except (FileNotFoundError, NotADirectoryError):
        return ()
    return tuple(values)


def method_declarations(
    roots: Sequence[str | os.PathLike[str]] = (), *, builtin: bool = True
) -> dict[str, dict[str, Any]]:
    """Method declarations of the catalog, as plain data: id -> fields and YAML text.

    Each method file is loaded on its own through :mod:`harness.catalog`, so a broken file
    elsewhere hides only itself; when the catalog cannot be imported, nothing is returned and
    the leaderboard falls back to what the store holds.

    Returns
    -------
    dict
        ``{id: {"name", "family", "paper", "description", "notes", "requires",
        "hyperparameters", "path", "yaml"}}``.
    """
    try:
        from harness.catalog import Catalog, builtin_root
    except Exception:  # noqa: BLE001 - the catalog is optional to the leaderboard
        return {}
    all_roots = ([builtin_root()] if builtin else []) + [Path(r) for r in roots]
    found: dict[str, dict[str, Any]] = {}
    for root in all_roots:
        for path in sorted((Path(root) / "methods").rglob("*.yaml")):
            declaration = _declaration(Catalog, path)
            if declaration is not None:
                found.setdefault(declaration["id"], declaration)
    return found


def _declaration(catalog_type: Any, path: Path) -> dict[str, Any] | None:
    try:
        entry = next(iter(catalog_type.load(files=[path], builtin=False).methods.values()))
        text = path.read_text(encoding="utf-8")
    except Exception:  # noqa: BLE001 - an invalid declaration is skipped, `harness validate` reports it
        return None
    spec = entry.spec
    return {
        "id": spec.id,
        "name": spec.name,
        "family": spec.family,
        "paper": spec.paper,
        "description": spec.description,
        "notes": spec.notes,
        "requires": list(spec.requires),
        "hyperparameters": dict(spec.hyperparameters),
        "path": str(path),
        "yaml": text,
    }


def escape_markdown(text: object) -> str:
    """``text`` with every Markdown (and HTML) special character backslash-escaped.

    Streamlit renders the result as the literal text: no emphasis, link, HTML tag, colour
    directive or emoji short code is interpreted. Newlines become spaces.
    """
    escaped = "".join(f"\\{c}" if c in _MARKDOWN_SPECIAL else c for c in str(text))
    return " ".join(escaped.splitlines())


# -- text tables (harness report, harness bench) -------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FitColumn:
    """A column of a :class:`FitTable`: its header, its cells (text) and how it may give way.

    ``kind``: ``"key"`` names the row (repeated in every part of a split table; a label that
    does not fit wraps at ``[``, ``,`` and spaces, or is abbreviated as ``<code><n>`` with a
    legend line below the table); ``"number"`` is never wrapped or cut (its header may wrap);
    ``"text"`` wraps.
    """

    header: str
    cells: Sequence[str]
    kind: Literal["key", "number", "text"] = "number"
    code: str = "c"  # prefix of a key column's abbreviations
    justify: Literal["left", "right"] | None = None  # default: numbers right, others left


#: Key labels longer than this are abbreviated (None: none), in the layouts tried.
_CAPS: tuple[int | None, ...] = (None, 40, 32, 24, 16, 10)
#: Spaces between columns, in the layouts tried.
_GAPS: tuple[int, ...] = (3, 2, 1)
_BREAK = re.compile(r"(?<=[,\s])|(?=\[)")  # where a key label may wrap


class FitTable:
    """A rich renderable table that fits the console's width.

    Numbers are printed whole (``5.96e+08``, never ``5.9…``); text columns wrap; key labels
    wrap at ``[``, ``,`` and spaces, or the longest are abbreviated (``c1``) with a legend
    below the table (``c1 = gd-spike lr=3, spike_every=50``); a table still too wide is split
    into several, each repeating the key columns. The layout is chosen at render time, for
    the console's width: the fewest parts, then the fewest abbreviations and wrapped lines.
    Every cell is shown literally (no rich markup).

    With ``group``, rows with the same first key (consecutive) form a section: its label is
    written once, its lines spread over the section's rows, and a blank line separates sections.
    """

    def __init__(self, title: str, columns: Sequence[FitColumn], *, caption: str | None = None,
                 group: bool = False) -> None:
        self.title = title
        self.columns = list(columns)
        self.caption = caption
        self.group = group and bool(self.columns) and self.columns[0].kind == "key"

    def __rich_console__(self, console: Any, options: Any) -> Iterator[Any]:
        from rich.text import Text

        layout = self.layout(max(options.max_width, 20))
        for index, (part, widths) in enumerate(zip(layout.parts, layout.widths)):
            title = self.title if len(layout.parts) == 1 else f"{self.title} ({index + 1} of {len(layout.parts)})"
            yield self._table(title, [layout.columns[i] for i in part], widths, layout.gap)
        if layout.legend:  # code = label, a long label wrapped under itself
            from rich.table import Table

            grid = Table.grid(padding=(0, 1))
            grid.add_column(no_wrap=True)
            grid.add_column(overflow="fold")
            for line in layout.legend:
                code, label = line.split(" = ", 1)
                grid.add_row(Text(f"{code} ="), Text(label))
            yield grid
        if self.caption:
            yield Text(self.caption)

    def layout(self, width: int) -> _Layout:
        """The layout at ``width``: the best of every abbreviation, gap and header-lines setting."""
        best: _Layout | None = None
        for cap in _CAPS:
            columns, legend = _abbreviate(self.columns, cap)
            if best is not None and not legend:
                continue  # the same columns as without abbreviation
            for gap in _GAPS:
                for lines in (2, 0):
                    parts = _pack(columns, width, gap, lines)
                    widths = [_widths([columns[i] for i in part], width, gap, lines) for part in parts]
                    candidate = _Layout(columns, legend, parts, widths, gap)
                    candidate.cost = (len(parts), self._penalty(candidate))
                    if best is None or candidate.cost < best.cost:
                        best = candidate
        assert best is not None
        return best

    def _penalty(self, layout: _Layout) -> float:
        """What a layout costs the reader: abbreviations, wrapped labels (dearly past two lines),
        headers past two lines, narrow gaps."""
        cost = 4.0 * len(layout.legend) + 0.5 * (3 - layout.gap)
        for part, widths in zip(layout.parts, layout.widths):
            for i, width in zip(part, widths):
                column = layout.columns[i]
                cost += max(0, len(_greedy(_words(column.header), width)) - 2)
                if column.kind != "key":
                    continue
                lines = [_wrap_label(c, width).count("\n") + 1 for c in column.cells]
                if self.group and i == 0:  # a section's label spreads over its rows
                    lines = _section_excess(column.cells, lines)
                cost += sum(0.5 * max(0, n - 1) + 1.5 * max(0, n - 2) for n in lines)
        return cost

    def _table(self, title: str, columns: list[FitColumn], widths: list[int], gap: int) -> Any:
        from rich import box
        from rich.table import Table
        from rich.text import Text

        padding = {3: (0, 1), 2: (0, 1, 0, 0), 1: (0, 0)}[gap]
        table = Table(title=Text(title), title_justify="left", box=box.SIMPLE_HEAD, show_edge=False,
                      pad_edge=False, padding=padding)
        for column, width in zip(columns, widths):
            justify = column.justify or ("right" if column.kind == "number" else "left")
            table.add_column(Text(column.header), width=width, justify=justify, overflow="fold")
        cells = [[_wrap_label(c, w) for c in column.cells] if column.kind == "key" else list(column.cells)
                 for column, w in zip(columns, widths)]
        ends = [False] * len(cells[0]) if cells else []
        if self.group:  # the first key leads every part
            cells[0], ends = _sections(cells[0])
        for row, end in zip(zip(*cells), ends):
            table.add_row(*(Text(cell) for cell in row), end_section=end)
        return table


@dataclasses.dataclass
class _Layout:
    columns: list[FitColumn]  # as shown (abbreviated)
    legend: list[str]
    parts: list[list[int]]  # column indices of each table
    widths: list[list[int]]  # the widths of each table's columns
    gap: int  # spaces between columns
    cost: tuple[int, float] = (0, 0.0)


def _runs(labels: Sequence[str]) -> list[tuple[int, int]]:
    """``(start, stop)`` of each run of consecutive equal labels."""
    bounds, start = [], 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or labels[i] != labels[start]:
            bounds.append((start, i))
            start = i
    return bounds


def _sections(labels: list[str]) -> tuple[list[str], list[bool]]:
    """Consecutive equal (wrapped) labels as sections: the label's lines spread over its rows,
    and which rows end a section (all but the last)."""
    shown: list[str] = []
    ends: list[bool] = []
    for start, stop in _runs(labels):
        lines = labels[start].split("\n")
        rows = stop - start
        shown += [lines[i] if i < len(lines) else "" for i in range(rows - 1)]
        shown.append("\n".join(lines[rows - 1:]))
        ends += [False] * (rows - 1) + [stop < len(labels)]
    return shown, ends


def _section_excess(labels: Sequence[str], lines: list[int]) -> list[int]:
    """Per section, the lines its label takes beyond its rows (plus two, as the penalty allows two)."""
    return [lines[start] - (stop - start) + 2 for start, stop in _runs(labels)]


# Pure, and asked again for the same cells by every layout tried: 9 million calls (90% of the time)
# for a table of 10,000 configurations before these were kept.
@functools.lru_cache(maxsize=1 << 17)
def _cell_len(text: str) -> int:
    from rich.cells import cell_len

    return max((cell_len(line) for line in text.split("\n")), default=0)


def _words(text: str) -> list[str]:
    return text.split() or [""]


def _pieces(label: str) -> list[str]:
    return [piece for piece in _BREAK.split(label) if piece]


def _natural(column: FitColumn) -> int:
    return max([_cell_len(column.header), *(_cell_len(c) for c in column.cells)])


def _header_width(header: str, lines: int) -> int:
    """The narrowest width at which ``header`` wraps (at spaces) into at most ``lines`` lines (0: any)."""
    words = _words(header)
    width = max(_cell_len(w) for w in words)
    while lines and len(_greedy(words, width)) > lines:
        width += 1
    return width


def _greedy(words: list[str], width: int) -> list[str]:
    lines: list[str] = []
    for word in words:
        if lines and _cell_len(f"{lines[-1]} {word}") <= width:
            lines[-1] += f" {word}"
        else:
            lines.append(word)
    return lines


def _label_width(label: str, lines: int) -> int:
    """The narrowest width at which ``label`` wraps at its break points into at most ``lines`` lines (0: any)."""
    width = max(_cell_len(p.strip()) for p in _pieces(label)) if label else 0
    while lines and _wrap_label(label, width).count("\n") >= lines:
        width += 1
    return width


def _minimum(column: FitColumn, lines: int = 0) -> int:
    """The narrowest width of ``column``: numbers whole; key labels and headers in ``lines`` lines (0: any)."""
    header = _header_width(column.header, lines)
    if column.kind == "number":  # whole, on one line
        return max([header, *(_cell_len(c) for c in column.cells)])
    if column.kind == "key":  # wrapped at its break points
        return max([header, *(_label_width(c, lines) for c in set(column.cells))])
    longest_word = max([0, *(_cell_len(w) for c in column.cells for w in _words(c))])
    return min(_natural(column), max(12, header, min(longest_word, 24)))


def _overhead(n: int, gap: int) -> int:
    return max(n - 1, 0) * gap


def _pack(columns: list[FitColumn], width: int, gap: int, lines: int) -> list[list[int]]:
    """Columns into parts that fit ``width`` at their minimum widths, keys repeated in each."""
    keys = [i for i, c in enumerate(columns) if c.kind == "key"]
    minimum = [_minimum(c, lines) for c in columns]

    def fits(part: list[int]) -> bool:
        return sum(minimum[i] for i in part) + _overhead(len(part), gap) <= width

    parts: list[list[int]] = []
    part = list(keys)
    for i, column in enumerate(columns):
        if column.kind == "key":
            continue
        if fits([*part, i]) or len(part) == len(keys):
            part.append(i)
        else:
            parts.append(part)
            part = [*keys, i]
    parts.append(part)
    return [sorted(p) for p in parts]


def _widths(columns: list[FitColumn], width: int, gap: int, lines: int) -> list[int]:
    """Natural widths, narrowed to fit ``width``: text columns first, then headers, then key labels (the widest first)."""
    widths = [_natural(c) for c in columns]
    minimum = [_minimum(c, lines) for c in columns]
    excess = sum(widths) + _overhead(len(columns), gap) - width
    for kinds in (("text",), ("number",), ("key",)):
        while excess > 0:
            slack = [(widths[i] - minimum[i], i) for i, c in enumerate(columns) if c.kind in kinds]
            most, i = max(slack, default=(0, -1))
            if most <= 0:
                break
            widths[i] -= 1
            excess -= 1
    return widths


def _abbreviate(columns: list[FitColumn], cap: int | None) -> tuple[list[FitColumn], list[str]]:
    """Key labels longer than ``cap`` replaced by codes (``c1``, ``c2``, ... in order of appearance), and the legend."""
    if cap is None:
        return list(columns), []
    shown, legend = [], []
    for column in columns:
        if column.kind != "key" or all(_cell_len(c) <= cap for c in column.cells):
            shown.append(column)
            continue
        codes: dict[str, str] = {}
        for cell in column.cells:
            if _cell_len(cell) > cap and cell not in codes:
                codes[cell] = f"{column.code}{len(codes) + 1}"
                legend.append(f"{codes[cell]} = {cell}")
        shown.append(dataclasses.replace(column, cells=[codes.get(c, c) for c in column.cells]))
    return shown, legend


@functools.lru_cache(maxsize=1 << 17)
def _wrap_label(label: str, width: int) -> str:
    """``label`` broken into lines of at most ``width`` at its break points (``[``, ``,``, spaces)."""
    if _cell_len(label) <= width:
        return label
    lines, line = [], ""
    for piece in _pieces(label):
        if line and _cell_len((line + piece).rstrip()) > width:
            lines.append(line.rstrip())
            line = piece.lstrip()
        else:
            line += piece
    lines.append(line.rstrip())
    return "\n".join(lines)


class UnknownIdError(ValueError):
    """A task or method id that names no run of the store (its message is the CLI's error line)."""


def report_tables(
    store: str | os.PathLike[str],
    *,
    traces: bool = True,
    n_boot: int = 2000,
    configurations: Literal["summary", "all"] = "summary",
    tasks: Collection[str] = (),
    methods: Collection[str] = (),
) -> list[Any]:
    """The scoring of ``store`` as rich renderables, for ``harness report`` (same numbers as the app).

    Each is a :class:`FitTable`: it fits the console's width when printed (numbers whole,
    long labels wrapped or abbreviated with a legend, a table too wide split in parts).
    Cells and headers are shown literally: ``[bold]`` in a method name is not rich markup.

    A solver or configuration with runs whose clock caught compilations is flagged in a
    ``⚠ compiled in clock`` column (runs, seconds), and a method with an offline phase shows
    its cost in an ``offline [s]`` column (median, max); each column appears only when some
    row has one, and the table's caption says what it means.

    Parameters
    ----------
    configurations
        ``"summary"``: one row per problem (its best configuration) in place of the
        per-configuration rankings, which grow with the store (10,000 rows at 100,000 runs);
        ``"all"``: the rankings of every configuration.
    tasks, methods
        Print the per-configuration rankings of these task or method ids only (either may be
        empty: no filter). The scoring is always of the whole store: ranks and ties are those
        of the full problems.

    Returns
    -------
    list of FitTable
        Solvers by profile score, profile values, the problems' summary, the per-configuration
        rankings (with ``configurations="all"`` or a filter), and (with ``traces``) the ECDF summary.

    Raises
    ------
    UnknownIdError
        When a task or method id of the filters has no run in the store.
    """
    import polars as pl
    from rich.text import Text

    from harness import score

    tables = score.report_store(store, traces=traces, n_boot=n_boot)
    ranked = tables["tasks"]
    for column, wanted in (("task", tasks), ("method", methods)):
        known = sorted(ranked[column].unique().to_list())
        unknown = sorted(set(wanted) - set(known))
        if unknown:
            raise UnknownIdError(f"--{column} {', '.join(unknown)}: no runs in the store (its {len(known)} "
                                 f"{column}s: {', '.join(known[:12])}{', ...' if len(known) > 12 else ''})")
        if wanted:
            ranked = ranked.filter(pl.col(column).is_in(list(wanted)))
    detailed = configurations == "all" or bool(tasks) or bool(methods)
    shown = {name: frame for name, frame in tables.items() if name != "tasks"}
    if detailed:
        shown["tasks"] = ranked
    renderables = report_renderables(shown)
    from harness.store import read_runs, read_studies
    from harness.tuning import tuned_against_default

    studies = read_studies(store)
    if studies:
        rows = read_runs(store).filter(pl.col("suite").is_in(sorted({r["suite"] for r in studies}))).to_dicts()
        renderables.insert(0, tuning_renderable(tuned_against_default(studies, rows)))
    if not detailed:
        n = tables["tasks"].height
        renderables.append(Text(f"{n} configuration{'s' if n != 1 else ''} over {tables['problems'].height} problems: "
                                "--all prints the rankings of every configuration, --task ID or --method ID "
                                "those of some"))
    return renderables


def number_text(value: float | None) -> str:
    """A number in at most 3 significant digits, whole (``5.96e+08``, ``0.0292``, ``inf``); ``-`` for none.

    >>> number_text(596e6), number_text(float("inf")), number_text(None)
    ('5.96e+08', 'inf', '-')
    """
    if value is None or value != value:
        return "-"
    if value in (float("inf"), float("-inf")):
        return "inf" if value > 0 else "-inf"
    return f"{value:.3g}"


def tuning_renderable(rows: Sequence[Mapping[str, Any]]) -> FitTable:
    """Tuned against default results, one row per study (:func:`harness.tuning.tuned_against_default`).

    The tuning cost stands beside the result it bought: the trials run and the seconds they took
    on the methods' clocks.
    """
    from harness.score import problem_label, varying_parameters

    def setting(values: Mapping[str, Any] | None) -> str:
        return "none (every trial failed)" if not values else ", ".join(f"{k}={v:.4g}" if isinstance(v, float)
                                                                       else f"{k}={v}" for k, v in values.items())

    variants = [(r["task"], json.dumps(r["task_params"], sort_keys=True)) for r in rows]
    varying = varying_parameters(variants)
    columns = [
        FitColumn("task", [problem_label(task, params, None, show=varying.get(task, set())) for task, params in variants],
                  kind="key", code="t"),
        FitColumn("method", [r["method"] for r in rows], kind="key", code="c"),
        FitColumn("framework", [r["framework"] for r in rows], kind="key", code="f"),
        FitColumn("trials", [f"{r['trials'] - r['failed_trials']}/{r['trials']} {r['sampler']}" for r in rows]),
        FitColumn("tuning [s]", [number_text(r["tuning_s"]) for r in rows]),
        FitColumn("selected", [setting(r["selected"]) for r in rows], kind="text"),
        FitColumn("tuned reached", [f"{r['tuned_reached']}/{r['tuned_runs']}" for r in rows]),
        FitColumn("tuned target ↓", [number_text(r["tuned_target"]) for r in rows]),
        FitColumn("tuned steps", [number_text(r["tuned_steps_to_target"]) for r in rows]),
        FitColumn("default reached", [f"{r['default_reached']}/{r['default_runs']}" for r in rows]),
        FitColumn("default target ↓", [number_text(r["default_target"]) for r in rows]),
    ]
    tests = sorted({r["test_metric"] for r in rows if r["test_metric"]})
    if tests:  # selected on validation: the result is reported on test
        columns += [FitColumn(f"tuned {' | '.join(tests)}", [number_text(r["tuned_test"]) for r in rows]),
                    FitColumn(f"default {' | '.join(tests)}", [number_text(r["default_test"]) for r in rows])]
    caption = ("tuned: the selected setting rerun on fresh seeds (median over them); default: the entry's declared "
               "hyperparameters on the suite's seeds; trials: finished/asked; tuning [s]: the trials' clocks, summed; "
               "target: the task's target metric; steps: median steps to target")
    return FitTable("Tuning: the selected settings against the defaults", columns, caption=caption)


def report_renderables(tables: Any) -> list[FitTable]:
    """:func:`harness.score.report`'s tables (a mapping of name to frame) as :class:`FitTable` s, as ``harness report`` prints them."""
    from harness import score

    titles = {
        "scores": "Solvers by performance-profile score (normalized area over tau in [1, 4])",
        "profiles": "Performance profiles: fraction of problems within tau x the best time-to-target",
        "problems": "Per problem: the best configuration (median over seeds, bootstrap 95% interval) and how many "
                    "share rank (CI) 1",
        "tasks": "Per problem: median over seeds, bootstrap 95% intervals, ties (failures count as infinite)",
        "ecdf": "ECDF over 40 targets 10^-0.2..1e-8 on suboptimality relative to the initial point "
                "(fraction of run-target pairs met, mean over the problems each solver ran)",
    }
    order = ("scores", "profiles", "problems", "tasks", "ecdf")
    keys = {"problem": "p", "method": "c", "framework": "f", "best": "c"}
    texts = {score.LABELS["tied_with"], score.LABELS["failures"], score.CLOCK_FLAG, score.OFFLINE}  # may wrap
    shown = []
    displayed = score.display_tables(tables)
    for name in (n for n in order if n in displayed):
        frame = displayed[name]
        notes = [f"{label}: {help_text}" for label, help_text in
                 ((score.CLOCK_FLAG, score.CLOCK_FLAG_HELP), (score.OFFLINE, score.OFFLINE_HELP))
                 if label in frame.columns]
        columns = [
            FitColumn(column, frame[column].to_list(),
                      kind="key" if column in keys else "text" if column in texts else "number",
                      code=keys.get(column, "c"))
            for column in frame.columns
        ]
        shown.append(FitTable(titles[name], columns, caption="\n".join(notes) or None, group=name == "tasks"))
    return shown


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m harness.leaderboard", description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=Path("harness-store"), help="The store directory.")
    parser.add_argument("--port", type=int, default=8501, help="TCP port (default 8501).")
    parser.add_argument("--host", default="127.0.0.1", help="Address to bind (default 127.0.0.1).")
    parser.add_argument("--catalog", type=Path, action="append", default=[], help="An extra catalog root. Repeatable.")
    parser.add_argument("--asv-results", type=Path, default=None,
                        help="asv's results directory, for the Regressions page.")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m harness.leaderboard --store DIR --port P [--host H] [--catalog DIR] [--asv-results DIR]``."""
    args = _parse(argv)
    extra = {"asv_results": args.asv_results} if args.asv_results is not None else {}
    return serve(args.store, port=args.port, host=args.host, catalog=args.catalog, **extra)


if __name__ == "__main__":
    sys.exit(main())
