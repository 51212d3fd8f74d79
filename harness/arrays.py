"""Array helpers that let task and method modules write their code once for numpy, torch and jax.

The framework is read off an array's type, so these run inside ``jax.jit`` (on tracers) and
under torch's autograd alike; a numpy array takes the numpy/scipy path, so one formula (a
closed-form Hessian, say) serves a task's scipy reference and its oracle. torch, jax and
scipy are imported inside the functions, never here.

Examples
--------
>>> import torch  # doctest: +SKIP
>>> namespace(torch.zeros(3)).__name__  # doctest: +SKIP
'torch'
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "block_shard",
    "einsum",
    "eye",
    "immutable",
    "is_numpy",
    "is_torch",
    "like",
    "namespace",
    "noise_key",
    "normal_init",
    "softmax",
    "standard_normal",
    "take",
    "to_float64",
    "to_host",
]


def immutable(array: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of ``array`` whose memory cannot be written, not even after ``setflags``.

    Cached data are shared by every run of a worker process: a read-only flag alone can be
    flipped back (``setflags(write=True)``) by a method that reaches the array, and the data of
    the next runs poisoned. Memory owned by an immutable ``bytes`` object refuses that flag.

    Examples
    --------
    >>> x = immutable(np.arange(3.0))
    >>> x.setflags(write=True)
    Traceback (most recent call last):
    ...
    ValueError: cannot set WRITEABLE flag to True of this array
    """
    root = array
    while isinstance(root, np.ndarray) and root.base is not None:
        root = root.base
    if isinstance(root, bytes) and array.flags.c_contiguous:
        return array  # immutable already: keep it (and its identity, for caches that share it)
    array = np.ascontiguousarray(array)
    return np.frombuffer(array.tobytes(), dtype=array.dtype).reshape(array.shape)


def is_torch(x: Any) -> bool:
    """Whether ``x`` is a torch tensor (anything else is taken for a jax array)."""
    return type(x).__module__.startswith("torch")


def is_numpy(x: Any) -> bool:
    """Whether ``x`` is a numpy array or scalar (the reference's arrays, never a framework's)."""
    return isinstance(x, (np.ndarray, np.generic))


def namespace(x: Any) -> Any:
    """The array namespace of ``x``: ``numpy`` for a numpy array, ``torch`` for a tensor, ``jax.numpy`` otherwise."""
    if is_numpy(x):
        return np
    if is_torch(x):
        import torch

        return torch
    import jax.numpy as jnp

    return jnp


def eye(n: int, *, like: Any) -> Any:
    """The ``n x n`` identity in the namespace, dtype (and device) of the array ``like``."""
    if is_numpy(like):
        return np.eye(n, dtype=like.dtype)
    if is_torch(like):
        import torch

        return torch.eye(n, dtype=like.dtype, device=like.device)
    import jax.numpy as jnp

    return jnp.eye(n, dtype=like.dtype)


def einsum(subscripts: str, *operands: Any) -> Any:
    """``einsum`` in the namespace of the first operand (numpy: with the optimized contraction order)."""
    if is_numpy(operands[0]):
        return np.einsum(subscripts, *operands, optimize=True)
    return namespace(operands[0]).einsum(subscripts, *operands)


def like(values: np.ndarray, params: Any) -> Any:
    """``values`` as an array of the framework, dtype and device of ``params`` (numpy stays numpy)."""
    if is_numpy(params):
        return np.asarray(values, dtype=params.dtype)
    if is_torch(params):
        import torch

        return torch.as_tensor(values, dtype=params.dtype, device=params.device)
    import jax
    import jax.numpy as jnp

    array = jnp.asarray(values, dtype=params.dtype)
    if isinstance(params, jax.core.Tracer):
        return array  # a constant of the traced computation
    # Committed to params' device: an uncommitted array is another argument signature to jit,
    # so a jitted oracle call compiled on the run's arrays would compile again (on the clock).
    return jax.device_put(array, params.sharding)


def softmax(logits: Any) -> Any:
    """Softmax over the rows of ``logits`` (m, C), in the framework of ``logits`` (numpy: scipy's)."""
    if is_numpy(logits):
        import scipy.special

        return scipy.special.softmax(logits, axis=1)
    if is_torch(logits):
        import torch

        return torch.softmax(logits, dim=1)
    import jax

    return jax.nn.softmax(logits, axis=1)


def take(values: Any, indices: Any) -> Any:
    """The rows ``indices`` of ``values`` (a finite sum's samples); all of them when ``None``."""
    return values if indices is None else values[indices]


def to_host(x: Any) -> np.ndarray:
    """``x`` (numpy, torch or a concrete jax array) as a float64 numpy array, without a backend at hand."""
    if is_torch(x):
        x = x.detach().cpu()
        return x.double().numpy() if x.is_floating_point() else x.numpy().astype(np.float64)
    return np.asarray(x, dtype=np.float64)


def to_float64(backend: Any, params: Any) -> np.ndarray:
    """``params`` as a float64 numpy array, where a task's metrics are computed."""
    return np.asarray(backend.to_numpy(params), dtype=np.float64)


def normal_init(backend: Any, seed: int, size: int, fan_in: int) -> Any:
    """``N(0, 1 / fan_in)`` of length ``size`` from ``default_rng(seed)``: the same start in every framework."""
    rng = np.random.default_rng(seed)
    return backend.asarray(rng.standard_normal(size) / np.sqrt(fan_in))


def noise_key(params: Any, seed: int, stream: int) -> Any:
    """A method's own noise generator, seeded by ``[seed, stream]`` (a stream per method keeps draws apart).

    numpy ``default_rng([seed, stream])`` for numpy and torch arrays; for jax arrays a key,
    ``fold_in(PRNGKey(seed), stream)``, which the method carries in its state (so a compiled step
    stays pure). The frameworks' draws differ; their distributions do not.
    """
    if not (is_numpy(params) or is_torch(params)):
        import jax

        return jax.random.fold_in(jax.random.PRNGKey(int(seed)), int(stream))
    return np.random.default_rng([int(seed), int(stream)])


def standard_normal(key: Any, shape: tuple[int, ...], params: Any) -> tuple[Any, Any]:
    """``N(0, I)`` of ``shape`` in the framework and dtype of ``params``, and the key to draw from next.

    ``key`` is :func:`noise_key`'s: a numpy generator advances in place (returned as it is), a jax
    key is split.

    Examples
    --------
    >>> key = noise_key(np.zeros(3), seed=0, stream=7)
    >>> noise, key = standard_normal(key, (2, 3), np.zeros(3))
    >>> noise.shape
    (2, 3)
    """
    if isinstance(key, np.random.Generator):
        return like(key.standard_normal(shape), params), key
    import jax

    key, sub = jax.random.split(key)
    return jax.random.normal(sub, shape, dtype=params.dtype), key


def block_shard(problem: Any, parts: int, rank: int, world_size: int) -> tuple[Any, float]:
    """A rank's shard of a problem that is a sum over ``parts`` (nodes, clients): weight 1.

    A shallow copy of ``problem`` that answers for the rank's contiguous block of parts (numpy
    ``array_split``): its ``_arrays(own)`` rebuilds the framework arrays with ``own`` ``(parts,)``
    1 there and 0 elsewhere, so the ranks' answers sum to the whole problem's.
    """
    own = np.zeros(parts)
    own[np.array_split(np.arange(parts), world_size)[rank]] = 1.0
    local = object.__new__(type(problem))
    local.__dict__.update(problem.__dict__)
    local._arrays(own)
    return local, 1.0
