"""Store names of a dataset's tomograms: ``OUT/<name>.zarr``, unique and stable.

A tomogram's name is its file name without the extension (``TS_01.mrc`` -> ``TS_01``), the name users know and
the one ``tomocam explain TOMOGRAM`` gives its store. Tomograms that share it (``TS_01/tomo.mrc`` and
``TS_02/tomo.mrc``, the usual layout of a data-portal download) get their parent folders' names in front, as many
as it takes (``TS_01_tomo``, ``TS_02_tomo``); files in one folder that differ only by extension get every folder
and the extension (``data_tomo_mrc``, ``data_tomo_rec``). Names depend on the set of paths only, never on their
order, and names already given (from the dataset index of an earlier run) are kept, so adding tomograms to a
dataset never renames a store that exists. An OME-Zarr image is named by its folder (``TS_01.zarr`` or a level
of it, ``TS_01.zarr/1`` -> ``TS_01``), and copick's ``VoxelSpacing*`` folders are left out of names, so the
runs of a copick project are named ``<run>_<tomo type>`` (``TS_01_wbp``), as a single copick run's store is.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import PurePath


def _candidate(path: str, depth: int) -> str:
    """``path``'s stem with its ``depth`` nearest parent folders' names in front, joined by ``_``; past the root,
    the extension at the end."""
    p = PurePath(path)
    if p.name.isdigit() and p.parent.suffix == ".zarr":  # a pyramid level of an OME-Zarr image: the image
        p = p.parent
    parents = [q for q in p.parent.parts if q not in (p.anchor, "") and not q.startswith("VoxelSpacing")]
    if depth <= len(parents):
        return "_".join([*parents[len(parents) - depth:], p.stem])
    return "_".join([*parents, p.stem, p.suffix.lstrip(".")]).strip("_")


def store_names(paths: Iterable[str], known: Mapping[str, str] | None = None) -> dict[str, str]:
    """A unique store name for each of ``paths`` (absolute, distinct): ``known`` names kept, the others made from
    the file name and, where names collide, the parent folders (see the module docstring). A name that still
    collides once every folder is in it (only with a known name) gets a number: ``tomo_2``."""
    paths = list(paths)
    known = dict(known or {})
    names = {p: known[p] for p in paths if p in known}
    depth = {p: 0 for p in sorted(paths) if p not in names}  # sorted: the same names whatever the order given
    while depth:
        groups: defaultdict[str, list[str]] = defaultdict(list)
        for p, d in depth.items():
            groups[_candidate(p, d)].append(p)
        taken = set(names.values())
        clashing = [p for n, ps in groups.items() if len(ps) > 1 or n in taken for p in ps]
        for n, ps in groups.items():
            if len(ps) == 1 and n not in taken:
                names[ps[0]] = n
                del depth[ps[0]]
        stuck = [p for p in clashing if _candidate(p, depth[p] + 1) == _candidate(p, depth[p])]
        for p in clashing:
            depth[p] += 1
        for p in stuck:  # every folder is in the name already
            base, i = _candidate(p, depth[p]), 2
            while f"{base}_{i}" in set(names.values()) | set(groups):
                i += 1
            names[p] = f"{base}_{i}"
            del depth[p]
    return {p: names[p] for p in paths}
