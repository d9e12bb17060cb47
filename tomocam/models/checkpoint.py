"""tomocam checkpoints: one file with the weights and everything needed to use them safely.

The file is a ``torch.save`` archive of plain containers (no pickled classes or code)::

    {"format": "tomocam-checkpoint", "format_version": 1,
     "architecture": "cnn2", "arch_kwargs": {...}, "meta": {...}, "state_dict": {...}}

It is read with ``torch.load(..., weights_only=True)``, which refuses anything but tensors and plain containers,
so loading a checkpoint cannot execute code. The model is rebuilt from the architecture registry
(:mod:`tomocam.models.registry`).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tomocam.errors import CheckpointError, OutputError
from tomocam.models.normalisation import NORMALISATIONS
from tomocam.models.registry import build_model

FORMAT = "tomocam-checkpoint"
FORMAT_VERSION = 1
POLARITIES = ("bright", "dark")


@dataclass(frozen=True)
class ModelMeta:
    """What a checkpoint says about its model.

    Attributes:
        architecture: registered architecture name (e.g. ``"cnn2"``).
        arch_kwargs: the arguments it was built with.
        classes: class names, in logit order.
        input_size: edge length of the cubic input, in voxels.
        voxel_size: voxel size of the training data, in angstrom.
        normalisation: per-tile input normalisation (:data:`tomocam.models.normalisation.NORMALISATIONS`).
        polarity: ``"bright"`` if particles are brighter than background in the training data, else ``"dark"``.
        cam_layer: the default layer to explain.
        provenance: how the model was made (command, data, seed, accuracy, ...).
        sha256: hash of the checkpoint file (filled in on loading).
    """

    architecture: str
    arch_kwargs: dict[str, Any]
    classes: list[str]
    input_size: int
    voxel_size: float
    normalisation: str = "zscore"
    polarity: str = "bright"
    cam_layer: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    classes: list[str],
    input_size: int,
    voxel_size: float,
    normalisation: str = "zscore",
    polarity: str = "bright",
    cam_layer: str | None = None,
    provenance: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` and its metadata to one checkpoint file, atomically.

    The model must come from :func:`tomocam.models.build_model` (or ``cnn1``/``cnn2``) so that its architecture
    can be rebuilt. ``cam_layer`` defaults to the model's ``default_cam_layer``. Metadata must be plain
    Python values (str, int, float, bool, None, lists and dicts of them).
    """
    arch = getattr(model, "tomocam_architecture", None)
    if arch is None:
        raise CheckpointError(
            "the model was not built through tomocam.models.build_model, so its architecture cannot be recorded; "
            "register its factory with tomocam.models.register_architecture"
        )
    n_out = _count_outputs(model)
    if n_out is not None and n_out != len(classes):
        raise CheckpointError(f"{len(classes)} class names given for a model with {n_out} outputs")
    if normalisation not in NORMALISATIONS:
        raise CheckpointError(f"unknown normalisation {normalisation!r}; expected one of {NORMALISATIONS}")
    if polarity not in POLARITIES:
        raise CheckpointError(f"unknown polarity {polarity!r}; expected one of {POLARITIES}")
    layer = cam_layer or str(getattr(model, "default_cam_layer", ""))
    meta = ModelMeta(
        architecture=arch[0], arch_kwargs=arch[1], classes=[str(c) for c in classes], input_size=int(input_size),
        voxel_size=float(voxel_size), normalisation=normalisation, polarity=polarity, cam_layer=layer,
        provenance=dict(provenance or {}),
    )
    record = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": meta.architecture,
        "arch_kwargs": meta.arch_kwargs,
        "meta": {k: v for k, v in asdict(meta).items() if k not in ("architecture", "arch_kwargs", "sha256")},
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
            torch.save(record, tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp.name, 0o666 & ~umask)  # a temporary file is private (0600); a model file is shared as usual
        os.replace(tmp.name, path)
    except OSError as err:
        raise OutputError(f"cannot write checkpoint {str(path)!r}: {err.strerror or err}") from None
    return path


def _count_outputs(model: nn.Module) -> int | None:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1].out_features if linears else None


def _hint(record: object) -> str:
    """For a file that holds only weights (a ``state_dict``, bare or under a ``"state_dict"``/``"model"`` key, as
    ``torch.save(model.state_dict())`` and training frameworks write them): how to make a checkpoint of it."""
    weights = record
    if isinstance(record, dict) and not all(isinstance(v, torch.Tensor) for v in record.values()):
        weights = next((record[k] for k in ("state_dict", "model") if isinstance(record.get(k), dict)), None)
    if not isinstance(weights, dict) or not weights or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        return ""
    return (f"; it holds only weights ({len(weights)} tensors): load them into a model built with "
            "tomocam.models.build_model (register your architecture first) and save that with "
            "tomocam.save_checkpoint(model, PATH, classes=..., input_size=..., voxel_size=...), which records what "
            "tomocam needs (docs/python.md: Checkpoints)")


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, ModelMeta]:
    """Rebuild the model stored in ``path`` (in eval mode, on ``device``) and return it with its metadata.

    Raises:
        CheckpointError: the file is missing, is not a tomocam checkpoint, refuses to load without executing
            code, or names an architecture that is not registered.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"model file {str(path)!r} does not exist")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{str(path)!r} is not a tomocam checkpoint (not a PyTorch archive)")
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for foreign or unsafe files
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{str(path)!r} is not a tomocam checkpoint ({reason[:160]})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a tomocam checkpoint (no '{FORMAT}' header){_hint(record)}")
    if record.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{str(path)!r} has checkpoint format version {record.get('format_version')!r}; "
            f"this tomocam reads version {FORMAT_VERSION}"
        )
    model = build_model(record["architecture"], **record["arch_kwargs"])
    try:
        model.load_state_dict(record["state_dict"])
    except RuntimeError as err:
        raise CheckpointError(f"{str(path)!r}: weights do not fit architecture {record['architecture']!r}") from err
    meta = ModelMeta(
        architecture=record["architecture"], arch_kwargs=dict(record["arch_kwargs"]), sha256=_file_sha256(path),
        **record["meta"],
    )
    return model.to(device).eval(), meta
