"""The worker side of every executor: catalog rebuilding, thread pinning, memory limits.

A worker never receives a :class:`~harness.catalog.Catalog`: it gets a :class:`CatalogSource`
(the roots and files to load) and a run as a plain dict, and rebuilds both, so a pool
process, a Ray task on another machine and a torch.distributed rank all do the same thing.

Run as ``python -m harness.execute.worker --fd N`` it is one process of the local pool
(:mod:`harness.execute.pool`): it reads runs from the socket ``N`` and answers, per run,
``("started", rss_bytes)`` then ``("result", row, trace)``, until the socket closes.
The pool starts it with the thread variables of :func:`thread_env` already in its
environment, so BLAS, OpenMP and XLA read them before they are first imported.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import faulthandler
import functools
import gc
import importlib
import os
import signal
import sys
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.catalog import Catalog
    from harness.plan import RunSpec
    from harness.run import RunResult
    from harness.spec import HardwareProfile

__all__ = [
    "CatalogSource",
    "address_space_bytes",
    "default_grace",
    "die_with_parent",
    "execute_isolated",
    "main",
    "memory_limit",
    "preload",
    "rss_bytes",
    "start_process",
    "thread_env",
]

#: Variables read once, when a library starts its thread pool: they must be in the
#: environment before numpy, torch or jax is imported.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "POLARS_MAX_THREADS",
)
_XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


@dataclass(frozen=True)
class CatalogSource:
    """Where a worker finds the catalog: what :meth:`Catalog.load` is called with.

    Parameters
    ----------
    roots
        Catalog roots (absolute paths: a worker may run in another directory or machine).
    files
        Single declaration files.
    builtin
        Whether the built-in catalog is loaded too (each worker finds its own install's).
    """

    roots: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    builtin: bool = True

    @classmethod
    def of(cls, roots: Sequence[str | os.PathLike[str]] = (), *, files: Sequence[str | os.PathLike[str]] = (),
           builtin: bool = True) -> CatalogSource:
        """A source with absolute paths."""
        return cls(tuple(str(Path(r).resolve()) for r in roots), tuple(str(Path(f).resolve()) for f in files), builtin)

    @classmethod
    def for_run(cls, catalog: Catalog, run: RunSpec) -> CatalogSource:
        """The three declarations ``run`` needs (task, method, hardware), as files: for ranks on this host."""
        entries = (catalog.tasks[run.task], catalog.methods[run.method], catalog.hardware[run.hardware])
        return cls(files=tuple(str(e.path.resolve()) for e in entries), builtin=False)

    def load(self) -> Catalog:
        """The catalog, loaded once per process."""
        return _load_catalog(self)


@functools.lru_cache(maxsize=8)
def _load_catalog(source: CatalogSource) -> Catalog:
    from harness.catalog import Catalog

    return Catalog.load(source.roots, files=source.files, builtin=source.builtin)


def default_grace(seconds: float) -> float:
    """The margin past a run's time budget before it is killed: 10 s, or 10% of long budgets.

    Examples
    --------
    >>> default_grace(60), default_grace(600)
    (10.0, 60.0)
    """
    return max(10.0, 0.1 * seconds)


def thread_env(threads: int | None, *, base: dict[str, str] | None = None) -> dict[str, str]:
    """The variables to add to the environment ``base`` (default: ours) to pin thread pools to ``threads``.

    ``None`` leaves every library its default. For one thread, XLA's flag is appended to the
    ``XLA_FLAGS`` of ``base`` (the user's flags are kept).

    Examples
    --------
    >>> thread_env(1, base={})["OMP_NUM_THREADS"]
    '1'
    >>> thread_env(None, base={})
    {}
    """
    if threads is None:
        return {}
    env = {name: str(threads) for name in THREAD_VARIABLES}
    if threads == 1:
        # XLA's CPU client ignores OMP_*: its Eigen pool is switched off by flag instead.
        flags = (os.environ if base is None else base).get("XLA_FLAGS", "")
        if "xla_cpu_multi_thread_eigen" not in flags:
            env["XLA_FLAGS"] = f"{flags} {_XLA_ONE_THREAD}".strip()
    return env


def preload(framework: str, *, threads: int | None) -> None:
    """Import and start ``framework`` before a run: that is not the run's time or memory."""
    try:
        importlib.import_module(f"harness.backends.{framework}")
    except Exception:  # noqa: BLE001 - the run itself will fail with this error and record it
        return
    if framework == "torch" and threads is not None:
        import torch

        with contextlib.suppress(RuntimeError):  # settable once, before any inter-op work
            torch.set_num_interop_threads(threads)
    elif framework == "jax":
        import jax
        import jax.numpy as jnp

        # The first computation starts XLA's client and thread pools (a GiB of address space).
        with contextlib.suppress(Exception):
            jax.jit(lambda x: x + 1)(jnp.zeros(1)).block_until_ready()


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def rss_bytes() -> int | None:
    """This process's resident set, in bytes (Linux; ``None`` elsewhere)."""
    return _status_kb("VmRSS")


def address_space_bytes() -> int | None:
    """This process's mapped address space, in bytes (Linux; ``None`` elsewhere)."""
    return _status_kb("VmSize")


@contextlib.contextmanager
def memory_limit(limit_mb: int | None, *, device: str = "cpu") -> Iterator[None]:
    """Cap the address space this process may add, for the duration of the block.

    The soft ``RLIMIT_AS`` becomes the current address space plus ``limit_mb``: an allocation
    past it fails (``MemoryError``, torch's "can't allocate memory") and the run is recorded as
    ``oom`` instead of taking the host down. The baseline (interpreter, framework already
    imported) is not the run's. CUDA runs are not capped this way (the driver maps far more
    address space than it uses); the pool's resident-set watchdog covers their host memory.
    """
    try:
        import resource
    except ImportError:  # not POSIX
        yield
        return
    baseline = address_space_bytes()
    if limit_mb is None or device == "cuda" or baseline is None:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = baseline + limit_mb * 2**20
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def execute_isolated(run: RunSpec, catalog: Catalog) -> RunResult:
    """Execute ``run`` in this worker: framework preloaded, memory capped (ranks cap themselves)."""
    from harness.run import execute_run

    profile: HardwareProfile = catalog.hardware[run.hardware].spec
    preload(run.framework, threads=profile.threads)
    if profile.ranks > 1:
        return execute_run(run, catalog)
    with memory_limit(profile.memory_limit_mb, device=profile.device):
        return execute_run(run, catalog)


def start_process(
    module: str, *, env: dict[str, str], args: Sequence[str] = (), **popen: Any
) -> tuple[Any, Connection]:
    """Start ``python -m module --fd N --parent PID [args]``; return it and our end of socket ``N``.

    A fresh interpreter, never a bare fork: jax and torch threads do not survive one.
    ``popen`` goes to :class:`subprocess.Popen` (output, session).
    """
    import socket
    import subprocess
    import warnings

    parent, child = socket.socketpair()
    command = [sys.executable, "-m", module, "--fd", str(child.fileno()), "--parent", str(os.getpid()), *args]
    try:
        with warnings.catch_warnings():
            # fork + exec at once is safe; jax warns about any fork of a process it runs in.
            warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
            process = subprocess.Popen(command, pass_fds=(child.fileno(),), env=env, stdin=subprocess.DEVNULL, **popen)
    except BaseException:
        parent.close()
        raise
    finally:
        child.close()
    return process, Connection(parent.detach())


def die_with_parent(parent: int | None = None) -> None:
    """Have the kernel SIGKILL this process when its parent dies (Linux), so no run outlives its bench."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if parent is not None and os.getppid() != parent:  # the parent died before the prctl
        os._exit(1)


def _no_core_files() -> None:
    with contextlib.suppress(ImportError, ValueError, OSError):
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_CORE)
        resource.setrlimit(resource.RLIMIT_CORE, (0, hard))


def main(argv: Sequence[str] | None = None) -> None:
    """Serve runs on a socket until it closes (the local pool's worker process)."""
    parser = argparse.ArgumentParser(prog="python -m harness.execute.worker")
    parser.add_argument("--fd", type=int, required=True, help="The socket to the driver.")
    parser.add_argument("--parent", type=int, default=None, help="The driver's pid.")
    parser.add_argument("--cpus", default=None, help="Comma-separated cores to pin this worker to.")
    args = parser.parse_args(argv)
    die_with_parent(args.parent)
    _no_core_files()
    faulthandler.enable()  # a crash in native code leaves its Python stack in the worker's log
    if args.cpus:
        with contextlib.suppress(OSError, AttributeError):
            os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})
    conn = Connection(args.fd)
    try:
        source: CatalogSource = conn.recv()
        while True:
            message: Any = conn.recv()
            if message is None:
                return
            _serve(conn, source, message)
    except (EOFError, BrokenPipeError, ConnectionResetError):
        return  # the driver is gone


def _serve(conn: Connection, source: CatalogSource, message: dict[str, Any]) -> None:
    from harness.plan import RunSpec

    try:
        run = RunSpec.model_validate(message)
        catalog = source.load()
        profile = catalog.hardware[run.hardware].spec
        preload(run.framework, threads=profile.threads)
    except Exception:  # noqa: BLE001 - reported to the driver, which records the run as an error
        conn.send(("failed", traceback.format_exc()))
        return
    conn.send(("started", rss_bytes()))
    result = execute_isolated(run, catalog)
    sys.stdout.flush()
    sys.stderr.flush()
    if result.status == "oom":
        _give_back_memory()  # what the run hoarded is garbage now: the next run's baseline stays low
    conn.send(("result", result.row, result.trace))


def _give_back_memory() -> None:
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)  # glibc keeps freed heap mapped until asked


if __name__ == "__main__":
    main()
