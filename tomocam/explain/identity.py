"""What Grad-CAM's map sum drops: the spatial covariance of activations and gradients.

For a layer output ``A`` (``l`` channels over ``Z`` spatial positions) and a class score ``y_c``, with
``g_l = dy_c/dA_l``, the map sums of the two CAMs (:mod:`tomocam.explain.cam`) are

    Respond-CAM  R_c = sum_l sum_s A_l g_l                     (exactly, for eps -> 0)
    Grad-CAM     G_c = sum_l mean_s(g_l) sum_s A_l = Z * sum_l mean_s(A_l) mean_s(g_l)

and since ``sum_s A g = Z * (Cov_s(A, g) + mean_s A * mean_s g)``,

    G_c = R_c - Z * sum_l Cov_s(A_l, g_l).

For a ``Flatten -> Linear`` head (CNN-1, CNN-2) ``R_c`` is the score up to the biases' share, so Grad-CAM's sum
misses the score by the covariance term: large when the network's FC weights are spatially specific (particles
always in one place), small when the evidence may sit anywhere. :func:`covariance_term` computes that term from the
full gradients, independently of the CAM code, so that ``G + covariance == R`` is a check of both.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from tomocam.explain.cam import find_layer

# Upper bound on the elements of one batched gradient (k x n x l x s); classes are taken in chunks above it.
_MAX_GRAD_ELEMENTS = 2**27


def covariance_term(model: nn.Module, x: Tensor, layer: str, classes: Sequence[int] | None = None) -> Tensor:
    """``Z * sum_l Cov_s(A_l, dy_c/dA_l)`` per sample and class: ``(n, k)``, float64.

    Args:
        model: a classifier returning logits ``(n, k_total)``; its parameters' ``requires_grad`` and ``.grad``
            are left as found.
        x: input ``(n, c, *spatial)`` on the model's device.
        layer: dotted name of the layer whose output ``A (n, l, *s)`` is explained.
        classes: class indices (default: all), the order of the ``k`` axis.

    The gradients ``dy_c/dA`` of every class come from batched vector-Jacobian products over the whole network
    after ``layer`` (no shortcut through the head), computed in the model's precision and summed in float64.
    """
    target = find_layer(model, layer)
    captured: list[Tensor] = []

    def hook(_module: nn.Module, _inputs: tuple, output: Tensor) -> Tensor:
        leaf = output.detach().requires_grad_(True)  # gradients stop here; the network goes on with a copy
        captured.append(leaf)
        return leaf.clone()

    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    handle = target.register_forward_hook(hook)
    try:
        for p in params:
            p.requires_grad_(False)
        with torch.enable_grad():
            logits = model(x)
    finally:
        handle.remove()
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)
    (a,) = captured
    n, l = a.shape[:2]
    wanted = list(range(logits.shape[1])) if classes is None else [int(c) for c in classes]
    a_centred = a.detach().double().reshape(n, l, -1)
    a_centred = a_centred - a_centred.mean(-1, keepdim=True)  # (n, l, s)
    chunk = max(1, _MAX_GRAD_ELEMENTS // max(1, a.numel()))
    parts = []
    for start in range(0, len(wanted), chunk):
        part = wanted[start:start + chunk]
        directions = torch.zeros(len(part), *logits.shape, dtype=logits.dtype, device=logits.device)
        for i, c in enumerate(part):
            directions[i, :, c] = 1
        last = start + chunk >= len(wanted)
        (grads,) = torch.autograd.grad(logits, a, directions, is_grads_batched=True, retain_graph=not last)
        # sum_s (A - mean A)(g - mean g) = sum_s (A - mean A) g
        parts.append(torch.einsum("nls,knls->nk", a_centred, grads.double().reshape(len(part), n, l, -1)))
    return torch.cat(parts, dim=1)
