"""Models: the paper's CNN-1 and CNN-2, the architecture registry, checkpoints and input normalisation."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from tomocam.models.checkpoint import ModelMeta, load_checkpoint, save_checkpoint
from tomocam.models.cnn import cnn1, cnn2
from tomocam.models.normalisation import NORMALISATIONS, normalise
from tomocam.models.registry import build_model, register_architecture, registered_architectures


def bundled_model_path() -> Path:
    """Path of the small model shipped inside the package (trained on the built-in procedural shapes)."""
    return Path(str(files("tomocam") / "bundled" / "default.pt"))


__all__ = [
    "ModelMeta", "NORMALISATIONS", "build_model", "bundled_model_path", "cnn1", "cnn2", "load_checkpoint",
    "normalise", "register_architecture", "registered_architectures", "save_checkpoint",
]
