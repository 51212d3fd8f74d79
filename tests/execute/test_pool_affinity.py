"""The pool's choice of the next run (``harness.execute.pool._pick``): a framework stays with its workers."""

from __future__ import annotations

import collections
from types import SimpleNamespace

from harness.execute.pool import _pick


class FakeWorker:
    def __init__(self, *frameworks: str, alive: bool = True) -> None:
        self.frameworks = set(frameworks)
        self._alive = alive

    def alive(self) -> bool:
        return self._alive


def plan(*frameworks: str):
    return [SimpleNamespace(run_id=f"r{i}", framework=f) for i, f in enumerate(frameworks)]


def test_a_worker_takes_the_next_run_of_its_framework_within_the_lookahead() -> None:
    runs = plan("torch", "torch", "jax", "jax", "torch")
    queue, pending = collections.deque(), iter(runs)
    jax_worker = FakeWorker("jax")
    assert _pick(queue, pending, jax_worker, [jax_worker], lookahead=8).run_id == "r2"
    assert [r.run_id for r in queue] == ["r0", "r1"]  # pulled, kept in order for the others
    torch_worker = FakeWorker("torch")
    assert _pick(queue, pending, torch_worker, [jax_worker, torch_worker], lookahead=8).run_id == "r0"


def test_a_fresh_worker_prefers_a_framework_no_other_worker_started() -> None:
    runs = plan("torch", "torch", "torch", "jax")
    queue, pending = collections.deque(), iter(runs)
    busy = FakeWorker("torch")
    assert _pick(queue, pending, None, [busy, None], lookahead=8).run_id == "r3"
    dead = FakeWorker("jax", alive=False)  # a dead worker's frameworks count for nobody
    assert _pick(queue, pending, None, [busy, dead], lookahead=8).run_id == "r0"


def test_without_a_preferred_run_the_oldest_goes_and_nothing_is_pulled_past_the_lookahead() -> None:
    runs = plan("torch", "torch", "torch", "jax")
    queue, pending = collections.deque(), iter(runs)
    jax_worker = FakeWorker("jax")
    assert _pick(queue, pending, jax_worker, [jax_worker], lookahead=2).run_id == "r0"
    assert [r.run_id for r in queue] == ["r1"] and next(pending).run_id == "r2"  # r2 not pulled
    assert _pick(collections.deque(), iter([]), jax_worker, [jax_worker], lookahead=2) is None


def test_one_job_keeps_the_plan_order() -> None:
    runs = plan("torch", "jax", "torch")
    queue, pending = collections.deque(), iter(runs)
    worker = FakeWorker("torch")
    order = [_pick(queue, pending, worker, [worker], lookahead=1).run_id for _ in runs]
    assert order == ["r0", "r1", "r2"]
