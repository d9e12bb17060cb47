"""The demo recipe: simulate a small tomogram of the built-in shapes, explain it, score it against the truth and
draw an overview that explains itself. What ``tomocam demo`` runs; everything it writes goes into one folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tomocam.errors import CheckpointError, OutputError
from tomocam.pipeline import RunSummary, explain_tomogram
from tomocam.pipeline.config import ExplainConfig


@dataclass
class DemoResult:
    """Paths written, the explain summary, and per method the fraction of particles whose own class has the
    highest heatmap at their centre (``class_at_centre``; chance is ``1 / len(competing)``)."""

    tomogram: Path
    store: Path
    overview: Path
    summary: RunSummary
    class_at_centre: dict[str, float]
    n_particles: int
    competing: list[str]


def busiest_slice(z: np.ndarray, radii: np.ndarray, depth: int) -> int:
    """The z index in ``[0, depth)`` crossed by the most particles (centres ``z`` `(n,)`, radii `(n,)`, voxels);
    the lowest such index on ties."""
    planes = np.arange(depth)
    crossing = (np.abs(planes[:, None] - z[None, :]) < radii[None, :]).sum(axis=1)  # (depth,)
    return int(np.argmax(crossing))


def draw_overview(volume: np.ndarray, labels: np.ndarray, classes: list[str], particles, radii: dict[str, float],
                  path: Path) -> None:
    """One z slice (the one crossed by the most particles): the tomogram, and the label image over it with every
    particle that crosses the slice circled in the colour of its true class, at its radius in that slice.

    ``volume``, ``labels``: `(z, y, x)`; ``labels`` 0 = unlabelled, ``i + 1`` = ``classes[i]``. ``radii``: particle
    radius per class, voxels. The figure explains itself in a caption (what fill, circles and colours mean).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.artist import Artist
    from matplotlib.colors import ListedColormap
    from matplotlib.layout_engine import ConstrainedLayoutEngine
    from matplotlib.lines import Line2D
    from matplotlib.patches import Circle, Patch

    r = particles["class_name"].map(radii).to_numpy(np.float64)
    z = busiest_slice(particles["z"].to_numpy(np.float64), r, volume.shape[0])
    cmap = plt.get_cmap("tab10")
    colour = {c: cmap(i % 10) for i, c in enumerate(classes)}
    fills = ListedColormap([(0, 0, 0, 0)] + [colour[c] for c in classes])
    fig, axes = plt.subplots(1, 2, figsize=(12, 6.6), constrained_layout=True)
    for ax in axes:
        ax.imshow(volume[z], cmap="gray")
        ax.set_axis_off()
    axes[0].set_title(f"simulated tomogram, slice z = {z}\n(the slice crossed by the most particles)")
    axes[1].imshow(labels[z], cmap=fills, vmin=0, vmax=len(classes), alpha=0.55, interpolation="nearest")
    crossing = particles[np.abs(particles["z"].to_numpy() - z) < r]
    for row in crossing.itertuples():
        in_plane = np.sqrt(max(radii[row.class_name] ** 2 - (row.z - z) ** 2, 1.0))
        axes[1].add_patch(Circle((row.x, row.y), in_plane, fill=False, ec=colour[row.class_name], lw=2))
    axes[1].set_title(f"Respond-CAM label image (fill) and true particles (circles)\n{len(crossing)} of "
                      f"{len(particles)} particles cross this slice")
    shown = [c for c in classes if c in set(crossing["class_name"]) or (labels[z] == classes.index(c) + 1).any()]
    handles: list[Artist] = [Patch(color=colour[c], alpha=0.55, label=c) for c in shown]
    handles.append(Line2D([], [], color="black", marker="o", ls="", mfc="none", ms=10, label="a true particle"))
    axes[1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, title="class")
    fig.text(0.01, 0.01,
             "Fill: the class tomocam labels each voxel with (the class with the highest Respond-CAM heatmap, where "
             "it is strong enough; unfilled = no label).\nCircles: the simulated particles that cross this slice, "
             "outlined at their size in the slice, coloured by their TRUE class. A circle filled with its own "
             "colour\nis a particle found and classed right; another fill colour is a wrong class; no fill is a "
             "miss. The model was trained on the same built-in shapes.", fontsize=8, va="bottom")
    engine = fig.get_layout_engine()
    assert isinstance(engine, ConstrainedLayoutEngine)  # constrained_layout=True above
    engine.set(h_pad=0.5)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_demo(
    out: Path,
    *,
    model: Path,
    shape: tuple[int, int, int] = (64, 160, 160),
    n_particles: int = 24,
    snr: float = 4.0,
    seed: int = 0,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> DemoResult:
    """Simulate ``out/tomogram.mrc`` (with its truth), explain it into ``out/tomogram.zarr`` with ``model`` (both
    methods), draw ``out/overview.png`` and score the class at each particle's centre against the truth."""
    import pandas as pd

    from tomocam.classes import is_background
    from tomocam.evaluate.localisation import class_at_centres, competing_classes
    from tomocam.models import load_checkpoint
    from tomocam.simulate import Acquisition, builtin_structures, shape_names, simulate_tomogram, write_tomogram
    from tomocam.store import open_store

    _, meta = load_checkpoint(model)
    names = [c for c in meta.classes if not is_background(c)]
    unknown = [c for c in names if c not in shape_names()]
    if unknown:
        raise CheckpointError(
            f"the demo simulates the built-in shapes, but model '{model}' has other classes ({', '.join(unknown)})"
        )
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise OutputError(f"demo folder '{out}' is not empty; pass --overwrite to replace its contents")
    structures = builtin_structures(names, voxel_size=meta.voxel_size)
    sim = simulate_tomogram(shape, structures, n_particles, acquisition=Acquisition(snr=snr), seed=seed)
    if meta.polarity == "dark":
        sim = type(sim)(-sim.volume, sim.table, sim.mask, sim.classes, sim.voxel_size)
    paths = write_tomogram(sim, out / "tomogram.mrc", overwrite=True)
    config = ExplainConfig(
        tomogram=str(paths["tomogram"]), output=str(out / "tomogram.zarr"), model=str(model),
        methods=("respond", "gradcam"), overwrite=True, command=f"tomocam demo -o {out}",
    )
    summary = explain_tomogram(config, workers=workers, progress=progress)
    store = open_store(summary.store)
    particles = pd.read_csv(paths["particles"])
    competing = competing_classes(store.classes)
    class_at_centre = {m: float(np.mean(class_at_centres(store.full_grid(m, chunk=8), particles, store.classes)
                                        == particles["class_name"].to_numpy(dtype=object))) for m in store.methods}
    overview = out / "overview.png"
    radii = {s.name: s.radius for s in structures}
    draw_overview(sim.volume, store.labels()[...], store.classes, particles, radii, overview)
    return DemoResult(paths["tomogram"], Path(summary.store), overview, summary, class_at_centre, len(particles),
                      competing)
