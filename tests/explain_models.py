"""Small hand-made models and tomograms with known particles for the explain pipeline tests.

``matched-filter`` is a classifier whose class ``k`` logit is the mean of a ReLU'd matched filter (a zero-mean,
unit-norm template of class ``k``) over the tile. At layer ``features.1`` its Respond-CAM and Grad-CAM of class
``k`` are both that filter's response divided by the tile size, so at a particle the true class's map is the
highest (Cauchy-Schwarz): a model whose right answer is known, without training.
"""

from __future__ import annotations

import time
from pathlib import Path

import mrcfile
import numpy as np
import torch
from torch import nn

import tomocam
from tomocam.models import register_architecture, registered_architectures

BOX = 9  # template edge
SHAPES = {"small": (1.2, 1.2, 1.2), "large": (2.6, 2.6, 2.6), "rod": (3.0, 1.0, 1.0)}  # Gaussian sigmas (z, y, x)


def particle(sigmas: tuple[float, float, float], box: int = BOX) -> np.ndarray:
    """A Gaussian blob with per-axis ``sigmas`` centred in a ``box``^3 cube."""
    grid = np.indices((box,) * 3, dtype=np.float32) - (box - 1) / 2
    return np.exp(-0.5 * sum((g / s) ** 2 for g, s in zip(grid, sigmas))).astype(np.float32)


class MatchedFilter(nn.Module):
    def __init__(self, num_classes: int, input_size: int, delay: float = 0.0):
        super().__init__()
        self.delay = delay
        self.features = nn.Sequential(nn.Conv3d(1, num_classes, BOX, padding=BOX // 2), nn.ReLU())
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(num_classes * input_size**3, num_classes))
        self.default_cam_layer = "features.1"

    def forward(self, x):
        if self.delay:
            time.sleep(self.delay)
        return self.classifier(self.features(x))


if "matched-filter" not in registered_architectures():
    register_architecture("matched-filter")(MatchedFilter)


def matched_filter_checkpoint(path: Path, input_size: int = 16, delay: float = 0.0) -> Path:
    """Save the matched-filter model for the classes of :data:`SHAPES` (normalisation raw, bright)."""
    k = len(SHAPES)
    model = tomocam.models.build_model("matched-filter", num_classes=k, input_size=input_size, delay=delay)
    with torch.no_grad():
        for i, sig in enumerate(SHAPES.values()):
            t = particle(sig)
            t = (t - t.mean()) / np.linalg.norm(t - t.mean())
            model.features[0].weight[i, 0] = torch.from_numpy(t)
        model.features[0].bias.zero_()
        w = torch.zeros(k, k, input_size**3)
        for i in range(k):
            w[i, i] = 1.0 / input_size**3
        model.classifier[1].weight.copy_(w.reshape(k, -1))
        model.classifier[1].bias.zero_()
    return tomocam.save_checkpoint(
        model, path, classes=list(SHAPES), input_size=input_size, voxel_size=10.0, normalisation="raw",
        cam_layer="features.1",
    )


def tiny_cnn_checkpoint(path: Path, input_size: int = 16, classes: int = 3) -> Path:
    """An untrained small CNN-1 (z-score inputs) for invariants that hold for any weights."""
    torch.manual_seed(0)
    model = tomocam.models.cnn1(num_classes=classes, input_size=input_size, fc_width=16)
    return tomocam.save_checkpoint(
        model, path, classes=[f"c{i}" for i in range(classes)], input_size=input_size, voxel_size=10.0
    )


def particles_volume(shape, n: int, seed: int = 0, noise: float = 0.05) -> tuple[np.ndarray, list]:
    """A volume with ``n`` particles of the :data:`SHAPES` classes (cycled) on a jittered lattice.

    Returns the volume (float32, background ~0) and ``[(class index, (z, y, x) centre)]``.
    """
    rng = np.random.default_rng(seed)
    vol = (noise * rng.standard_normal(shape)).astype(np.float32)
    spacing = 14
    centres = [
        (z, y, x)
        for z in range(BOX, shape[0] - BOX + 1, spacing)
        for y in range(BOX, shape[1] - BOX + 1, spacing)
        for x in range(BOX, shape[2] - BOX + 1, spacing)
    ]
    rng.shuffle(centres)
    truth = []
    names = list(SHAPES.values())
    for j, c in enumerate(centres[:n]):
        c = tuple(int(v + rng.integers(-2, 3)) for v in c)
        k = j % len(names)
        h = BOX // 2
        vol[tuple(slice(v - h, v + h + 1) for v in c)] += particle(names[k])
        truth.append((k, c))
    return vol, truth


def write_mrc(path: Path, volume: np.ndarray, voxel_size: float = 10.0) -> Path:
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(volume)
        mrc.voxel_size = voxel_size
    return path
