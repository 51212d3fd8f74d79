"""Gradient descent, healthy or with an injected fault at one step (executor tests).

``GD`` appends a line to the file named by ``$HARNESS_TEST_COUNTER`` when a run starts (not
in the harness's warm-up against its decoy oracle), so tests can count how many times each
run was executed.
"""

from __future__ import annotations

import os
import signal
import time


class GD:
    def __init__(self, *, lr: float, step_sleep_s: float = 0.0) -> None:
        self.lr = lr
        self.step_sleep_s = step_sleep_s

    def init(self, params, oracle):
        counter = os.environ.get("HARNESS_TEST_COUNTER")
        if counter and not oracle.warmup:
            # The run's identity: framework, data (the objective at the start) and start point (the seed).
            key = f"{type(params).__module__.split('.')[0]} {float(oracle.value(params))!r} {float(params.sum())!r}"
            with open(counter, "a") as handle:  # one short O_APPEND write: atomic between processes
                handle.write(f"{os.getpid()} {key}\n")
        return 0

    def step(self, params, state, oracle):
        if self.step_sleep_s:
            time.sleep(self.step_sleep_s)
        return params - self.lr * oracle.grad(params), state + 1


class Faulty(GD):
    """GD that, at step ``at``, does what ``fault`` says."""

    def __init__(self, *, lr: float, fault: str, at: int) -> None:
        super().__init__(lr=lr)
        self.fault = fault
        self.at = at

    def step(self, params, state, oracle):
        if state + 1 == self.at:
            getattr(self, "_" + self.fault.replace("-", "_"))()
            if self.fault == "nan":
                return params * float("nan"), state + 1
        return super().step(params, state, oracle)

    def _raise(self) -> None:
        raise RuntimeError(f"injected failure at step {self.at}")

    def _nan(self) -> None:
        pass

    def _hang(self) -> None:
        while True:
            time.sleep(3600)

    def _exit(self) -> None:
        os._exit(3)

    def _signal(self) -> None:
        os.kill(os.getpid(), signal.SIGSEGV)
        time.sleep(60)

    def _alloc(self) -> None:
        hoard = []
        while True:
            hoard.append(bytearray(64 * 2**20))  # zero-filled: resident, not only reserved

    def _report(self) -> None:
        """Fail with the process's thread settings as the error text, for the tests to read."""
        import json

        import torch

        settings = {name: os.environ.get(name) for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "XLA_FLAGS")}
        settings |= {"torch_threads": torch.get_num_threads(), "cpus": sorted(os.sched_getaffinity(0))}
        raise RuntimeError("REPORT " + json.dumps(settings))

    def _torch_alloc(self) -> None:
        import torch

        hoard = []
        while True:
            hoard.append(torch.ones(8 * 2**20, dtype=torch.float64))
