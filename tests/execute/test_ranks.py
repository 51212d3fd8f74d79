"""Multi-rank runs: 2 gloo ranks of a sharded finite-sum task give the 1-process trace."""

from __future__ import annotations

from types import MappingProxyType

import numpy as np
import pytest
from _execute_helpers import runs_of

from harness.execute import execute
from harness.execute.pool import PoolExecutor
from harness.execute.ranks import ShardedOracle, TorchCollective
from harness.host import hardware_unavailable
from harness.run import execute_run

METRICS = ("objective", "suboptimality")


def assert_same_trace(one, two, *, rtol=1e-6):
    assert [p["step"] for p in one.trace] == [p["step"] for p in two.trace]
    assert [p["oracle_calls"] for p in one.trace] == [p["oracle_calls"] for p in two.trace]
    for metric in METRICS:
        a = np.array([p[metric] for p in one.trace])
        b = np.array([p[metric] for p in two.trace])
        np.testing.assert_allclose(b, a, rtol=rtol, atol=0)


def test_two_gloo_ranks_of_a_data_parallel_task_give_the_one_process_trace(catalog):
    (solo_run,) = runs_of(catalog, hardware="cpu")
    (ranks_run,) = runs_of(catalog, hardware="cpu-ranks")
    profile = catalog.hardware["cpu-ranks"].spec
    assert profile.ranks == 2 and hardware_unavailable(profile) is None
    solo = execute_run(solo_run, catalog)
    ranks = execute(ranks_run, catalog)  # starts 2 rank processes: rank 0's row and trace come back
    assert solo.status == ranks.status == "completed", ranks.row["error"]
    assert_same_trace(solo, ranks)
    assert ranks.row["steps"] == solo.row["steps"] == 20
    assert ranks.row["calls_grad"] == solo.row["calls_grad"] == 20  # per rank: what one process calls
    # The clock is the slowest rank's, and it includes the all-reduce of every gradient.
    assert ranks.row["timed_s"] == pytest.approx(ranks.trace[-1]["time_s"])
    assert ranks.row["timed_s"] > 0


def test_multi_rank_runs_go_through_the_pool_and_a_failing_rank_ends_its_run(source, catalog):
    runs = runs_of(catalog, hardware="cpu-ranks", seeds=(1,)) + runs_of(catalog, methods=("fault-raise",),
                                                                         hardware="cpu-ranks")
    pooled, raised = PoolExecutor(source, jobs=1).map(runs)
    (solo_run,) = runs_of(catalog, hardware="cpu", seeds=(1,))
    assert pooled.status == "completed", pooled.row["error"]
    assert_same_trace(execute_run(solo_run, catalog), pooled)
    assert raised.status == "error"
    assert raised.row["error"].startswith("rank ") and "RuntimeError: injected failure at step 3" in raised.row["error"]


class _Sum:
    """A one-rank stand-in for torch.distributed: reduce_sum over 2 'ranks' holding the same shard."""

    def reduce_sum(self, value, weight):
        return TorchCollective.reduce_sum(self, value, weight)


def test_sharded_oracle_reduces_sums_and_passes_the_rest_through():
    import torch

    class Inner:
        capabilities = frozenset({"value_and_grad", "graph"})
        counts = MappingProxyType({"value_and_grad": 1})

        def value_and_grad(self, x):
            return torch.tensor(2.0, dtype=torch.float64), 3 * x

        def graph(self):
            return "ring"

        def uncounted(self):
            return self

    fake = _Sum()
    fake.torch, fake.device = torch, torch.device("cpu")

    class _Dist:
        class ReduceOp:
            SUM = "sum"

        @staticmethod
        def all_reduce(tensor, op):
            tensor.mul_(2)  # two ranks, each with this very shard

    fake.dist = _Dist
    oracle = ShardedOracle(Inner(), fake, weight=0.5)
    value, grad = oracle.value_and_grad(torch.ones(3, dtype=torch.float64))
    assert float(value) == 2.0 and torch.equal(grad, torch.full((3,), 3.0, dtype=torch.float64))
    assert oracle.graph() == "ring" and oracle.counts == {"value_and_grad": 1}
    assert isinstance(oracle.uncounted(), ShardedOracle)
