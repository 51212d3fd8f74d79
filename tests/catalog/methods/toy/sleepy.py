"""Gradient descent that sleeps in ``init``, in each step and in its ``output`` hook: all on the clock."""

from __future__ import annotations

import time


class SleepyGD:
    def __init__(self, *, lr: float, sleep_s: float, step_sleep_s: float, init_sleep_s: float = 0.0) -> None:
        self.lr = lr
        self.sleep_s = sleep_s
        self.step_sleep_s = step_sleep_s
        self.init_sleep_s = init_sleep_s

    def init(self, params, oracle):
        if not oracle.warmup:  # the warm-up against the decoy is not the run
            time.sleep(self.init_sleep_s)
        return None

    def step(self, params, state, oracle):
        if not oracle.warmup:
            time.sleep(self.step_sleep_s)
        return params - self.lr * oracle.grad(params), state

    def output(self, params, state):
        time.sleep(self.sleep_s)
        return params
