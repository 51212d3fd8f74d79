"""Gradient descent that, at step ``at``, leaves something running (executor hygiene tests).

What it leaves is written, one ``kind pid [tid]`` line each, to the file named by
``$HARNESS_TEST_LITTER`` (when set), so tests can check that the pool killed it:

- ``thread``: a Python thread that keeps running (line ``thread <worker pid> <native tid>``);
- ``raw``: a thread started with ``_thread.start_new_thread``, unknown to :mod:`threading`;
- ``idle_pool``: an idle :class:`~concurrent.futures.ThreadPoolExecutor`, not shut down (as
  torch.compile leaves one): harmless, not a leftover;
- ``process``: a child process, ``sleep 600``, never waited for;
- ``setsid``: a grandchild, double-forked and ``setsid`` (out of the worker's session and
  process group), that execs ``sleep 600``; its parent exits at once.
- ``imports``: leaves nothing; records the frameworks its worker has imported (line
  ``imports <worker pid> <torch,jax,...|none>``).

``subvert`` blinds the worker's own look for leftovers (the pool's look from outside remains).
Kinds combine with ``+``; ``then: hang`` hangs afterwards, ``then: exit`` ends the worker
process (``os._exit(3)``) (the run is killed at its time budget).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time



def _record(line: str) -> None:
    path = os.environ.get("HARNESS_TEST_LITTER")
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())  # one short O_APPEND write: atomic between processes
        finally:
            os.close(fd)


class Litter:
    def __init__(self, *, lr: float, leave: str, at: int, then: str = "return") -> None:
        self.lr = lr
        self.leave = leave
        self.at = at
        self.then = then

    def step(self, params, state, oracle):
        if state + 1 == self.at:
            for what in self.leave.split("+"):
                getattr(self, "_" + what)()
            if self.then == "exit":
                os._exit(3)
            while self.then == "hang":
                time.sleep(3600)
        return params - self.lr * oracle.grad(params), state + 1

    def init(self, params, oracle):
        return 0

    def _imports(self) -> None:
        import sys

        frameworks = [name for name in ("torch", "jax", "tensorflow") if name in sys.modules]
        _record(f"imports {os.getpid()} {','.join(frameworks) or 'none'}")

    def _thread(self) -> None:
        started = threading.Event()

        def spin() -> None:
            _record(f"thread {os.getpid()} {threading.get_native_id()}")
            started.set()
            while True:
                time.sleep(0.01)

        threading.Thread(target=spin, name="litter-spin", daemon=True).start()
        started.wait()

    def _raw(self) -> None:
        import _thread

        started = threading.Event()

        def spin() -> None:
            started.set()
            while True:
                time.sleep(0.01)

        _thread.start_new_thread(spin, ())
        started.wait()
        _record(f"raw {os.getpid()}")

    def _idle_pool(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.pool = ThreadPoolExecutor(2)
        assert self.pool.submit(sum, [1, 2]).result() == 3

    def _subvert(self) -> None:
        import harness.execute.worker as worker

        worker.left_behind = lambda *args, **kwargs: worker.LeftBehind()

    def _process(self) -> None:
        child = subprocess.Popen(["sleep", "600"])  # noqa: S607 - never waited for
        _record(f"process {child.pid}")

    def _setsid(self) -> None:
        read, write = os.pipe()
        child = os.fork()
        if child == 0:  # the child: a new session, a grandchild, and gone
            try:
                os.close(read)
                os.setsid()
                if os.fork() == 0:
                    os.write(write, f"{os.getpid()}\n".encode())
                    os.close(write)
                    os.execvp("sleep", ["sleep", "600"])
            finally:
                os._exit(0)
        os.close(write)
        with os.fdopen(read) as handle:
            grandchild = int(handle.readline())
        os.waitpid(child, 0)
        _record(f"setsid {grandchild}")
