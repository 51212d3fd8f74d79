"""The worker side of every executor: catalog rebuilding, thread pinning, memory limits.

A worker never receives a :class:`~harness.catalog.Catalog`: it gets a :class:`CatalogSource`
(the roots and files to load) and a run as a plain dict, and rebuilds both, so a pool
process, a Ray task on another machine and a torch.distributed rank all do the same thing.

Run as ``python -m harness.execute.worker --fd N`` it is one worker of the local pool
(:mod:`harness.execute.pool`): two processes, a keeper (the one started, which runs no run's
code: :func:`_keep`) and its child, the server, which reads runs from the socket ``N`` and
answers, per run, ``["started", rss_bytes, server_pid]``, one ``["point", point]`` per trace
point as the run records it, then ``["result", row, trace, left_behind]`` (or ``["failed",
text]`` when it cannot start the run), until the socket closes. Its answers are JSON, never
pickles (:func:`send_message`): the run's code shares the server's process and can write to
the socket, and the driver must not unpickle what it writes. The pool starts it with the
thread variables of :func:`thread_env` already in its environment, so BLAS, OpenMP and XLA
read them before they are first imported.

Both processes are child subreapers (:func:`become_subreaper`): a process a run starts stays
their descendant even after a double fork and ``setsid``, and even when the server dies, so
the pool (or the keeper, when the server or the driver dies) finds and kills it. After each
run the server looks for what the run left running (:func:`left_behind`: Python threads, live
descendant processes) and names it in ``left_behind`` (``None`` when nothing); the pool then
keeps the run's result and replaces the worker before the next run. Native threads are not
counted: torch and XLA start pool threads lazily, at later honest runs too.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import faulthandler
import functools
import gc
import importlib
import json
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.backends import rss_bytes, status_bytes  # rss_bytes re-exported for the pool

if TYPE_CHECKING:
    from harness.catalog import Catalog
    from harness.plan import RunSpec
    from harness.run import RunResult
    from harness.spec import HardwareProfile

__all__ = [
    "CatalogSource",
    "LeftBehind",
    "address_space_bytes",
    "become_subreaper",
    "default_grace",
    "die_with_parent",
    "execute_isolated",
    "kill_tree",
    "left_behind",
    "live_descendants",
    "main",
    "memory_limit",
    "preload",
    "python_threads",
    "rss_bytes",
    "send_message",
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
    """Import and start ``framework`` before a run, once per process: that is not the run's time or memory.

    torch: also ``torch._dynamo``, which the first ``torch.optim`` optimizer of a process imports
    (1.5-2 s), so that no run's ``init_s`` pays it. jax: one computation, which starts XLA's
    client and thread pools.
    """
    if framework in _PRELOADED:
        return
    try:
        importlib.import_module(f"harness.backends.{framework}")
    except Exception:  # noqa: BLE001 - the run itself will fail with this error and record it
        return
    if framework == "torch":
        import torch
        import torch._dynamo  # noqa: F401 - what torch.optim imports on first use

        if threads is not None:
            with contextlib.suppress(RuntimeError):  # settable once, before any inter-op work
                torch.set_num_interop_threads(threads)
    elif framework == "jax":
        import jax
        import jax.numpy as jnp

        # The first computation starts XLA's client and thread pools (a GiB of address space).
        with contextlib.suppress(Exception):
            jax.jit(lambda x: x + 1)(jnp.zeros(1)).block_until_ready()
    _PRELOADED.add(framework)


#: The frameworks :func:`preload` has started in this process.
_PRELOADED: set[str] = set()




def address_space_bytes() -> int | None:
    """This process's mapped address space, in bytes (Linux; ``None`` elsewhere)."""
    return status_bytes("VmSize")


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


def execute_isolated(run: RunSpec, catalog: Catalog, *,
                     on_point: Callable[[dict[str, Any]], None] | None = None) -> RunResult:
    """Execute ``run`` in this worker: framework preloaded, memory capped (ranks cap themselves).

    ``on_point`` gets each trace point as the run records it (one-rank runs).
    """
    from harness.execute import execute

    profile: HardwareProfile = catalog.hardware[run.hardware].spec
    preload(run.framework, threads=profile.threads)
    if profile.ranks > 1:
        return execute(run, catalog)  # starts the ranks, which cap their own memory
    with memory_limit(profile.memory_limit_mb, device=profile.device):
        return execute(run, catalog, on_point=on_point)


def send_message(conn: Connection, message: Sequence[Any]) -> None:
    """Send ``message`` (JSON: lists, dicts, strings, numbers, NaN and infinities, None) as one frame.

    The frame is :meth:`Connection.send_bytes`'s: a 4-byte big-endian signed length, then the
    UTF-8 JSON text. A value JSON cannot hold (a numpy scalar a method slipped into a row) is
    sent as its ``float`` or ``str``: the message still goes, the driver validates its shape.
    """
    conn.send_bytes(json.dumps(message, allow_nan=True, default=_json_fallback).encode())


def _json_fallback(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


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


def die_with_parent(parent: int | None = None, signum: int = signal.SIGKILL) -> None:
    """Have the kernel send ``signum`` to this process when its parent dies (Linux): no run outlives its bench."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signum)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if parent is not None and os.getppid() != parent:  # the parent died before the prctl
        os._exit(1)


PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Make this process a child subreaper (Linux): orphaned descendants are reparented to it.

    A run's double-forked, ``setsid`` child then stays in this process's tree, where
    :func:`left_behind` and the pool's kill find it. ``False`` where the kernel has no such option.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def python_threads() -> dict[int, str]:
    """The threads of this process that run Python code, but the calling one: ``{ident: name}``.

    Both those :mod:`threading` knows and those started with ``_thread.start_new_thread``
    (seen by their frames); native threads that never ran Python (BLAS, OpenMP, XLA pools) are not.
    """
    me = threading.get_ident()
    known = {t.ident: t for t in threading.enumerate()}
    alive = {ident for ident, thread in known.items() if ident is not None and thread.is_alive()}
    found: dict[int, str] = {}
    for ident in alive | set(sys._current_frames()):  # noqa: SLF001 - the only view of threads threading does not know
        thread = known.get(ident)
        # A dummy thread is a native one that once called into Python: not counted.
        if ident != me and not isinstance(thread, threading._DummyThread):  # noqa: SLF001
            found[ident] = thread.name if thread is not None else f"thread {ident}"
    return found


def _idle_pool_thread(ident: int) -> bool:
    """Whether thread ``ident`` is an idle :class:`~concurrent.futures.ThreadPoolExecutor` worker.

    Its innermost Python frame is the pool's loop itself: it waits in the (C) queue for work, and
    runs nothing. Libraries keep such pools between calls (torch.compile does), honest runs too.
    """
    frame = sys._current_frames().get(ident)  # noqa: SLF001
    if frame is None:
        return False
    from concurrent.futures import thread as futures_thread

    return frame.f_code is futures_thread._worker.__code__  # noqa: SLF001


@dataclass(frozen=True)
class LeftBehind:
    """What a run left running in its worker: Python threads and live descendant processes."""

    threads: tuple[str, ...] = ()
    processes: tuple[tuple[int, str], ...] = ()  # (pid, name)

    def __bool__(self) -> bool:
        return bool(self.threads or self.processes)

    def describe(self) -> str:
        """For the run's row, e.g. ``"1 thread, 2 processes (threads: spin; processes: 812 sleep, 815 sleep)"``."""
        counts, details = [], []
        if self.threads:
            counts.append(f"{len(self.threads)} thread{'s' * (len(self.threads) > 1)}")
            details.append("threads: " + ", ".join(self.threads))
        if self.processes:
            counts.append(f"{len(self.processes)} process{'es' * (len(self.processes) > 1)}")
            details.append("processes: " + ", ".join(f"{pid} {name}" for pid, name in self.processes))
        return f"{', '.join(counts)} ({'; '.join(details)})"


def _children(pid: int) -> list[int]:
    """The children of ``pid``: from every thread's ``/proc`` list (orphans a subreaper adopts join any one)."""
    found: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tids:
        with contextlib.suppress(OSError, ValueError):
            found += map(int, Path(f"/proc/{pid}/task/{tid}/children").read_text().split())
    return found


def _state(pid: int) -> str | None:
    """The state letter of process ``pid`` (``Z``: a zombie), or ``None`` when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:][:1] or None


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


@functools.cache
def _proc_children_listed() -> bool:
    return Path(f"/proc/self/task/{os.getpid()}/children").exists()


def live_descendants(root: int | None = None) -> list[tuple[int, str]]:
    """The live descendants of process ``root`` (default: this one), as (pid, name).

    Zombie children of this process are reaped on the way (orphans a subreaper adopted end as its
    zombies); zombies are never counted.
    """
    me = os.getpid()
    root = me if root is None else root
    if _proc_children_listed():  # a walk of our own tree: no scan of every process on the host
        found = []
        frontier = [(root, child) for child in _children(root)]
        while frontier:
            parent, pid = frontier.pop()
            state = _state(pid)
            if state == "Z":
                if parent == me:
                    with contextlib.suppress(ChildProcessError, OSError):
                        os.waitpid(pid, os.WNOHANG)
            elif state is not None:
                found.append((pid, _name(pid)))
                frontier += [(pid, child) for child in _children(pid)]
        return found
    import psutil

    found = []
    with contextlib.suppress(psutil.Error):
        for process in psutil.Process(root).children(recursive=True):
            with contextlib.suppress(psutil.Error, ChildProcessError, OSError):
                if process.status() != psutil.STATUS_ZOMBIE:
                    found.append((process.pid, process.name()))
                elif process.ppid() == me:
                    os.waitpid(process.pid, os.WNOHANG)
    return found


def left_behind(threads_before: Iterable[int] = (), *, settle_s: float = 0.2) -> LeftBehind:
    """What this process runs beyond ``threads_before``: Python threads, live descendant processes.

    Idle thread-pool workers are not counted (see :func:`_idle_pool_thread`); dead children are
    reaped. Whatever is found is looked at again for up to ``settle_s`` (a thread or process that
    was ending when the run returned is not counted).
    """
    before = set(threads_before)
    deadline = time.monotonic() + settle_s
    while True:
        threads = {i: n for i, n in python_threads().items() if i not in before and not _idle_pool_thread(i)}
        processes = live_descendants()
        if not (threads or processes) or time.monotonic() >= deadline:
            return LeftBehind(tuple(sorted(threads.values())), tuple(processes))
        time.sleep(0.02)


def kill_tree(pid: int, *, root: bool = True, rounds: int = 100) -> list[int]:
    """SIGKILL process ``pid`` (unless not ``root``) and every descendant, in whatever session or group.

    Returns the pids it killed. The tree is frozen first (SIGSTOP, from the root down, until no
    new descendant appears), so no process forks a new one, or dies and has its children
    reparented out of reach, between the snapshot and the kill. ``pid`` must be a child of ours not yet reaped (a zombie still holds
    its pid), or a process known to be alive: a reaped pid may name another process.
    """
    import psutil

    try:
        top = psutil.Process(pid)
    except psutil.Error:
        return []
    frozen: dict[int, psutil.Process] = {}
    for _ in range(rounds):
        try:
            tree = [top, *top.children(recursive=True)] if root else top.children(recursive=True)
        except psutil.Error:
            tree = [p for p in frozen.values() if p.is_running()]
        new = [p for p in tree if p.pid not in frozen]
        if not new:
            break
        for process in new:
            with contextlib.suppress(psutil.Error):
                process.send_signal(signal.SIGSTOP)  # psutil checks the pid still names this process
            frozen[process.pid] = process
    for process in frozen.values():
        with contextlib.suppress(psutil.Error):
            process.send_signal(signal.SIGKILL)
    return list(frozen)


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
    die_with_parent(args.parent, signal.SIGTERM)
    become_subreaper()
    _no_core_files()
    server = os.fork()  # a bare fork, before anything is imported or any thread started
    if server:
        os.close(args.fd)  # the server's alone: the driver sees it close when the server dies
        _keep(server)
    die_with_parent(os.getppid())
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


def _keep(server: int) -> None:
    """The keeper: the parent of the server process, running no run's code; it never returns.

    Both are child subreapers, so whatever a run starts stays in the keeper's tree even when the
    server dies (``os._exit``, a crash). When the server ends, or when the driver dies (the
    keeper's parent-death signal is SIGTERM), the keeper kills every descendant it has, then
    exits as the server did (same code, same signal): the pool sees the server's end.
    """

    def terminate(signum: int, frame: Any) -> None:
        kill_tree(os.getpid(), root=False)
        os._exit(128 + signum)

    import psutil  # noqa: F401 - imported now, not when the driver has died and the tree must go fast

    signal.signal(signal.SIGTERM, terminate)
    status = os.waitpid(server, 0)[1]
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with contextlib.suppress(Exception):
        kill_tree(os.getpid(), root=False)
    code = os.waitstatus_to_exitcode(status)
    if code < 0:  # die as the server died, so the driver names the same signal
        with contextlib.suppress(OSError, ValueError):  # SIGKILL and SIGSTOP cannot be set, nor need to be
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        time.sleep(1)
    os._exit(code if code >= 0 else 1)


def _serve(conn: Connection, source: CatalogSource, message: dict[str, Any]) -> None:
    from harness.plan import RunSpec
    from harness.record import Status

    try:
        run = RunSpec.model_validate(message)
        catalog = source.load()
        profile = catalog.hardware[run.hardware].spec
        preload(run.framework, threads=profile.threads)
    except Exception:  # noqa: BLE001 - reported to the driver, which records the run as an error
        send_message(conn, ("failed", traceback.format_exc()))
        return
    threads = python_threads()
    rss, keeper = rss_bytes(), status_bytes("VmRSS", os.getppid())
    # The baseline of the pool's resident-set watchdog, which sums the whole tree (keeper included).
    send_message(conn, ("started", rss + keeper if rss is not None and keeper is not None else rss, os.getpid()))
    # Each point goes as it is recorded: the driver keeps the trace of a run that dies mid-way.
    result = execute_isolated(run, catalog, on_point=lambda point: send_message(conn, ("point", point)))
    sys.stdout.flush()
    sys.stderr.flush()
    left = left_behind(threads)
    if result.status == Status.OOM and not left:
        _give_back_memory()  # what the run hoarded is garbage now: the next run's baseline stays low
    send_message(conn, ("result", result.row, result.trace, left.describe() if left else None))


def _give_back_memory() -> None:
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)  # glibc keeps freed heap mapped until asked


if __name__ == "__main__":
    main()
