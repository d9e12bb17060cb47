"""Cutting a training dataset from tomograms at annotated particles: plan every box from headers and tables, then
cut each tomogram's boxes in its own process and write them as they are cut.

Planning (main process, no voxels read): per tomogram the particle boxes (``per_particle`` centres moved by up to
``max_shift``), then the background boxes, in that order, drawn from one seeded generator, so the same inputs and
seed give the same dataset. Cutting (:func:`cut_boxes`): boxes are read a batch at a time from the memory-mapped
tomogram and prepared by :func:`tomocam.models.inputs.prepare`, the path explain's tiles take, then written to
their rows of the dataset; the completion marker is written after every tomogram is done.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tomocam.errors import InputError
from tomocam.extract.geometry import background_centres, box_centres, box_spec, box_starts, inside, shifted
from tomocam.extract.selection import (
    BACKGROUND,
    check_classes_present,
    owner_of_table,
    select_particles,
    tomogram_name,
)
from tomocam.extract.tables import read_table
from tomocam.models.inputs import InputSpec
from tomocam.read import Tomogram, open_tomogram
from tomocam.simulate.dataset import ATTR_KEY

#: Boxes cut and written at a time by one worker.
BATCH = 32


@dataclass(frozen=True)
class ExtractSettings:
    """How boxes are cut: ``box`` voxels per edge at ``voxel_size`` angstrom (``None``: the tomograms' own),
    ``per_particle`` boxes per particle moved by up to ``max_shift`` voxels (of ``voxel_size``) per axis,
    background boxes (``"N"`` per tomogram or ``"Rx"``, R times its particle boxes) farther than ``radius``
    angstrom from every annotated particle, classes kept or merged (:func:`tomocam.extract.selection.parse_classes`),
    contrast inverted when ``invert``, drawn from ``seed``."""

    box: int = 40
    voxel_size: float | None = None
    per_particle: int = 1
    max_shift: float = 0.0
    background: str = "0"
    radius: float | None = None
    classes: dict[str, str | None] | None = None
    invert: bool = False
    seed: int = 0

    def background_count(self, particle_boxes: int) -> int:
        """Background boxes for a tomogram with ``particle_boxes`` particle boxes."""
        text = self.background.strip().lower()
        try:
            if text.endswith("x"):
                return int(round(float(text[:-1]) * particle_boxes))
            return int(text)
        except ValueError:
            raise InputError(f"--background must be a count (e.g. 200) or a ratio to the particle boxes (e.g. 1x), "
                             f"found {self.background!r}") from None

    @property
    def wants_background(self) -> bool:
        """Whether any tomogram gets background boxes (a positive count or ratio)."""
        return self.background_count(10 ** 6) > 0

    def check(self) -> None:
        """Raise :class:`InputError` for settings that cannot make a dataset."""
        if self.box < 4 or self.per_particle < 1 or self.max_shift < 0:
            raise InputError(f"--box must be >= 4, --per-particle >= 1 and --max-shift >= 0, found {self.box}, "
                             f"{self.per_particle}, {self.max_shift}")
        if self.background_count(10 ** 6) < 0:
            raise InputError(f"--background must not be negative, found {self.background!r}")
        if self.wants_background and not (self.radius is not None and self.radius > 0):
            raise InputError("background boxes need --radius (angstrom): the distance their centres keep from "
                             "every annotated particle")


@dataclass
class TomogramBoxes:
    """The boxes of one tomogram: ``starts`` ``(n, 3)`` tile starts (z, y, x voxels) of ``spec.tile`` tiles,
    ``labels`` ``(n,)`` class indices, ``rows`` ``(n,)`` the row in table ``tables[i]`` of each box's particle
    (-1 and -1 for background), written from row ``offset`` of the dataset; ``skipped`` boxes crossed a face."""

    name: str
    tomogram: Tomogram
    spec: InputSpec
    starts: np.ndarray
    labels: np.ndarray
    rows: np.ndarray
    tables: np.ndarray
    offset: int = 0
    skipped: int = 0

    def __len__(self) -> int:
        return int(len(self.labels))


def open_tomograms(paths: Sequence[Path], voxel_size_override: float | None = None) -> dict[str, Tomogram]:
    """The tomograms by name (:func:`tomocam.extract.selection.tomogram_name`); two files of one name are refused."""
    tomograms: dict[str, Tomogram] = {}
    for path in paths:
        name = tomogram_name(path)
        if name in tomograms:
            raise InputError(f"two tomograms are named '{name}' ('{tomograms[name].path}' and '{path}'): tables "
                             "could not tell them apart")
        tomograms[name] = open_tomogram(path, voxel_size=voxel_size_override)
    return tomograms


def read_particles_of(tables: Sequence[Path], tomograms: dict[str, Tomogram],
                      classes: dict[str, str | None] | None) -> pd.DataFrame:
    """Every table's rows, checked and matched to the tomograms (:func:`select_particles`), dropped ones included
    (their ``class`` is missing): background boxes keep away from every annotated particle."""
    names = list(tomograms)
    frames = []
    for path in tables:
        frame = read_table(Path(path), tomograms, owner_of_table(Path(path), names))
        frames.append(select_particles(frame, Path(path), names, {n: t.shape for n, t in tomograms.items()},
                                       {n: t.voxel_size for n, t in tomograms.items()}, classes))
    particles = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    check_classes_present(particles, classes)
    return particles


def plan_boxes(tomograms: dict[str, Tomogram], particles: pd.DataFrame, tables: Sequence[Path],
               settings: ExtractSettings) -> tuple[list[TomogramBoxes], list[str]]:
    """Every box of the dataset, tomogram by tomogram, and the class names (the tables' kept classes sorted, then
    ``background`` when asked)."""
    kept = particles.dropna(subset=["class"])
    classes = sorted(set(kept["class"]))
    if not classes:
        raise InputError("the tables hold no particle of a kept class")
    classes = classes + ([BACKGROUND] if settings.wants_background else [])
    index = {c: i for i, c in enumerate(classes)}
    table_index = {str(p): i for i, p in enumerate(tables)}
    rng = np.random.default_rng(np.random.SeedSequence([settings.seed, 0xB0C5]))
    plans, offset = [], 0
    for name, tomo in tomograms.items():
        voxel = np.asarray(tomo.voxel_size, dtype=float)  # (z, y, x) angstrom
        spec = box_spec(settings.box, settings.voxel_size or float(voxel[-1]), tuple(voxel), invert=settings.invert)
        mine = particles[particles["tomogram"] == name]
        all_zyx = mine[["z", "y", "x"]].to_numpy(float) / voxel
        ours = mine.dropna(subset=["class"])
        shift = [round(settings.max_shift * (settings.voxel_size or v) / v) for v in voxel]
        centres, which = shifted(ours[["z", "y", "x"]].to_numpy(float) / voxel, settings.per_particle, shift, rng)
        starts = box_starts(centres, spec.tile)
        keep = inside(starts, spec.tile, tomo.shape)
        starts, which = starts[keep], which[keep]
        labels = ours["class"].map(index).to_numpy(np.int64)[which]
        rows = ours["row"].to_numpy(np.int64)[which]
        table_of = ours["table"].map(table_index).to_numpy(np.int64)[which]
        n_bg = settings.background_count(len(starts))
        if n_bg > 0:
            radius = float(settings.radius or 0) / voxel
            bg = box_starts(background_centres(tomo.shape, spec.tile, all_zyx, radius, n_bg, rng), spec.tile)
            starts = np.concatenate([starts, bg])
            labels = np.concatenate([labels, np.full(n_bg, index[BACKGROUND])])
            rows = np.concatenate([rows, np.full(n_bg, -1)])
            table_of = np.concatenate([table_of, np.full(n_bg, -1)])
        plans.append(TomogramBoxes(name, tomo, spec, starts, labels, rows, table_of, offset, int((~keep).sum())))
        offset += len(labels)
    counts = np.bincount(np.concatenate([p.labels for p in plans]).astype(np.int64), minlength=len(classes))
    if (counts == 0).any():
        empty = classes[int(np.flatnonzero(counts == 0)[0])]
        if empty == BACKGROUND:
            raise InputError("no background box: --background asks for a ratio of no particle boxes")
        raise InputError(f"class '{empty}' has no box: every one of its particles lies within half a box of a face "
                         f"of its tomogram (boxes that cross a face are skipped); a smaller --box keeps more")
    return plans, classes


def cut_boxes(job: TomogramBoxes, dataset: str) -> int:
    """Cut ``job``'s boxes from its memory-mapped tomogram, prepare them as explain prepares tiles, and write them
    to their rows of ``dataset``'s ``volumes``, :data:`BATCH` at a time. Returns the number of boxes written."""
    import torch
    import zarr

    from tomocam.models.inputs import prepare
    from tomocam.read import check_finite
    from tomocam.tile import release_pages

    volume = job.tomogram.array()
    out = zarr.open_array(f"{dataset}/volumes", mode="r+")
    for a in range(0, len(job), BATCH):
        starts = job.starts[a:a + BATCH]
        tiles = np.stack([np.asarray(volume[tuple(slice(s, s + t) for s, t in zip(row, job.spec.tile))],
                                     dtype=np.float32) for row in starts])  # (b, *tile)
        release_pages(volume)
        for tile, row in zip(tiles, starts):
            check_finite(tile, job.tomogram, tuple(int(v) for v in row))
        boxes = prepare(torch.from_numpy(tiles), job.spec)[:, 0].numpy()  # (b, s, s, s)
        out[job.offset + a:job.offset + a + len(starts)] = boxes
    return len(job)


def _cut_all(jobs: list[TomogramBoxes], dataset: str, workers: int) -> Iterator[TomogramBoxes]:
    """Cut every job (:func:`cut_boxes`), in this process or in ``workers`` processes; yields each job as it ends."""
    if workers == 1:
        for job in jobs:
            cut_boxes(job, dataset)
            yield job
        return
    import multiprocessing

    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_one_thread) as pool:
        futures = {pool.submit(cut_boxes, job, dataset): job for job in jobs}
        for future in as_completed(futures):
            future.result()
            yield futures[future]


def plan_sha256(extraction: Extraction) -> str:
    """A hash of everything an extraction writes (settings, classes, tables, every tomogram's boxes): a rerun
    with the same hash may finish an unfinished dataset."""
    digest = hashlib.sha256(repr((asdict(extraction.settings), extraction.classes)).encode())
    for table in extraction.tables:
        digest.update(_sha256(table).encode())
    for p in extraction.plans:
        digest.update(repr((p.name, p.tomogram.path, p.spec)).encode())
        for array in (p.starts, p.labels, p.rows, p.tables):
            digest.update(np.ascontiguousarray(array, dtype=np.int64).tobytes())
    return digest.hexdigest()


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class Extraction:
    """A planned extraction: every tomogram's boxes, the class names, the tables and the box settings."""

    plans: list[TomogramBoxes]
    classes: list[str]
    tables: list[Path]
    settings: ExtractSettings

    @property
    def n_boxes(self) -> int:
        """Boxes of every tomogram."""
        return sum(len(p) for p in self.plans)


def plan_extraction(tomogram_paths: Sequence[Path], tables: Sequence[Path],
                    settings: ExtractSettings = ExtractSettings(), *,
                    tomogram_voxel_size: float | None = None) -> Extraction:
    """Check the inputs and plan every box (headers and tables only; no voxels read, nothing written)."""
    settings.check()
    if not tomogram_paths or not tables:
        raise InputError("give at least one tomogram and one particle table (--particles)")
    tomograms = open_tomograms(tomogram_paths, tomogram_voxel_size)
    sizes = sorted({v for t in tomograms.values() for v in t.voxel_size})
    if settings.voxel_size is None and len(sizes) > 1:
        raise InputError(f"the tomograms' voxel sizes differ ({', '.join(f'{v:g}' for v in sizes)} A): give the "
                         "boxes' voxel size with --voxel-size")
    particles = read_particles_of(tables, tomograms, settings.classes)
    plans, classes = plan_boxes(tomograms, particles, tables, settings)
    return Extraction(plans, classes, [Path(t) for t in tables], settings)


def write_extraction(extraction: Extraction, out: Path, *, workers: int | None = None, command: str = "",
                     overwrite: bool = False, progress: Callable[[int, int], None] | None = None) -> Path:
    """Write the dataset (:mod:`tomocam.simulate.dataset`) of a planned extraction, its completion marker last.
    ``workers`` processes (default: the CPU count, at most one a tomogram) cut the tomograms at once;
    ``progress(done, total)`` as tomograms finish. An unfinished dataset of the same plan (:func:`plan_sha256`) at
    ``out`` is finished: the tomograms it records as written are not cut again."""
    from tomocam import __version__
    from tomocam.simulate.dataset import create_dataset, mark_complete, record_done, reopen_unfinished, write_origin

    plans, classes, settings = extraction.plans, extraction.classes, extraction.settings
    n = extraction.n_boxes
    voxel_size = settings.voxel_size or float(plans[0].tomogram.voxel_size[-1])
    attrs = {
        "classes": classes, "voxel_size": voxel_size, "box": settings.box, "seed": settings.seed,
        "polarity": "bright", "version": __version__,  # particles are bright, or made so by --invert
        "command": command,
        "extract": {**asdict(settings), "voxel_size": voxel_size},
        "tomograms": [{"name": p.name, "path": p.tomogram.path, "shape": list(p.tomogram.shape),
                       "voxel_size": list(p.tomogram.voxel_size), "tile": list(p.spec.tile), "boxes": len(p),
                       "skipped_at_faces": p.skipped} for p in plans],
        "tables": [{"path": str(t.resolve()), "sha256": _sha256(t)} for t in extraction.tables],
        "n_per_class": {c: int(sum((p.labels == i).sum() for p in plans)) for i, c in enumerate(classes)},
    }
    digest = attrs["plan_sha256"] = plan_sha256(extraction)
    group = None if overwrite else reopen_unfinished(out, digest)
    if group is None:
        group, _, labels = create_dataset(out, n, settings.box, attrs, overwrite=overwrite)
        labels[:] = np.concatenate([p.labels for p in plans]).astype(np.int32)
        write_origin(group, tomogram=np.concatenate([np.full(len(p), i) for i, p in enumerate(plans)]),
                     table=np.concatenate([p.tables for p in plans]), row=np.concatenate([p.rows for p in plans]),
                     centre=np.concatenate([box_centres(p.starts, p.spec.tile)[:, ::-1] * p.tomogram.voxel_size[::-1]
                                            for p in plans]))
    finished = set(group.attrs[ATTR_KEY].get("done", []))
    jobs = [p for p in plans if len(p) and p.name not in finished]
    done = n - sum(len(p) for p in jobs)
    if progress is not None:
        progress(done, n)
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs) or 1))
    for job in _cut_all(jobs, str(out), workers):
        record_done(group, job.name)
        done += len(job)
        if progress is not None:
            progress(done, n)
    mark_complete(group)
    return Path(out)


def extract_dataset(tomogram_paths: Sequence[Path], tables: Sequence[Path], out: Path,
                    settings: ExtractSettings = ExtractSettings(), *, tomogram_voxel_size: float | None = None,
                    workers: int | None = None, command: str = "", overwrite: bool = False,
                    progress: Callable[[int, int], None] | None = None) -> list[TomogramBoxes]:
    """Plan (:func:`plan_extraction`) and write (:func:`write_extraction`) a training dataset of boxes cut from
    ``tomogram_paths`` at the particles of ``tables``; returns each tomogram's boxes."""
    extraction = plan_extraction(tomogram_paths, tables, settings, tomogram_voxel_size=tomogram_voxel_size)
    write_extraction(extraction, out, workers=workers, command=command, overwrite=overwrite, progress=progress)
    return extraction.plans
