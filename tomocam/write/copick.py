"""Export an explain store into a copick project: picks per class, the label image, heatmaps as a feature map.

What is written, under user id ``tomocam`` and a session id (layout: :mod:`tomocam.write.copick_project`):

- ``Picks/tomocam_<session>_<object>.json`` for every store class that names a particle object of the config
  and has picks: the picks ``tomocam picks`` gives (:func:`tomocam.picking.pick_store`, one radius per object),
  with scores, written by the particle-table room (:func:`tomocam.particles.write_particles`);
- ``Segmentations/<vs>_tomocam_<session>_labels-multilabel.zarr``: the store's label image (level 0), each
  class's voxels set to its object's ``label`` from the config, uint8 (uint16 only for labels above 255);
- ``VoxelSpacing<vs>/<tomo type>_tomocam-<session>-<method>_features.zarr`` beside the tomogram: the chosen
  classes' heatmaps on the tomogram's grid (:meth:`ExplainStore.full_grid`), one channel per class, computed
  and written chunk by chunk, float32 or float16.

Zarr groups are OME-NGFF 0.4 on zarr format 2 (:mod:`tomocam.write.copick_zarr`). Positions are angstrom in the
frame copick and tomocam share: the centre of the first voxel at 0, voxel ``i`` at ``i * voxel size``.

Nothing appears under a final name before everything is written: each result is written into a hidden
``.tomocam-<session>-partial`` folder beside its final place (copick lists neither hidden names nor subfolders
there) and all are renamed into place at the end; a failure removes them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr

import tomocam
from tomocam.classes import is_background
from tomocam.errors import ClassError, InputError, OutputError
from tomocam.particles import TomogramInfo, write_particles
from tomocam.picking import pick_store
from tomocam.store import ExplainStore
from tomocam.store.select import select_classes, select_methods
from tomocam.write.copick_project import WritableProject, check_name, sanitize_name, voxel_folder
from tomocam.write.copick_zarr import write_features, write_segmentation

#: The copick user id of everything tomocam writes.
USER = "tomocam"
#: Name of the multilabel segmentation (``<vs>_tomocam_<session>_labels-multilabel.zarr``).
SEGMENTATION = "labels"
#: Default colour of objects added to the config (copick's default, RGBA).
_COLOUR = [100, 100, 100, 255]


@dataclass
class Staging:
    """Results written beside their final places under hidden names, renamed into place together.

    :meth:`path` gives where to write a result, :meth:`commit` moves all of them to their final names (replacing
    what is there; a result left unwritten, having nothing in it, removes what an earlier export left under its
    name), :meth:`abort` removes them.
    """

    session: str
    moves: list[tuple[Path, Path]] = field(default_factory=list)
    created: list[Path] = field(default_factory=list)  # folders made on the way, removed again by abort

    def path(self, final: Path) -> Path:
        """A fresh temporary path for ``final`` (a leftover of an interrupted export is removed)."""
        folder = final.parent / f".tomocam-{self.session}-partial"
        self.created += [p for p in (folder, *folder.parents) if not p.exists()]
        folder.mkdir(parents=True, exist_ok=True)
        temporary = folder / final.name
        _remove(temporary)
        self.moves.append((temporary, final))
        return temporary

    def commit(self) -> None:
        """Rename every result to its final name; a replaced result is removed only after its successor is in."""
        for temporary, final in self.moves:
            if not temporary.exists():
                _remove(final)
            elif final.exists():
                old = temporary.with_name(temporary.name + ".old")
                _remove(old)
                os.replace(final, old)
                os.replace(temporary, final)
                _remove(old)
            else:
                os.replace(temporary, final)
        self._clean()

    def abort(self) -> None:
        """Remove every temporary result."""
        for temporary, _ in self.moves:
            _remove(temporary)
        self._clean()
        for folder in sorted(set(self.created), key=lambda p: len(p.parts), reverse=True):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()

    def _clean(self) -> None:
        for folder in {t.parent for t, _ in self.moves}:
            shutil.rmtree(folder, ignore_errors=True)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def match_objects(
    project: WritableProject, classes: Sequence[str], *, add: bool, radius: float | None = None
) -> tuple[WritableProject, dict[str, dict[str, Any]], list[str]]:
    """The pickable object of each class: the object named like the class, or like the class as copick would
    name it (:func:`sanitize_name`: ``ribosome_80S`` -> ``ribosome-80S``).

    With ``add``, a class without one gets a new particle object (the next free ``label``, ``radius`` if given)
    in the returned project (not yet saved); without, :class:`ClassError` names the class and the objects there
    are. Returns the project, ``{class: object}`` and the names of the objects added.
    """
    objects = {str(o.get("name")): o for o in project.objects}
    found: dict[str, dict[str, Any]] = {}
    missing = []
    for name in classes:
        obj = objects.get(name) or objects.get(sanitize_name(name))
        if obj is None:
            missing.append(name)
        else:
            found[name] = obj
    if missing and not add:
        raise ClassError(
            f"class {missing[0]!r}{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''} maps to no "
            f"pickable object of copick config {project.config_path} (its objects: "
            f"{', '.join(objects) or 'none'}); add an object named {sanitize_name(missing[0]) or missing[0]!r} "
            "or pass --add-objects"
        )
    added = []
    used = {_label(o) for o in project.objects}
    for name in missing:
        new_name = check_name("object", sanitize_name(name) or name)
        label = max(used | {0}) + 1
        used.add(label)
        obj = {"name": new_name, "is_particle": True, "label": label, "color": _COLOUR}
        if radius is not None:
            obj["radius"] = radius
        found[name] = obj
        added.append(obj)
    labels = [_label(o) for o in found.values()]
    if len(set(labels)) != len(labels):
        pairs = ", ".join(f"{c}={_label(o)}" for c, o in found.items())
        raise InputError(f"copick config {project.config_path}: the store's classes map to objects that share a "
                         f"label ({pairs})")
    return (project.with_objects(added) if added else project), found, [o["name"] for o in added]


def _label(obj: dict[str, Any]) -> int:
    """A pickable object's label (copick's default: 1)."""
    return int(obj.get("label") or 1)


def _isotropic(store: ExplainStore) -> float:
    sizes = store.voxel_size
    if max(sizes) - min(sizes) > 1e-6 * max(sizes):
        raise InputError(f"store '{store.path}' has voxel size {tuple(sizes)} (z, y, x); copick projects keep one "
                         "voxel size for all axes")
    return float(sizes[0])


def _tomogram(
    project: WritableProject, store: ExplainStore, run: str, voxel_size: float, tomo_type: str | None
) -> tuple[str, Path] | None:
    """The copick tomogram the store explains: ``tomo_type``, else the store's input if it is one of the run's
    tomograms at this voxel size, else the only one there; ``None`` if there is none to choose."""
    tomograms = project.tomograms(run, voxel_size)
    where = f"run '{run}' at {voxel_folder(voxel_size)}"
    if tomo_type is not None:
        if tomo_type not in tomograms:
            raise InputError(f"copick project {project.config_path} has no tomogram '{tomo_type}' in {where} "
                             f"(there: {', '.join(tomograms) or 'none'})")
        return tomo_type, tomograms[tomo_type]
    source = Path(store.input_path).absolute()  # a copick tomogram, or one level of it
    for name, path in tomograms.items():
        if path.absolute() in (source, source.parent):
            return name, path
    if len(tomograms) == 1:
        return next(iter(tomograms.items()))
    return None


def _check_shape(path: Path, store: ExplainStore) -> None:
    """Refuse a tomogram whose level 0 is not the grid the store's maps are on."""
    try:
        group = zarr.open_group(str(path), mode="r")
        level0 = group.attrs["multiscales"][0]["datasets"][0]["path"]
        shape = tuple(group[level0].shape[-3:])
    except (KeyError, IndexError, TypeError, ValueError, OSError) as err:
        raise InputError(f"copick tomogram '{path}' is not an OME-Zarr image: {err}") from None
    if shape != tuple(store.shape):
        raise InputError(f"copick tomogram '{path}' is {'x'.join(map(str, shape))} voxels (z, y, x) but store "
                         f"'{store.path}' explains a {'x'.join(map(str, store.shape))} tomogram")


def _ensure_folder(path: Path) -> None:
    """A run or voxel-spacing folder in the overlay, with the ``.meta`` file copick's ``ensure`` writes."""
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True)
        (path / ".meta").write_text("meta")


@dataclass
class CopickExport:
    """What :func:`export_copick` wrote: the final paths, per-class pick thresholds, and the objects added."""

    paths: list[Path]
    thresholds: dict[str, float]
    added: list[str]


@dataclass
class _ExportPlan:
    """What an export writes, found from the store and the project before anything is written."""

    project: WritableProject
    voxel_size: float
    method: str
    classes: list[str]  # the store's classes that get picks and labels (background left out)
    objects: dict[str, dict[str, Any]]  # class -> its pickable object in the config
    added: list[str]  # objects added to the config
    radii: dict[str, float]  # class -> pick radius, angstrom, for the classes that get picks
    features: list[str]  # classes whose heatmaps become the feature map
    targets: list[tuple[str, Path]]  # (a class, "labels" or "features"; its final path)


def _plan_export(
    store: ExplainStore,
    project: WritableProject,
    run: str,
    session: str,
    *,
    tomo_type: str | None,
    voxel_size: float | None,
    method: str | None,
    feature_classes: Sequence[str],
    picks: bool,
    labels: bool,
    radius: float | None,
    add_objects: bool,
) -> _ExportPlan:
    """Check every choice of :func:`export_copick` against the store and the project; its targets."""
    check_name("session", session)
    if radius is not None and radius <= 0:
        raise InputError(f"--radius must be > 0 angstrom, found {radius:g}")
    if not project.run_dirs(run):
        raise InputError(f"copick project {project.config_path} has no run '{run}' (runs: "
                         f"{', '.join(project.runs()) or 'none'})")
    store_size = _isotropic(store)
    vs = store_size if voxel_size is None else float(voxel_size)
    if f"{vs:.3f}" != f"{store_size:.3f}":
        raise InputError(f"store '{store.path}' is at {store_size:g} A per voxel, not {vs:g}: its maps are on the "
                         "grid of the tomogram it explains")
    methods = select_methods(store, [method] if method else None)
    method = method or ("respond" if "respond" in methods else methods[0])
    features = select_classes(store, feature_classes) if feature_classes else []
    tomogram = _tomogram(project, store, run, vs, tomo_type)
    if tomogram is not None:
        _check_shape(tomogram[1], store)
    elif features:
        there = project.tomograms(run, vs)
        raise InputError("feature maps are written beside a tomogram: "
                         + (f"give --tomo-type (one of {', '.join(there)})" if there else
                            f"copick project {project.config_path} has no tomogram in run '{run}' at "
                            f"{voxel_folder(vs)}"))
    classes = [c for c in store.classes if not is_background(c)] if (picks or labels) else []
    project, objects, added = match_objects(project, classes, add=add_objects, radius=radius)
    picked = [c for c in classes if picks and objects[c].get("is_particle", True)]
    given = {c: radius if radius is not None else objects[c].get("radius") for c in picked}
    no_radius = [objects[c]["name"] for c, r in given.items() if r is None or float(r) <= 0]
    if no_radius:
        raise InputError(f"copick object {no_radius[0]!r} has no radius in {project.config_path}; give --radius "
                         "(angstrom) to pick particles")
    targets: list[tuple[str, Path]] = [(c, project.picks_path(run, USER, session, objects[c]["name"])) for c in picked]
    if labels:
        targets.append(("labels", project.segmentation_path(run, vs, USER, session, SEGMENTATION)))
    if features and tomogram is not None:
        feature = check_name("feature", f"{USER}-{session}-{method}")
        targets.append(("features", project.features_path(run, vs, tomogram[0], feature)))
    radii = {c: float(r) for c, r in given.items() if r is not None}
    return _ExportPlan(project, vs, method, classes, objects, added, radii, features, targets)


def _write_target(
    store: ExplainStore,
    plan: _ExportPlan,
    what: str,
    path: Path,
    *,
    run: str,
    session: str,
    threshold: float | None,
    float16: bool,
    say: Callable[[str], None],
) -> float | None:
    """Write one target of ``plan`` to ``path`` (its staging place); the threshold used for a class's picks."""
    provenance = {"version": tomocam.__version__, "store": str(Path(store.path).absolute()), "method": plan.method}
    if what == "labels":
        lut = np.zeros(len(store.classes) + 1, np.int64)
        for c in plan.classes:
            lut[store.classes.index(c) + 1] = _label(plan.objects[c])
        say(f"labels -> {path.name}")
        write_segmentation(store, lut, path, plan.voxel_size, {
            **provenance, "labels": {c: int(lut[store.classes.index(c) + 1]) for c in plan.classes}})
        return None
    if what == "features":
        say(f"features of {', '.join(plan.features)} -> {path.name}")
        write_features(store, plan.method, plan.features, path, plan.voxel_size, float16=float16,
                       provenance=provenance)
        return None
    table = pick_store(store, method=plan.method, classes=[what], threshold=threshold, radius=plan.radii[what])
    say(f"{len(table)} picks of {what}" + (f" -> {path.name}" if len(table) else ": no file"))
    frame = table.assign(tomogram=run, **{"class": plan.objects[what]["name"]})
    # An empty table names no run or object, so a class without picks gets no file (and loses one an earlier
    # export wrote).
    if len(frame):
        write_particles(frame, path, "copick", tomograms={run: TomogramInfo(run, store.shape, plan.voxel_size)},
                        user_id=USER, session_id=session, overwrite=True)
    return float(table.attrs["thresholds"][what])


def export_copick(
    store: ExplainStore,
    project: WritableProject,
    run: str,
    *,
    session: str = "0",
    tomo_type: str | None = None,
    voxel_size: float | None = None,
    method: str | None = None,
    feature_classes: Sequence[str] = (),
    picks: bool = True,
    labels: bool = True,
    radius: float | None = None,
    threshold: float | None = None,
    add_objects: bool = False,
    float16: bool = False,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
) -> CopickExport:
    """Write the store's picks, label image and the heatmaps of ``feature_classes`` into ``run`` of ``project``.

    Picks and labels cover every class of the store but the background ones; each must map to a pickable object
    (:func:`match_objects`; ``add_objects`` adds the missing ones to the config). Picks are written for particle
    objects, with ``radius`` (angstrom) or else the object's own radius, and ``threshold`` (default: chosen per
    class from the data). ``voxel_size`` (default the store's) must be the store's; ``tomo_type`` names the
    tomogram the features go beside (default: the one the store explains, or the only one). Every check runs and
    every target is refused if it exists (unless ``overwrite``) before anything is written; each is written under
    a hidden staging name and renamed into place once all are written.
    """
    say = progress or (lambda _: None)
    plan = _plan_export(store, project, run, session, tomo_type=tomo_type, voxel_size=voxel_size, method=method,
                        feature_classes=feature_classes, picks=picks, labels=labels, radius=radius,
                        add_objects=add_objects)
    existing = [str(p) for _, p in plan.targets if p.exists()]
    if existing and not overwrite:
        raise OutputError(f"copick export target exists already: {', '.join(existing)}; pass --overwrite to replace")
    staging = Staging(session)
    thresholds: dict[str, float] = {}
    try:
        for what, final in plan.targets:
            used = _write_target(store, plan, what, staging.path(final), run=run, session=session,
                                 threshold=threshold, float16=float16, say=say)
            if used is not None:
                thresholds[what] = used
        if plan.added:
            plan.project.save()
        _ensure_folder(plan.project.overlay_run(run))
        if any(what == "features" for what, _ in plan.targets):
            _ensure_folder(plan.project.overlay_run(run) / voxel_folder(plan.voxel_size))
        staging.commit()
    except OutputError:
        staging.abort()
        raise
    except OSError as err:
        staging.abort()
        raise OutputError(f"cannot write into copick project {project.config_path}: {err.strerror or err}") from err
    except BaseException:
        staging.abort()
        raise
    return CopickExport([p for _, p in plan.targets if p.exists()], thresholds, plan.added)
