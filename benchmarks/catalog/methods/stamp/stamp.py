"""Gradient descent whose first step records the wall-clock time (for benchmarks/overhead.py)."""

from __future__ import annotations

import os
import time


class StampGD:
    def __init__(self, *, lr: float) -> None:
        self.lr = lr
        self.stamped = False

    def init(self, params, oracle):
        return None

    def step(self, params, state, oracle):
        if not self.stamped:
            self.stamped = True
            path = os.environ.get("HARNESS_STAMP")
            if path:
                with open(path, "a") as handle:
                    handle.write(f"{time.time()}\n")
        return params - self.lr * oracle.grad(params), state
