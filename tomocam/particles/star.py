"""RELION STAR particle tables, read and written with ``starfile``: RELION 5 tomography and RELION 3 / Warp.

**RELION 5** (``rlnTomoName``, ``rlnCenteredCoordinateX/Y/ZAngst``): positions in angstrom from the tomogram's
centre. RELION 5's own code (``src/jaz/tomography/particle_set.cpp``, ``getParticleCoordDecenteredPixel``) turns
them into voxel positions as ``centred / pixel_size + centre`` with ``centre = (w/2, h/2, d/2)`` voxels
(``src/jaz/tomography/tomogram_set.cpp``, ``out.centre = d3Vector(out.w0/2.0, out.h0/2.0, out.d0/2.0)``), voxel ``i``
at position ``i``. In tomocam's frame (voxel ``i`` at ``i * voxel_size``) that is::

    x_tomocam = rlnCenteredCoordinateXAngst + size_x * voxel_size_x / 2

(the same for y, z), so the table needs the tomogram's shape and voxel size (:class:`TomogramInfo`); for a
tomogram of 4 voxels of 10 A along x, voxel 2 (x = 20 A) is centred coordinate 0. copick's RELION export uses the
same centre (``copick.util.relion.copick_tomogram_center``: shape / 2 * voxel size). Particle origins
(``rlnOriginX/Y/ZAngst``) are applied as RELION's ``ParticleSet::getPosition`` does: position minus the
subtomogram rotation times the origin; orientation is ``A_subtomogram @ A_particle`` (``getMatrix3x3``).

**RELION 3 / Warp** (``rlnCoordinateX/Y/Z`` in voxels, voxel ``i`` at ``i``, with ``rlnMicrographName``): the
tomogram's name is ``rlnTomoName`` when present, else the stem of ``rlnMicrographName``; the voxel size of the
coordinates is ``rlnPixelSize``, ``rlnDetectorPixelSize * 1e4 / rlnMagnification`` (Warp), the optics table's
``rlnMicrographPixelSize`` or ``rlnTomoTiltSeriesPixelSize``, else the caller's.

Classes: ``tomocamClassName`` (a label of tomocam's own: RELION has no class-name label) names the class;
without it, ``rlnClassNumber`` (1-based) indexes the caller's class list. Scores: ``rlnAutopickFigureOfMerit``,
else ``rlnLogLikeliContribution``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from tomocam.errors import InputError
from tomocam.particles.table import (
    ANGLES,
    TomogramInfo,
    euler_angles,
    particle_table,
    rotation_matrices,
    rows_of,
)

CENTRED = ["rlnCenteredCoordinateXAngst", "rlnCenteredCoordinateYAngst", "rlnCenteredCoordinateZAngst"]
VOXELS = ["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]
ORIGINS = ["rlnOriginXAngst", "rlnOriginYAngst", "rlnOriginZAngst"]
PARTICLE_ANGLES = ["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]
SUBTOMOGRAM_ANGLES = ["rlnTomoSubtomogramRot", "rlnTomoSubtomogramTilt", "rlnTomoSubtomogramPsi"]
CLASS_NAME = "tomocamClassName"
CLASS_NUMBER = "rlnClassNumber"
SCORES = ("rlnAutopickFigureOfMerit", "rlnLogLikeliContribution")


def read_blocks(path: Path) -> dict[str, pd.DataFrame]:
    """The data blocks of a STAR file (name -> table); an unreadable file is an :class:`InputError`."""
    import starfile

    try:
        blocks = starfile.read(path, always_dict=True, parse_as_string=["rlnTomoName", "rlnMicrographName"])
    except Exception as err:  # starfile raises whatever its parser meets; a user's file is the cause
        raise InputError(f"particle table '{path}' is not a readable STAR file: {err}") from None
    return {name: block for name, block in blocks.items() if isinstance(block, pd.DataFrame)}


def particle_block(blocks: Mapping[str, pd.DataFrame], path: Path) -> pd.DataFrame:
    """The block with particle coordinates (``data_particles`` when several have them)."""
    found = {name: b for name, b in blocks.items() if set(CENTRED) <= set(b.columns) or set(VOXELS) <= set(b.columns)}
    if not found:
        columns = sorted({c for b in blocks.values() for c in b.columns})
        raise InputError(f"particle table '{path}' has no coordinates: add {', '.join(CENTRED)} (RELION 5) or "
                         f"{', '.join(VOXELS)} (RELION 3 / Warp); found {', '.join(columns) or 'no columns'}")
    return found.get("particles", next(iter(found.values())))


def is_relion5(block: pd.DataFrame) -> bool:
    """Whether a particle block holds RELION 5 centred coordinates."""
    return set(CENTRED) <= set(block.columns)


def read_relion5(
    path: Path, blocks: Mapping[str, pd.DataFrame], *, tomograms: Mapping[str, TomogramInfo] | None,
    tomogram: str | None, class_name: str | None, classes: Sequence[str] | None,
) -> pd.DataFrame:
    """A RELION 5 table as a particle table (see the module's docstring for the centre convention)."""
    block, names = _block_of(blocks, path, tomogram, columns=("rlnTomoName",))
    centred = block[CENTRED].to_numpy(np.float64)
    sub = rotation_matrices(block[SUBTOMOGRAM_ANGLES].to_numpy()) if set(SUBTOMOGRAM_ANGLES) <= set(block.columns) \
        else np.tile(np.eye(3), (len(block), 1, 1))
    if set(ORIGINS) <= set(block.columns):
        centred = centred - np.einsum("nij,nj->ni", sub, block[ORIGINS].to_numpy(np.float64))
    half = np.empty_like(centred)
    for name in np.unique(names):
        info = tomograms.get(name) if tomograms is not None else None
        if info is None:
            raise InputError(f"particle table '{path}' has RELION 5 centred coordinates of tomogram '{name}': give "
                             "that tomogram's shape and voxel size to place them")
        half[names == name] = np.asarray(info.shape[::-1]) * np.asarray(info.voxel_size[::-1]) / 2
    angles = None
    if set(PARTICLE_ANGLES) <= set(block.columns) or set(SUBTOMOGRAM_ANGLES) <= set(block.columns):
        part = rotation_matrices(block[PARTICLE_ANGLES].to_numpy()) if set(PARTICLE_ANGLES) <= set(block.columns) \
            else np.tile(np.eye(3), (len(block), 1, 1))
        angles = euler_angles(sub @ part)
    return particle_table(names, _classes(block, path, class_name, classes), centred + half, _scores(block),
                          class_index=_class_index(block), angles=angles)


def read_relion3(
    path: Path, blocks: Mapping[str, pd.DataFrame], *, tomograms: Mapping[str, TomogramInfo] | None,
    voxel_size: float | None, tomogram: str | None, class_name: str | None, classes: Sequence[str] | None,
) -> pd.DataFrame:
    """A RELION 3 / Warp table (voxel coordinates) as a particle table."""
    block, names = _block_of(blocks, path, tomogram, columns=("rlnTomoName", "rlnMicrographName"))
    sizes = _pixel_sizes(block, blocks, path)
    if sizes is None:
        sizes = np.empty(len(block))
        for name in np.unique(names):
            info = tomograms.get(name) if tomograms is not None else None
            if voxel_size is None and info is None:
                raise InputError(f"particle table '{path}' gives voxel coordinates without a voxel size: add an "
                                 "rlnPixelSize column or give the voxel size of its coordinates")
            sizes[names == name] = voxel_size if voxel_size is not None else info.isotropic_voxel_size  # type: ignore[union-attr]
    xyz = block[VOXELS].to_numpy(np.float64) * np.asarray(sizes, dtype=np.float64).reshape(-1, 1)
    angles = block[PARTICLE_ANGLES].to_numpy(np.float64) if set(PARTICLE_ANGLES) <= set(block.columns) else None
    return particle_table(names, _classes(block, path, class_name, classes), xyz, _scores(block),
                          class_index=_class_index(block), angles=angles)


def _block_of(blocks: Mapping[str, pd.DataFrame], path: Path, tomogram: str | None,
              columns: Sequence[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """The particle block's rows of ``tomogram`` (all when ``None``) and their tomogram names."""
    block = particle_block(blocks, path)
    names = _tomogram_names(block, path, tomogram, columns)
    keep = rows_of(names, tomogram, f"'{path}'")
    return block[keep].reset_index(drop=True), names[keep]


def _tomogram_names(block: pd.DataFrame, path: Path, tomogram: str | None, columns: Sequence[str]) -> np.ndarray:
    """Each row's tomogram: the first of ``columns`` present (a micrograph name gives its stem), else ``tomogram``."""
    for column in columns:
        if column in block.columns:
            values = block[column].astype(str)
            if column == "rlnMicrographName":
                values = values.map(lambda s: PurePosixPath(s.split(":")[0]).stem)
            return values.to_numpy(dtype=object)
    if tomogram is None:
        raise InputError(f"particle table '{path}' does not name its tomograms: add an {columns[0]} column or give "
                         "the tomogram's name")
    return np.full(len(block), tomogram, dtype=object)


def _pixel_sizes(block: pd.DataFrame, blocks: Mapping[str, pd.DataFrame], path: Path) -> np.ndarray | None:
    """The voxel size of each row's coordinates as the table states it, or ``None`` when it does not."""
    if "rlnPixelSize" in block.columns:
        return block["rlnPixelSize"].to_numpy(np.float64)
    if {"rlnDetectorPixelSize", "rlnMagnification"} <= set(block.columns):
        return block["rlnDetectorPixelSize"].to_numpy(np.float64) * 1e4 / block["rlnMagnification"].to_numpy(np.float64)
    optics = blocks.get("optics")
    if optics is None:
        return None
    for column in ("rlnMicrographPixelSize", "rlnTomoTiltSeriesPixelSize"):
        if column in optics.columns:
            if len(optics) == 1:
                return np.full(len(block), float(optics[column].iloc[0]))
            if "rlnOpticsGroup" not in block.columns:
                raise InputError(f"particle table '{path}' has several optics groups: add an rlnOpticsGroup column")
            size = dict(zip(optics["rlnOpticsGroup"].astype(int), optics[column].astype(float)))
            return block["rlnOpticsGroup"].astype(int).map(size).to_numpy(np.float64)
    return None


def _classes(block: pd.DataFrame, path: Path, class_name: str | None, classes: Sequence[str] | None) -> list[str]:
    """Each row's class name: ``tomocamClassName``, else ``rlnClassNumber`` into ``classes``, else ``class_name``."""
    if CLASS_NAME in block.columns:
        return block[CLASS_NAME].astype(str).tolist()
    if CLASS_NUMBER in block.columns and classes is not None:
        numbers = block[CLASS_NUMBER].astype(int).to_numpy()
        bad = numbers[(numbers < 1) | (numbers > len(classes))]
        if len(bad):
            raise InputError(f"particle table '{path}' has rlnClassNumber {int(bad[0])}, not one of the "
                             f"{len(classes)} classes {list(classes)} (counted from 1)")
        return [classes[n - 1] for n in numbers]
    if class_name is not None:
        return [class_name] * len(block)
    raise InputError(f"particle table '{path}' does not name its classes: add a {CLASS_NAME} column (or "
                     f"{CLASS_NUMBER} with the model's classes), or give the class")


def _class_index(block: pd.DataFrame) -> np.ndarray | None:
    """0-based class indices from ``rlnClassNumber``, when present."""
    return block[CLASS_NUMBER].astype(int).to_numpy() - 1 if CLASS_NUMBER in block.columns else None


def _scores(block: pd.DataFrame) -> np.ndarray | None:
    """Scores from the first score column present, or ``None``."""
    for column in SCORES:
        if column in block.columns:
            return block[column].to_numpy(np.float64)
    return None


def _common_columns(frame: pd.DataFrame) -> dict[str, object]:
    """Class, score and angle columns shared by both STAR flavours."""
    out: dict[str, object] = {}
    if "class_index" in frame.columns:
        out[CLASS_NUMBER] = frame["class_index"].to_numpy(np.int64) + 1
    out[CLASS_NAME] = frame["class"].to_numpy(dtype=object)
    if frame["score"].notna().any():
        out["rlnAutopickFigureOfMerit"] = frame["score"].to_numpy(np.float64)
    if set(ANGLES) <= set(frame.columns):
        out.update(zip(PARTICLE_ANGLES, frame[list(ANGLES)].to_numpy(np.float64).T))
    return out


def relion5_table(frame: pd.DataFrame, tomograms: Mapping[str, TomogramInfo]) -> pd.DataFrame:
    """A particle table as RELION 5 columns (centred angstrom), for :func:`write_star`."""
    half = np.empty((len(frame), 3))
    names = frame["tomogram"].to_numpy(dtype=object)
    for name in np.unique(names):
        info = tomograms.get(name)
        if info is None:
            raise InputError(f"RELION 5 coordinates are centred on the tomogram: give the shape and voxel size of "
                             f"tomogram '{name}'")
        half[names == name] = np.asarray(info.shape[::-1]) * np.asarray(info.voxel_size[::-1]) / 2
    centred = frame[["x", "y", "z"]].to_numpy(np.float64) - half
    return pd.DataFrame({"rlnTomoName": names, **dict(zip(CENTRED, centred.T)), **_common_columns(frame)})


def relion3_table(frame: pd.DataFrame, tomograms: Mapping[str, TomogramInfo]) -> pd.DataFrame:
    """A particle table as RELION 3 / Warp columns (voxels of each tomogram, with rlnPixelSize)."""
    names = frame["tomogram"].to_numpy(dtype=object)
    sizes = np.empty(len(frame))
    for name in np.unique(names):
        info = tomograms.get(name)
        if info is None:
            raise InputError(f"RELION 3 coordinates are in voxels: give the voxel size of tomogram '{name}'")
        sizes[names == name] = info.isotropic_voxel_size
    voxels = frame[["x", "y", "z"]].to_numpy(np.float64) / sizes[:, None]
    return pd.DataFrame({"rlnMicrographName": [f"{n}.mrc" for n in names], **dict(zip(VOXELS, voxels.T)),
                         "rlnPixelSize": sizes, **_common_columns(frame)})


def write_star(table: pd.DataFrame, path: Path) -> None:
    """Write a RELION table as a STAR file with one ``particles`` data block."""
    import starfile

    starfile.write({"particles": table}, path, float_format="%.6f")
