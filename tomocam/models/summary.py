"""Every layer of a model with its output shape, so that users can choose ``--layer``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class LayerInfo:
    """One named module: dotted name, class name, output shape without the batch axis (None if not a tensor)."""

    name: str
    kind: str
    shape: tuple[int, ...] | None

    @property
    def explainable(self) -> bool:
        """Whether a CAM can be taken here: the output has channels and at least one spatial axis."""
        return self.shape is not None and len(self.shape) >= 2


def layer_shapes(model: nn.Module, input_shape: Sequence[int]) -> list[LayerInfo]:
    """Run one zero input of ``input_shape`` (``(c, *spatial)``, no batch axis) and record each module's output.

    Modules are listed in ``named_modules()`` order; the model's mode is left as found and all hooks are removed.
    """
    shapes: dict[str, tuple[int, ...] | None] = {}
    handles = []

    def hook(name: str):
        def record(_m: nn.Module, _i: tuple, out: object) -> None:
            shapes.setdefault(name, tuple(out.shape[1:]) if isinstance(out, torch.Tensor) else None)
        return record

    named = [(n, m) for n, m in model.named_modules() if n]
    was_training = model.training
    try:
        for name, module in named:
            handles.append(module.register_forward_hook(hook(name)))
        model.eval()
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device=device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return [LayerInfo(n, type(m).__name__, shapes.get(n)) for n, m in named]
