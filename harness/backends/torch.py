"""The torch backend: placement, seeding, synchronization, memory, autograd oracle, torch.optim."""

from __future__ import annotations

import copy
import importlib
import sys
from typing import Any

import numpy as np
import torch

from harness.backends import MemoryPeak
from harness.oracle import CountingOracle, layout_blocks, own_blocks
from harness.program import EagerProgram
from harness.sealed import OracleFacts

__all__ = ["Backend", "TorchOptimMethod", "TorchOracle"]

_PER_EXAMPLE_CHUNK = 512


def _values_and_jacobian(terms: Any, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A vector function's values ``(m,)`` and Jacobian ``(m, dim)``: one forward pass, reverse mode per row."""
    from torch.func import jacrev

    def twice(q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = terms(q)
        return out, out  # the values ride along as the auxiliary output

    jac, values = jacrev(twice, has_aux=True)(params.detach())
    return values.detach(), jac.detach()


class TorchOracle(CountingOracle):
    """Derivatives by torch.autograd on ``problem.loss``; the problem's closed forms without autograd."""

    def _closed_form(self, hook: Any) -> Any:
        """``hook`` under ``torch.no_grad()`` on detached tensors: a closed form records no graph."""

        def closed(*args: Any) -> Any:
            with torch.no_grad():
                return hook(*(a.detach() if isinstance(a, torch.Tensor) else a for a in args))

        return closed

    def _value(self, params: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.problem.loss(params)

    def _values(self, points: torch.Tensor) -> torch.Tensor:
        from torch.func import vmap

        with torch.no_grad():
            return vmap(self.problem.loss)(points.detach())

    def _value_and_grad(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.enable_grad():
            x = params.detach().requires_grad_(True)
            value = self.problem.loss(x)
            (grad,) = torch.autograd.grad(value, x)
        return value.detach(), grad

    def _grad(self, params: torch.Tensor) -> torch.Tensor:
        return self._value_and_grad(params)[1]

    def _hvp(self, params: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            x = params.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.problem.loss(x), x, create_graph=True)
            (hv,) = torch.autograd.grad(grad, x, grad_outputs=vector)
        return hv.detach()

    def _hessian(self, params: torch.Tensor) -> torch.Tensor:
        return torch.autograd.functional.hessian(self.problem.loss, params.detach())

    # Finite-sum and logit structure (see harness.oracle): torch.func transforms of the hooks.

    def _indices(self, indices: np.ndarray, like: torch.Tensor) -> torch.Tensor:
        """The sampler's numpy indices as a ``torch.long`` tensor on the device of ``like``."""
        return torch.as_tensor(indices, dtype=torch.long, device=like.device)

    def _batch_value_and_grad(self, params: torch.Tensor, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        index = self._indices(indices, params)
        with torch.enable_grad():
            x = params.detach().requires_grad_(True)
            value = self.problem.loss(x, index)
            (grad,) = torch.autograd.grad(value, x)
        return value.detach(), grad

    def _per_example_grads(self, params: torch.Tensor, indices: np.ndarray) -> torch.Tensor:
        from torch.func import grad, vmap

        loss = self.problem.loss
        one = vmap(grad(lambda p, i: loss(p, i.unsqueeze(0))), in_dims=(None, 0))
        index = self._indices(indices, params)
        x = params.detach()
        # Chunks bound the memory of the vmapped graph on large data sets.
        return torch.cat([one(x, chunk) for chunk in index.split(_PER_EXAMPLE_CHUNK)]) if len(index) else x[None, :0]

    def _jvp_logits(
        self, params: torch.Tensor, vector: torch.Tensor, indices: np.ndarray | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        from torch.func import jvp

        index = None if indices is None else self._indices(indices, params)
        logits, tangent = jvp(lambda p: self.problem.logits(p, index), (params.detach(),), (vector.detach(),))
        return logits.detach(), tangent.detach()

    def _task_grads(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _values_and_jacobian(self.problem.task_losses, params)

    def _bilevel_grads(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _values_and_jacobian(self.problem.bilevel_terms, params)

    def _node_grads(self, params: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            x = params.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.problem.node_losses(x).sum(), x)  # separable: block i is grad f_i
        return grad

    def _client_loss_grad(self, params: torch.Tensor, perturbations: torch.Tensor, argument: int) -> torch.Tensor:
        with torch.enable_grad():
            inputs = [params.detach().requires_grad_(argument == 0), perturbations.detach().requires_grad_(argument == 1)]
            (grad,) = torch.autograd.grad(self.problem.client_losses(*inputs).sum(), inputs[argument])
        return grad  # separable: client k's losses depend on its own copy and its own examples only

    def _client_grads(self, params: torch.Tensor, perturbations: torch.Tensor) -> torch.Tensor:
        return self._client_loss_grad(params, perturbations, 0)

    def _perturbation_grads(self, params: torch.Tensor, perturbations: torch.Tensor) -> torch.Tensor:
        return self._client_loss_grad(params, perturbations, 1)

    def _log_policy(self, x: torch.Tensor, prompts: np.ndarray, answers: np.ndarray) -> torch.Tensor:
        log_pi = torch.log_softmax(self.problem.policy_logits(x), dim=-1)
        return log_pi[self._indices(prompts, x), self._indices(answers, x)]

    def _logprobs(self, params: torch.Tensor, prompts: np.ndarray, answers: np.ndarray) -> torch.Tensor:
        with torch.no_grad():
            return self._log_policy(params.detach(), prompts, answers)

    def _policy_grad(self, params: torch.Tensor, prompts: np.ndarray, answers: np.ndarray,
                     weights: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            x = params.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad((weights.detach() * self._log_policy(x, prompts, answers)).sum(), x)
        return grad

    def _player_grads(self, params: torch.Tensor) -> torch.Tensor:
        from torch.func import jacrev

        jac = jacrev(self.problem.player_losses)(params.detach())
        return own_blocks(jac, layout_blocks(self.problem.layout), torch.cat).detach()

    def _regularizer_hessian(self, params: torch.Tensor) -> torch.Tensor:
        return torch.autograd.functional.hessian(self.problem.regularizer, params.detach())

    def _gauss_newton(self, params: torch.Tensor) -> torch.Tensor:
        from torch.func import jacfwd

        x = params.detach()
        logits = self.problem.logits(x)
        # Forward mode: one pass per parameter, fewer than the n C logits of a dense-curvature task.
        jac = jacfwd(lambda p: self.problem.logits(p))(x)  # (n, C, dim)
        lam_jac = torch.einsum("nce,nef->ncf", self.problem.logit_hessian(logits), jac)
        n, classes, dim = jac.shape
        gn = jac.reshape(n * classes, dim).T @ lam_jac.reshape(n * classes, dim) / n
        return gn + self._regularizer_hessian(x)

    def _fisher(self, params: torch.Tensor) -> torch.Tensor:
        x = params.detach()
        with torch.enable_grad():
            leaf = x.clone().requires_grad_(True)
            (reg_grad,) = torch.autograd.grad(self.problem.regularizer(leaf), leaf)
        grads = self._per_example_grads(x, np.arange(self.problem.n_samples)) - reg_grad
        return grads.T @ grads / grads.shape[0] + self._regularizer_hessian(x)


class TorchOptimMethod:
    """Any ``torch.optim`` optimizer as a :class:`harness.api.Method`.

    The state holds the optimizer and its parameter leaf; ``LBFGS`` gets a closure that
    evaluates through the oracle, so its line-search calls are counted too.
    """

    def __init__(self, optimizer: type[torch.optim.Optimizer], kwargs: dict[str, Any]) -> None:
        self.optimizer = optimizer
        self.kwargs = kwargs

    def init(self, params: torch.Tensor, oracle: Any) -> tuple[torch.Tensor, torch.optim.Optimizer]:
        leaf = params.detach().clone().requires_grad_(True)
        return _OptimState(leaf, self.optimizer([leaf], **self.kwargs), self.kwargs)

    def step(self, params: torch.Tensor, state: Any, oracle: Any) -> tuple[torch.Tensor, Any]:
        leaf, opt = state
        with torch.no_grad():
            leaf.copy_(params)  # params may come from elsewhere (a restart, a projection)

        def closure() -> torch.Tensor:
            value, grad = oracle.value_and_grad(leaf.detach())
            leaf.grad = grad
            return value

        if isinstance(opt, torch.optim.LBFGS):
            opt.step(closure)
        else:
            leaf.grad = oracle.grad(leaf.detach())
            opt.step()
        return leaf.detach().clone(), state


class _OptimState(tuple):
    """``(leaf, optimizer)``: a deep copy is a new optimizer over a copied leaf, with the optimizer's state.

    ``copy.deepcopy`` of a torch optimizer goes through ``Optimizer.__getstate__``, which keeps
    only defaults, state and param groups: a copied ``LBFGS`` loses ``_params`` and fails at its
    next step. A state must survive a copy (the method contract test checks it), so the copy is
    built as :meth:`TorchOptimMethod.init` built the original, then given its state.
    """

    def __new__(cls, leaf: torch.Tensor, optimizer: torch.optim.Optimizer, kwargs: dict[str, Any]) -> _OptimState:
        state = super().__new__(cls, (leaf, optimizer))
        state.kwargs = kwargs
        return state

    def __deepcopy__(self, memo: dict[int, Any]) -> _OptimState:
        leaf, optimizer = self
        copied = leaf.detach().clone().requires_grad_(True)
        rebuilt = type(optimizer)([copied], **self.kwargs)
        rebuilt.load_state_dict(copy.deepcopy(optimizer.state_dict(), memo))
        return _OptimState(copied, rebuilt, self.kwargs)


class Backend:
    """torch on one device, in one dtype."""

    name = "torch"

    def __init__(self, *, device: str = "cpu", dtype: str = "float64", threads: int | None = None) -> None:
        self.device = device
        self.dtype = dtype
        self._torch_dtype = getattr(torch, dtype)
        self._device = torch.device(device)
        if threads is not None:
            torch.set_num_threads(threads)
        self.run_seed = 0
        if self._device.type == "cuda":
            self._memory = MemoryPeak(current=lambda: torch.cuda.memory_allocated(self._device),
                                      high=lambda: torch.cuda.max_memory_allocated(self._device),
                                      reset=lambda: torch.cuda.reset_peak_memory_stats(self._device))
        else:
            self._memory = MemoryPeak()

    def seed(self, seed: int) -> None:
        torch.manual_seed(seed)
        self.run_seed = int(seed)  # the oracle's minibatch sampler starts from it

    def synchronize(self, *values: Any) -> None:
        if self._device.type == "cuda":
            torch.cuda.synchronize(self._device)

    def asarray(self, value: Any) -> torch.Tensor:
        array = np.asarray(value)
        if not array.flags.writeable:  # torch cannot alias a read-only buffer: copy it
            array = array.copy()
        return torch.as_tensor(array, dtype=self._torch_dtype, device=self._device)

    def asarray_int(self, value: Any) -> torch.Tensor:
        """Integer indices as a ``torch.long`` tensor on the run's device (a problem's index data)."""
        return torch.as_tensor(np.array(value), dtype=torch.long, device=self._device)

    def to_numpy(self, value: torch.Tensor) -> np.ndarray:
        return value.detach().cpu().numpy()

    def reset_peak_memory(self) -> None:
        self._memory.reset()

    def peak_memory_bytes(self) -> int | None:
        return self._memory.peak()

    def baseline_memory_bytes(self) -> int | None:
        return self._memory.baseline

    def make_oracle(self, problem: Any, *, capabilities: frozenset[str], max_calls: int | None = None) -> TorchOracle:
        return TorchOracle(problem, capabilities=capabilities, max_calls=max_calls, seed=self.run_seed)

    def make_program(self, method: Any, oracle: Any, facts: OracleFacts, *, pure: bool,
                     needs: frozenset[str], reuse_key: str | None = None) -> EagerProgram:
        """torch runs eagerly (nothing to reuse); a warm-up step against the decoy precedes the clock."""
        return EagerProgram(method, oracle, facts, self)

    def compile_counter(self) -> tuple[int, float]:
        """Graphs compiled by ``torch.compile`` (TorchDynamo) so far in this process, and their seconds."""
        if "torch._dynamo" not in sys.modules:  # nothing imported it: nothing was compiled
            return 0, 0.0
        from torch._dynamo import utils

        seconds = sum(utils.compilation_time_metrics.get("_compile.compile_inner", ()))
        return int(utils.counters["stats"]["unique_graphs"]), float(seconds)

    def library_method(self, optimizer: str, kwargs: dict[str, Any]) -> TorchOptimMethod:
        module, _, attr = optimizer.rpartition(".")
        cls = getattr(importlib.import_module(module), attr, None)
        if cls is None or not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
            raise ValueError(f"{optimizer!r} is not a torch.optim optimizer")
        return TorchOptimMethod(cls, kwargs)
