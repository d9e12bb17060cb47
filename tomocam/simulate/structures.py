"""Structures to simulate: a named density template on a cubic grid at the simulation's voxel size.

Sources: the built-in procedural shapes (:mod:`tomocam.simulate.shapes`), density maps (MRC) and atomic models
(PDB/mmCIF, turned into density with gemmi's electron-scattering calculator). Every template is normalised the
same way so that different sources are comparable: background (median of the box border) at 0, negatives
clipped, peak at 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tomocam.errors import InputError

ATOMIC_SUFFIXES = (".pdb", ".ent", ".cif", ".mmcif", ".pdb.gz", ".cif.gz", ".ent.gz", ".mmcif.gz")
MAP_SUFFIXES = (".mrc", ".map", ".mrcs", ".rec")


@dataclass(frozen=True)
class Structure:
    """A named template ``density`` of shape ``(m, m, m)`` at ``voxel_size`` angstrom, centred in its box.

    ``source`` says where it came from (a path or "builtin:<name>"); ``radius`` is the particle's radius in
    voxels (farthest voxel above 10% of the peak from the centre), used to keep particles from overlapping.
    """

    name: str
    density: np.ndarray
    voxel_size: float
    source: str

    @property
    def radius(self) -> float:
        """Radius in voxels of the region above 10% of the peak, measured from the box centre."""
        idx = np.argwhere(self.density > 0.1 * float(self.density.max()))
        if idx.size == 0:
            return 0.0
        centre = (np.asarray(self.density.shape) - 1) / 2.0
        return float(np.sqrt(((idx - centre) ** 2).sum(axis=1)).max())

    @property
    def contour(self) -> float:
        """Density level used for ground-truth masks: half the mean density of the particle's voxels."""
        d = self.density
        return 0.5 * float(d[d > 0.1 * float(d.max())].mean())


def normalise_density(density: np.ndarray) -> np.ndarray:
    """Background (median of the border voxels) to 0, negatives clipped, peak to 1; float32."""
    d = np.asarray(density, dtype=np.float32)
    border = np.concatenate([d[[0, -1]].ravel(), d[:, [0, -1]].ravel(), d[:, :, [0, -1]].ravel()])
    d = np.clip(d - np.median(border), 0, None)
    peak = float(d.max())
    if not np.isfinite(peak) or peak <= 0:
        raise InputError("density has no positive signal above its border background after normalisation")
    return d / peak


def _cubic(density: np.ndarray) -> np.ndarray:
    """Pad a ``(d, h, w)`` map with zeros to a centred cube of the largest side."""
    m = max(density.shape)
    pads = [((m - s) // 2, m - s - (m - s) // 2) for s in density.shape]
    return np.pad(density, pads)


def load_map(path: Path, voxel_size: float, name: str | None = None) -> Structure:
    """Read an MRC density map, resample it to ``voxel_size`` (from the header's voxel size) and normalise it."""
    import mrcfile
    from scipy import ndimage

    path = Path(path)
    try:
        with mrcfile.open(path, permissive=True) as mrc:
            data = np.asarray(mrc.data, dtype=np.float32)
            header_voxel = float(mrc.voxel_size.x)
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read density map '{path}': {err}") from err
    if data is None or data.ndim != 3:
        raise InputError(f"density map '{path}' must be a 3-D volume, found shape {getattr(data, 'shape', None)}")
    if not np.all(np.isfinite(data)):
        raise InputError(f"density map '{path}' contains NaN or infinite values")
    if header_voxel <= 0:
        raise InputError(f"density map '{path}' has no voxel size in its header (found {header_voxel})")
    if abs(header_voxel - voxel_size) > 1e-3 * voxel_size:
        data = ndimage.zoom(data, header_voxel / voxel_size, order=1)
    return Structure(name or _stem(path), normalise_density(_cubic(data)), voxel_size, str(path))


def load_atomic_model(path: Path, voxel_size: float, name: str | None = None) -> Structure:
    """Turn a PDB/mmCIF model into a density map with gemmi's electron-scattering calculator (resolution 2 x voxel)."""
    import gemmi

    path = Path(path)
    try:
        st = gemmi.read_structure(str(path))
    except (RuntimeError, ValueError, OSError) as err:
        raise InputError(f"cannot read atomic model '{path}': {err}") from err
    if len(st) == 0 or st[0].count_atom_sites() == 0:
        raise InputError(f"atomic model '{path}' has no atoms")
    st.setup_entities()
    st.remove_ligands_and_waters()
    model = st[0]
    pos = np.array([[a.pos.x, a.pos.y, a.pos.z] for cra in model.all() for a in [cra.atom]])
    centre = (pos.min(axis=0) + pos.max(axis=0)) / 2
    extent = float((pos.max(axis=0) - pos.min(axis=0)).max())
    m = int(np.ceil(extent / voxel_size)) + 8  # margin for the atoms' blur
    m += m % 2
    side = m * voxel_size
    shift = gemmi.Position(*(side / 2 - centre))
    for cra in model.all():
        cra.atom.pos = cra.atom.pos + shift
    st.cell = gemmi.UnitCell(side, side, side, 90, 90, 90)
    st.spacegroup_hm = "P 1"
    calc = gemmi.DensityCalculatorE()
    calc.d_min = 2 * voxel_size
    calc.grid.unit_cell = st.cell
    calc.grid.spacegroup = gemmi.SpaceGroup("P 1")
    calc.grid.set_size(m, m, m)
    calc.put_model_density_on_grid(model)
    density = np.array(calc.grid, copy=True, dtype=np.float32)  # (x, y, z) axes in gemmi
    return Structure(name or _stem(path), normalise_density(density.transpose(2, 1, 0)), voxel_size, str(path))


def load_structure(path: Path, voxel_size: float) -> Structure:
    """Load a map or an atomic model, by file suffix."""
    path = Path(path)
    low = path.name.lower()
    if not path.is_file():
        raise InputError(f"structure file '{path}' does not exist")
    if low.endswith(MAP_SUFFIXES):
        return load_map(path, voxel_size)
    if low.endswith(ATOMIC_SUFFIXES):
        return load_atomic_model(path, voxel_size)
    raise InputError(
        f"structure file '{path}' has an unknown type: expected a map ({', '.join(MAP_SUFFIXES)}) "
        f"or an atomic model ({', '.join(ATOMIC_SUFFIXES)})"
    )


def load_structures(paths: list[Path], voxel_size: float) -> list[Structure]:
    """Load several structures; a folder contributes all its maps and models, sorted by name. Names must be unique."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.name.lower().endswith(MAP_SUFFIXES + ATOMIC_SUFFIXES))
            if not found:
                raise InputError(f"folder '{p}' holds no density map or atomic model")
            files.extend(found)
        else:
            files.append(p)
    structures = [load_structure(f, voxel_size) for f in files]
    names = [s.name for s in structures]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputError(f"structure names must be unique, found duplicates: {', '.join(dupes)}")
    return structures


def _stem(path: Path) -> str:
    name = path.name
    for suffix in sorted(MAP_SUFFIXES + ATOMIC_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem
