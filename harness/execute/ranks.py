"""Multi-rank runs: one run as N torch.distributed processes (NCCL on GPUs, gloo on CPUs).

A hardware profile with ``ranks: N`` runs each of its runs as N rank processes on one host,
joined over ``tcp://127.0.0.1:PORT``; :func:`execute_ranks` starts them, watches them and
returns rank 0's row and trace. Every rank runs the run loop (:func:`harness.run.execute_run`,
:func:`harness.loop.run_loop`) with a :class:`TorchCollective`, which

- shards the problem: a problem with a ``shard(rank, world_size) -> (local_problem, weight)``
  hook is replaced on each rank by its local part, and every oracle call that returns a sum
  over the data (``value``, ``grad``, ``value_and_grad``, ``hvp``, ``hessian``,
  ``stochastic_grad``, ``node_grads``, ...) becomes ``sum over ranks of weight_r x local_r``
  through one all-reduce. Two modes share this one rule:

  * data-parallel (finite sums): rank ``r`` holds ``n_r`` of the ``n`` samples, its local
    objective is the mean over them and ``weight = n_r / n``, so the all-reduced gradient is
    the full-batch gradient (and a local minibatch gradient averages to an unbiased one);
  * per-node (decentralized): rank ``r`` holds some of the graph's nodes, its local problem
    returns their rows of ``node_grads`` and zeros elsewhere with ``weight = 1``, so the
    all-reduce assembles every node's gradient on every rank; the method's gossip (mixing
    with the graph's matrix) then acts on the replicated node states. Federated clients are
    spread the same way: ``client_grads``, ``perturbation_grads`` and the server's ``aggregate``
    answer on a rank's own clients, the all-reduce assembles every client.

  A problem without the hook runs replicated: every rank computes everything, the results
  are those of one process. Calls that are not sums (``per_example_grads``, ``jvp_logits``,
  ``graph``, ...) answer from the rank's shard, unreduced. A stochastic problem's shard sets
  its own ``batch_size`` (the per-rank batch); the ranks' oracles then draw their
  minibatches from their own rows;
- keeps the loop in lockstep: rank 0 alone evaluates (on the whole problem), decides stops
  and broadcasts them (:meth:`TorchCollective.decide`); the time budget is checked on the
  slowest rank's clock;
- reports the slowest rank's clocks (all-reduce max), as AlgoPerf does.
"""

from __future__ import annotations

import argparse
import datetime as dt
import faulthandler
import functools
import os
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any, TypeVar

from harness.catalog import Catalog
from harness.execute import failed_result
from harness.execute.worker import (
    CatalogSource,
    default_grace,
    die_with_parent,
    memory_limit,
    preload,
    start_process,
    thread_env,
)
from harness.host import RANK_STARTUP_S, hardware_unavailable
from harness.loop import LOCAL_FAILURES
from harness.plan import RunSpec
from harness.record import Status
from harness.run import RunResult, execute_run

__all__ = ["REDUCED_CALLS", "ShardedOracle", "TorchCollective", "execute_ranks", "free_port"]

#: Oracle calls whose result is a (weighted) sum over the data: all-reduced over the ranks.
REDUCED_CALLS = frozenset(
    {"value", "values", "grad", "value_and_grad", "hvp", "hessian", "stochastic_grad", "node_grads", "task_grads",
     "player_grads", "matvec", "gossip", "client_grads", "perturbation_grads", "aggregate"}
)

T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TorchCollective:
    """The :class:`harness.loop.Collective` of one rank, over the default torch.distributed group."""

    #: Oracle calls are all-reduces, which a compiled program cannot hold: methods run eagerly.
    traceable = False

    def __init__(self, *, rank: int, world_size: int, device: Any) -> None:
        import torch
        import torch.distributed as dist

        self.torch, self.dist = torch, dist
        self.rank = rank
        self.world_size = world_size
        self.device = device  # where collectives' tensors live: the GPU for NCCL, else the CPU

    def max(self, values: list[float]) -> list[float]:
        tensor = self.torch.tensor(values, dtype=self.torch.float64, device=self.device)
        self.dist.all_reduce(tensor, op=self.dist.ReduceOp.MAX)
        return tensor.tolist()

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` (a picklable object), on every rank."""
        box = [value]
        self.dist.broadcast_object_list(box, src=0, device=self.device)
        return box[0]

    def decide(self, call: Callable[[], T]) -> T:
        """Rank 0 calls ``call``; every rank gets its value (a rank-0 exception leaves the others waiting)."""
        return self.broadcast(call() if self.rank == 0 else None)

    def make_oracle(self, problem: Any, backend: Any, **options: Any) -> Any:
        shard = getattr(problem, "shard", None)
        if not callable(shard):
            return backend.make_oracle(problem, **options)
        local, weight = shard(self.rank, self.world_size)
        return ShardedOracle(backend.make_oracle(local, **options), self, float(weight))

    def reduce_sum(self, value: Any, weight: float) -> Any:
        """``sum over ranks of weight x value``, in one all-reduce.

        ``value`` is a framework array, a number, or a tuple or list of them.
        """
        torch = self.torch
        leaves: list[Any] = []
        structure = _flatten(value, leaves)
        parts = [_as_tensor(torch, leaf).to(self.device, torch.float64).reshape(-1) * weight for leaf in leaves]
        flat = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64, device=self.device)
        self.dist.all_reduce(flat, op=self.dist.ReduceOp.SUM)
        out, offset = [], 0
        for leaf, part in zip(leaves, parts):
            out.append(_like(torch, flat[offset:offset + part.numel()], leaf))
            offset += part.numel()
        return _unflatten(structure, iter(out))


class ShardedOracle:
    """An oracle over a rank's shard whose summed calls are all-reduced with the shard's weight.

    Counts are the local oracle's: every rank makes the calls one process would make.
    """

    def __init__(self, inner: Any, collective: TorchCollective, weight: float) -> None:
        self.inner = inner
        self.collective = collective
        self.weight = weight

    @property
    def capabilities(self) -> frozenset[str]:
        return self.inner.capabilities

    @property
    def counts(self) -> Any:
        return self.inner.counts

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name in REDUCED_CALLS and callable(attr):
            return functools.partial(self._reduced, attr)
        return attr

    def _reduced(self, call: Any, *args: Any, **kwargs: Any) -> Any:
        return self.collective.reduce_sum(call(*args, **kwargs), self.weight)

    def uncounted(self) -> ShardedOracle:
        return ShardedOracle(self.inner.uncounted(), self.collective, self.weight)


def _flatten(value: Any, leaves: list[Any]) -> Any:
    if isinstance(value, (tuple, list)):
        return type(value), [_flatten(v, leaves) for v in value]
    leaves.append(value)
    return None


def _unflatten(structure: Any, leaves: Any) -> Any:
    if structure is None:
        return next(leaves)
    kind, children = structure
    return kind(_unflatten(c, leaves) for c in children)


def _as_tensor(torch: Any, leaf: Any) -> Any:
    if isinstance(leaf, torch.Tensor):
        return leaf.detach()
    import numpy as np

    return torch.from_numpy(np.array(leaf, dtype=np.float64))  # a copy: jax arrays are read-only


def _like(torch: Any, flat: Any, leaf: Any) -> Any:
    """``flat`` shaped and typed as ``leaf`` (a torch tensor, jax or numpy array, or number)."""
    if isinstance(leaf, torch.Tensor):
        return flat.reshape(leaf.shape).to(leaf.dtype)
    if isinstance(leaf, (int, float)):
        return float(flat.item())
    array = flat.cpu().numpy()
    if type(leaf).__module__.startswith(("jax", "jaxlib")):
        import jax.numpy as jnp

        return jnp.asarray(array.reshape(leaf.shape), dtype=leaf.dtype)
    import numpy as np

    return np.asarray(array.reshape(np.shape(leaf)), dtype=getattr(leaf, "dtype", None))


# -- the launcher -------------------------------------------------------------------------------


def execute_ranks(run: RunSpec, catalog: Catalog, *, grace_s: float | None = None) -> RunResult:
    """Execute a multi-rank ``run`` as ``ranks`` processes on this host; rank 0's result comes back.

    A rank that fails ends the run with its error (every other rank is killed); a run still
    going at ``budget.seconds`` plus ``grace_s`` after its ranks joined is killed (``timeout``).
    """
    profile = catalog.hardware[run.hardware].spec
    reason = hardware_unavailable(profile)
    if reason is None and run.framework != "torch" and profile.dist_backend == "nccl":
        reason = f"{run.framework} runs cannot use NCCL ranks (collectives run on torch tensors)"
    if reason is not None:
        return failed_result(run, catalog, status=Status.SKIPPED, error=reason)
    started, started_at = time.monotonic(), dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
    grace = grace_s if grace_s is not None else default_grace(run.budget.seconds)
    source = CatalogSource.for_run(catalog, run)
    port = free_port()
    env = dict(os.environ)
    env.update(thread_env(profile.threads))
    ranks = []
    try:
        for rank in range(profile.ranks):
            ranks.append(_Rank(rank, env))
            ranks[-1].conn.send((run.model_dump(mode="json"), source, rank, profile.ranks, port,
                                 RANK_STARTUP_S + run.budget.seconds + grace))
        return _watch(run, catalog, ranks, started, started_at, grace)
    finally:
        for rank_process in ranks:
            rank_process.close()


def _watch(run: RunSpec, catalog: Catalog, ranks: list[_Rank], started: float, started_at: str,
           grace: float) -> RunResult:
    def failed(status: Status, error: str) -> RunResult:
        return failed_result(run, catalog, status=status, error=error, wall_s=time.monotonic() - started,
                             started_at=started_at)

    deadline = started + RANK_STARTUP_S
    ready: set[int] = set()
    results: dict[int, RunResult] = {}
    while len(results) < len(ranks):
        waiting = [r for r in ranks if r.rank not in results]
        timeout = max(0.0, deadline - time.monotonic())
        readable = wait([r.conn for r in waiting], timeout=timeout)
        if not readable and time.monotonic() >= deadline:
            if len(ready) < len(ranks):
                return failed(Status.ERROR, f"the ranks did not join within {RANK_STARTUP_S:.0f} s "
                                       f"({len(ready)} of {len(ranks)} did)")
            return failed(Status.TIMEOUT, f"killed at the wall-clock limit: time budget {run.budget.seconds:g} s plus "
                                     f"{grace:g} s grace, without the ranks returning")
        for rank_process in waiting:
            if rank_process.conn not in readable:
                continue
            try:
                message = rank_process.conn.recv()
            except (EOFError, OSError):
                return failed(Status.ERROR, f"rank {rank_process.rank} {rank_process.how_it_ended()} during the run")
            if message[0] == "ready":
                ready.add(rank_process.rank)
                if len(ready) == len(ranks):
                    deadline = time.monotonic() + run.budget.seconds + grace
            elif message[0] == "failed":
                return failed(Status.ERROR, f"rank {rank_process.rank} could not start:\n{message[1]}")
            else:
                result = RunResult(row=message[1], trace=message[2])
                if result.status in LOCAL_FAILURES:
                    # The other ranks wait in a collective that will never complete: stop here.
                    result.row["error"] = f"rank {rank_process.rank}: {result.row['error']}"
                    return result
                results[rank_process.rank] = result
    return results[0]


class _Rank:
    """One rank process, started fresh (``python -m harness.execute.ranks``), in our process group."""

    def __init__(self, rank: int, env: dict[str, str]) -> None:
        self.rank = rank
        self.popen, self.conn = start_process("harness.execute.ranks", env=env)

    def how_it_ended(self) -> str:
        try:
            code = self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            return "closed its connection"
        if code < 0:
            import signal

            try:
                return f"was killed by signal {signal.Signals(-code).name} ({-code})"
            except ValueError:
                return f"was killed by signal {-code}"
        return f"exited with code {code}"

    def close(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        try:
            self.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        self.conn.close()


def _rank_main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m harness.execute.ranks")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--parent", type=int, default=None)
    args = parser.parse_args(argv)
    die_with_parent(args.parent)
    faulthandler.enable()
    conn = Connection(args.fd)
    run_dict, source, rank, world_size, port, timeout_s = conn.recv()
    try:
        run = RunSpec.model_validate(run_dict)
        catalog = source.load()
        profile = catalog.hardware[run.hardware].spec
        preload(run.framework, threads=profile.threads)
        import torch
        import torch.distributed as dist

        device = torch.device("cpu")
        if profile.device == "cuda":
            torch.cuda.set_device(rank)
            device = torch.device("cuda", rank)
        dist.init_process_group(
            profile.dist_backend or "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
            world_size=world_size, timeout=dt.timedelta(seconds=timeout_s),
        )
    except Exception:  # noqa: BLE001 - reported to the launcher
        import traceback

        conn.send(("failed", traceback.format_exc()))
        return
    conn.send(("ready",))
    collective = TorchCollective(rank=rank, world_size=world_size, device=device)
    with memory_limit(profile.memory_limit_mb, device=profile.device):
        result = execute_run(run, catalog, comm=collective)
    conn.send(("result", result.row, result.trace))
    if result.status not in LOCAL_FAILURES:  # the others are stuck in a collective: no goodbye
        dist.destroy_process_group()


if __name__ == "__main__":
    _rank_main()
