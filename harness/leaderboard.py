"""The leaderboard: a Streamlit app over a store, started as a subprocess.

``serve(store, port=...)`` runs ``streamlit run leaderboard/app.py`` headless, bound to
127.0.0.1 unless told otherwise, without usage statistics. The app reads the store only; for
large stores run :func:`harness.store.compact` first (``harness compact``), so the overview
reads a few part files instead of one file per run.

This module also holds the app's plain helpers (no Streamlit import): store fingerprint,
method declarations from the catalog, stable method colours and Markdown escaping.

Examples
--------
Command line (the same as ``harness leaderboard``)::

    python -m harness.leaderboard --store harness-store --port 8501
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "CATALOG_ENV",
    "PALETTE",
    "STORE_ENV",
    "app_path",
    "escape_markdown",
    "main",
    "method_colour",
    "method_declarations",
    "report_tables",
    "serve",
    "store_fingerprint",
    "streamlit_command",
]

#: Environment variable naming the store directory (``--store`` after ``--`` also works).
STORE_ENV = "HARNESS_STORE"
#: Environment variable of extra catalog roots, separated by ``os.pathsep``.
CATALOG_ENV = "HARNESS_CATALOG"

#: Fixed palette; a method's colour is picked by a hash of its id (stable across plots and runs).
PALETTE: tuple[str, ...] = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#393b79", "#ad494a", "#637939", "#8c6d31", "#843c39", "#7b4173",
    "#3182bd", "#e6550d", "#31a354", "#756bb1",
)

_MARKDOWN_SPECIAL = set("\\`*_{}[]()<>#+-.!|~:$&\"'=^%@;,/?")


def app_path() -> Path:
    """The app's entry script: ``leaderboard/app.py`` of the source tree or of the wheel."""
    package = Path(__file__).resolve().parent
    for candidate in (package.parent / "leaderboard" / "app.py", package / "_builtin" / "leaderboard" / "app.py"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("leaderboard/app.py is not installed beside the harness package")


def streamlit_command(
    store: str | os.PathLike[str], *, port: int, host: str = "127.0.0.1", catalog: Sequence[str | os.PathLike[str]] = ()
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
    return command


def serve(
    store: str | os.PathLike[str],
    *,
    port: int,
    host: str = "127.0.0.1",
    catalog: Sequence[str | os.PathLike[str]] = (),
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
    """
    env = {
        **os.environ,
        STORE_ENV: str(Path(store).resolve()),
        CATALOG_ENV: os.pathsep.join(str(Path(r).resolve()) for r in catalog),
        "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
    }
    command = streamlit_command(store, port=port, host=host, catalog=catalog)
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


def method_colour(method: str) -> str:
    """The colour of ``method`` in every plot: a hash of its id into :data:`PALETTE`."""
    digest = hashlib.sha256(method.encode("utf-8")).digest()
    return PALETTE[int.from_bytes(digest[:4], "big") % len(PALETTE)]


def escape_markdown(text: object) -> str:
    """``text`` with every Markdown (and HTML) special character backslash-escaped.

    Streamlit renders the result as the literal text: no emphasis, link, HTML tag, colour
    directive or emoji short code is interpreted. Newlines become spaces.
    """
    escaped = "".join(f"\\{c}" if c in _MARKDOWN_SPECIAL else c for c in str(text))
    return " ".join(escaped.splitlines())


def report_tables(store: str | os.PathLike[str], *, traces: bool = True, n_boot: int = 2000) -> list[Any]:
    """The scoring of ``store`` as rich tables, for ``harness report`` (same numbers as the app).

    Cells and headers are :class:`rich.text.Text`, so names and texts from the store are shown
    literally: ``[bold]`` in a method name is not rich markup.

    A solver or configuration with runs whose clock caught compilations is flagged in a
    ``⚠ compiled in clock`` column (runs, seconds), and a method with an offline phase shows
    its cost in an ``offline [s]`` column (median, max); each column appears only when some
    row has one, and the table's caption says what it means.

    Returns
    -------
    list of rich.table.Table
        Solvers by profile score, profile values, per-task rankings, and (with ``traces``)
        the ECDF summary.
    """
    from rich.table import Table
    from rich.text import Text

    from harness import score

    titles = {
        "scores": "Solvers by performance-profile score (normalized area over tau in [1, 4])",
        "profiles": "Performance profiles: fraction of problems within tau x the best time-to-target",
        "tasks": "Per problem: median over seeds, bootstrap 95% intervals, ties (failures count as infinite)",
        "ecdf": "ECDF over 51 suboptimality targets 1e2..1e-8 (fraction of run-target pairs met)",
    }
    tables = []
    for name, frame in score.display_tables(score.report_store(store, traces=traces, n_boot=n_boot)).items():
        notes = [f"{label}: {help_text}" for label, help_text in
                 ((score.CLOCK_FLAG, score.CLOCK_FLAG_HELP), (score.OFFLINE, score.OFFLINE_HELP))
                 if label in frame.columns]
        table = Table(title=Text(titles[name]), title_justify="left",
                      caption=Text("\n".join(notes)) if notes else None, caption_justify="left")
        for column in frame.columns:
            # Names stay whole; numbers and intervals fold when the terminal is narrow.
            table.add_column(Text(column), no_wrap=column in ("problem", "method", "rank"), overflow="fold")
        for row in frame.iter_rows():
            table.add_row(*(Text(value) for value in row))
        tables.append(table)
    return tables


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m harness.leaderboard", description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=Path("harness-store"), help="The store directory.")
    parser.add_argument("--port", type=int, default=8501, help="TCP port (default 8501).")
    parser.add_argument("--host", default="127.0.0.1", help="Address to bind (default 127.0.0.1).")
    parser.add_argument("--catalog", type=Path, action="append", default=[], help="An extra catalog root. Repeatable.")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m harness.leaderboard --store DIR --port P [--host H] [--catalog DIR]``."""
    args = _parse(argv)
    return serve(args.store, port=args.port, host=args.host, catalog=args.catalog)


if __name__ == "__main__":
    sys.exit(main())
