"""Gradient descent that sleeps: in its ``output`` hook (evaluation, untimed) and in its step (timed)."""

from __future__ import annotations

import time


class SleepyGD:
    def __init__(self, *, lr: float, sleep_s: float, step_sleep_s: float) -> None:
        self.lr = lr
        self.sleep_s = sleep_s
        self.step_sleep_s = step_sleep_s

    def init(self, params, oracle):
        return None

    def step(self, params, state, oracle):
        time.sleep(self.step_sleep_s)
        return params - self.lr * oracle.grad(params), state

    def output(self, params, state):
        time.sleep(self.sleep_s)
        return params
