"""Gradient descent that, at step ``at``, misbehaves towards its worker (executor fault tests).

``write`` says what the run writes to its worker's socket (found from the worker's ``--fd``
argument), each as one frame of the pool's framing (a 4-byte big-endian length) unless said:

- ``garbage``: bytes that are neither JSON nor anything else;
- ``pickle``: a pickle that, unpickled, runs code: it creates the file ``$HARNESS_TEST_LITTER``;
- ``shape``: JSON of the wrong shape, ``["result", 1, 2]``;
- ``forged``: a well-formed result whose row is another run's;
- ``partial``: a frame header announcing 100 bytes, and 10 of them;
- ``huge``: a frame header announcing 2 GiB;
- ``escaped``: the ``pickle`` frame, written by a double-forked ``setsid`` grandchild that then
  stays (``sleep 600``; its pid goes to ``$HARNESS_TEST_LITTER`` + ``.pid``);
- ``print``: not the socket: ``print_mb`` MiB to stdout, then a last line ``END OF OUTPUT``;
- ``none``: nothing.

``then: hang`` hangs afterwards, ``then: raise`` raises ``RuntimeError``, else the run goes on.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
import sys
import time


def _socket_fd() -> int:
    return int(sys.argv[sys.argv.index("--fd") + 1])


def _frame(payload: bytes) -> bytes:
    return struct.pack("!i", len(payload)) + payload


class _RunsCode:
    def __reduce__(self):
        path = os.environ.get("HARNESS_TEST_LITTER", "/dev/null")
        return (exec, (f"open({path!r}, 'w').write('unpickled in ' + str(__import__('os').getpid()))",))


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


class Misbehave:
    def __init__(self, *, lr: float, write: str, at: int, then: str = "return", print_mb: int = 0) -> None:
        self.lr = lr
        self.write = write
        self.at = at
        self.then = then
        self.print_mb = print_mb

    def init(self, params, oracle):
        return 0

    def step(self, params, state, oracle):
        if state + 1 == self.at and not oracle.warmup:
            getattr(self, "_" + self.write)()
            if self.then == "raise":
                raise RuntimeError("the run raised after misbehaving")
            while self.then == "hang":
                time.sleep(3600)
        return params - self.lr * oracle.grad(params), state + 1

    def _none(self) -> None:
        pass

    def _garbage(self) -> None:
        _write_all(_socket_fd(), _frame(b"\x80\x04 not a message \xff\xfe"))

    def _pickle(self) -> None:
        _write_all(_socket_fd(), _frame(pickle.dumps(("result", _RunsCode()))))

    def _shape(self) -> None:
        _write_all(_socket_fd(), _frame(b'["result", 1, 2]'))

    def _forged(self) -> None:
        row = {"run_id": "f" * 16, "suite": "forged", "task": "lsq", "method": "plain-gd", "framework": "torch",
               "hardware": "test-cpu", "seed": 0, "status": "reached_target", "error": None, "steps": 1}
        _write_all(_socket_fd(), _frame(json.dumps(["result", row, [], None]).encode()))

    def _partial(self) -> None:
        _write_all(_socket_fd(), struct.pack("!i", 100) + b"0123456789")

    def _huge(self) -> None:
        _write_all(_socket_fd(), struct.pack("!i", 2**31 - 1) + b"[")

    def _escaped(self) -> None:
        read, write = os.pipe()
        child = os.fork()
        if child == 0:  # the child: a new session, a grandchild that writes and stays, and gone
            try:
                os.close(read)
                os.setsid()
                if os.fork() == 0:
                    # The pid first, whole (renamed into place): the driver may kill this process as
                    # soon as the frame below reaches it, and the test reads the pid to check that.
                    path = os.environ.get("HARNESS_TEST_LITTER")
                    if path:
                        with open(path + ".pid.tmp", "w") as handle:
                            handle.write(str(os.getpid()))
                        os.replace(path + ".pid.tmp", path + ".pid")
                    self._pickle()
                    os.write(write, b"written\n")
                    os.execvp("sleep", ["sleep", "600"])
            finally:
                os._exit(0)
        os.close(write)
        with os.fdopen(read) as handle:
            handle.readline()  # the grandchild's frame is in the socket before the run goes on
        os.waitpid(child, 0)

    def _print(self) -> None:
        line = b"x" * 1023 + b"\n"
        for _ in range(self.print_mb * 1024):
            _write_all(1, line)
        _write_all(1, b"END OF OUTPUT\n")
