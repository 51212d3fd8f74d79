"""Curl descent: gradient descent with sign-flipped plasticity for a fraction of hidden neurons.

For a layer ``l`` the gradient of the weights is ``delta_l h_{l-1}^T`` (error times input). A
rule-flipped neuron applies the opposite rule to its synapses: ``dW_l = -eta D delta_l h_{l-1}^T``
with ``D = diag(+-1)``. Flipping rows of a weight matrix flips the neurons' incoming synapses,
flipping columns their outgoing ones. The result is not the gradient of any function (it has a
curl) unless no neuron is flipped, when it is gradient descent exactly.

The method reads the problem's ``layout`` (``(name, shape)`` blocks of the flat vector) from
``oracle.layout``; the hidden neurons are the rows of the first matrix and the columns of the
last one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.arrays import like

__all__ = ["CurlDescent", "flip_mask"]

LAYERS = ("hidden", "readout")


def flip_mask(layout: Any, *, fraction: float, layer: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The flat ``+-1`` mask of the update and the indices of the flipped hidden neurons.

    Parameters
    ----------
    layout
        ``(name, shape)`` blocks of the flat parameter vector, in order; the first and last
        blocks are matrices whose rows, resp. columns, are the hidden neurons. Without two
        matrices there are no hidden neurons: only ``fraction = 0`` (gradient descent) is allowed.
    fraction
        Share of the hidden neurons whose plasticity is flipped, rounded to a whole number.
    layer
        ``hidden``: flip the incoming synapses (rows of the first matrix); ``readout``: the
        outgoing synapses (columns of the last matrix).
    seed
        Seed of ``numpy.random.default_rng`` that picks the flipped neurons.
    """
    if layer not in LAYERS:
        raise ValueError(f"flip_layer must be one of {list(LAYERS)}; got {layer!r}")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"flip_fraction must be in [0, 1]; got {fraction}")
    shapes = [tuple(shape) for _, shape in layout]
    sizes = [int(np.prod(s)) for s in shapes]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    if len(shapes) < 2 or len(shapes[0]) != 2 or len(shapes[-1]) != 2:
        if fraction == 0.0:  # no neuron flipped: gradient descent, whatever the parameters are
            return np.ones(int(offsets[-1])), np.zeros(0, dtype=np.int64)
        raise ValueError(f"flipping neurons needs a layout of at least two weight matrices; got {list(layout)}")
    hidden = shapes[0][0] if layer == "hidden" else shapes[-1][1]
    flipped = np.sort(np.random.default_rng(seed).permutation(hidden)[: round(fraction * hidden)])
    mask = np.ones(int(offsets[-1]))
    block = 0 if layer == "hidden" else len(shapes) - 1
    view = mask[offsets[block] : offsets[block + 1]].reshape(shapes[block])
    if layer == "hidden":
        view[flipped, :] = -1.0
    else:
        view[:, flipped] = -1.0
    return mask, flipped


class CurlDescent:
    """``params <- params - lr * mask * grad`` with the ``+-1`` mask of :func:`flip_mask`.

    Parameters
    ----------
    lr
        Learning rate.
    flip_fraction
        Share of hidden neurons with rule-flipped plasticity; 0 is gradient descent.
    flip_layer
        ``hidden`` (incoming synapses of the flipped neurons) or ``readout`` (outgoing).
    flip_seed
        Seed that picks the flipped neurons (fixed across run seeds unless set).
    """

    def __init__(self, *, lr: float, flip_fraction: float, flip_layer: str, flip_seed: int) -> None:
        self.lr = float(lr)
        self.flip_fraction = float(flip_fraction)
        self.flip_layer = str(flip_layer)
        self.flip_seed = int(flip_seed)

    def init(self, params: Any, oracle: Any) -> Any:
        layout = oracle.layout or (("params", (int(params.shape[0]),)),)
        mask, _ = flip_mask(layout, fraction=self.flip_fraction, layer=self.flip_layer, seed=self.flip_seed)
        return like(mask, params)

    def step(self, params: Any, state: Any, oracle: Any) -> tuple[Any, Any]:
        return params - self.lr * (state * oracle.grad(params)), state
