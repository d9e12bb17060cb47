"""Named model architectures, so that a checkpoint can rebuild its model without pickled code.

A checkpoint stores an architecture *name* and its keyword arguments; loading looks the name up here. Users plug
in their own architecture by registering a factory before loading::

    from tomocam.models import register_architecture

    @register_architecture("my-unet-classifier")
    def my_model(num_classes: int, input_size: int) -> torch.nn.Module:
        ...

Every model built through :func:`build_model` carries ``tomocam_architecture`` (name, kwargs), which
:func:`tomocam.save_checkpoint` records.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from tomocam.errors import CheckpointError

Factory = Callable[..., nn.Module]
_REGISTRY: dict[str, Factory] = {}


def register_architecture(name: str) -> Callable[[Factory], Factory]:
    """Decorator registering ``factory(**kwargs) -> nn.Module`` under ``name``.

    Models built with :func:`build_model` remember the name and arguments; give the model a
    ``default_cam_layer`` attribute to offer users a sensible default layer.
    """

    def decorate(factory: Factory) -> Factory:
        if name in _REGISTRY and _REGISTRY[name] is not factory:
            raise ValueError(f"architecture {name!r} is already registered")
        _REGISTRY[name] = factory
        return factory

    return decorate


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the registered architecture ``name`` with ``kwargs`` and tag it for checkpointing."""
    if name not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise CheckpointError(
            f"unknown architecture {name!r} (registered: {known}); register it with "
            "tomocam.models.register_architecture before loading"
        )
    model = _REGISTRY[name](**kwargs)
    model.tomocam_architecture = (name, dict(kwargs))  # type: ignore[assignment]  # Module attrs typed as tensors
    return model


def registered_architectures() -> list[str]:
    """Names of every registered architecture."""
    return sorted(_REGISTRY)
