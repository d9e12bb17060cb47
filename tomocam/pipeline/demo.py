"""The demo: simulate a small tomogram of the built-in shapes, explain it, score it against the truth and draw an
overview. What ``tomocam demo`` runs; everything it writes goes into one folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tomocam.errors import CheckpointError, OutputError
from tomocam.pipeline.config import ExplainConfig
from tomocam.pipeline.run import RunSummary, explain_tomogram


@dataclass
class DemoResult:
    """Paths written, the explain summary, and the pointing-game rate per method (chance: 1 / classes)."""

    tomogram: Path
    store: Path
    overview: Path
    summary: RunSummary
    pointing: dict[str, float]
    n_particles: int
    classes: list[str]


def pointing_game(heat: np.ndarray, classes: list[str], particles) -> float:
    """Fraction of particles whose true class has the highest heatmap value at the particle's centre voxel.

    ``heat`` is ``(k, z, y, x)``; ``particles`` a table with ``class_name`` and ``x, y, z`` in voxels.
    """
    hits = []
    for row in particles.itertuples():
        if row.class_name not in classes:
            continue
        z, y, x = (int(round(v)) for v in (row.z, row.y, row.x))
        hits.append(int(np.argmax(heat[:, z, y, x])) == classes.index(row.class_name))
    return float(np.mean(hits)) if hits else float("nan")


def draw_overview(volume: np.ndarray, labels: np.ndarray, classes: list[str], particles, path: Path) -> None:
    """Central z slice: the tomogram, and the label image over it with the true particle centres marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    z = volume.shape[0] // 2
    cmap = plt.get_cmap("tab10")
    colours = ListedColormap([(0, 0, 0, 0)] + [cmap(i % 10) for i in range(len(classes))])
    fig, axes = plt.subplots(1, 2, figsize=(11, 5.5), constrained_layout=True)
    for ax in axes:
        ax.imshow(volume[z], cmap="gray")
        ax.set_axis_off()
    axes[0].set_title(f"tomogram, slice z = {z}")
    axes[1].imshow(labels[z], cmap=colours, vmin=0, vmax=len(classes), alpha=0.55, interpolation="nearest")
    near = particles[(particles.z - z).abs() < 4]
    for row in near.itertuples():
        if row.class_name in classes:
            axes[1].plot(row.x, row.y, "o", mfc="none", mec=cmap(classes.index(row.class_name) % 10), ms=12, mew=2)
    axes[1].set_title("Respond-CAM labels (fill) and true particles (circles)")
    axes[1].legend(handles=[Patch(color=cmap(i % 10), label=c) for i, c in enumerate(classes)],
                   loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
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
    methods), draw ``out/overview.png`` and score the pointing game against the truth."""
    import pandas as pd

    from tomocam.classes import is_background
    from tomocam.models import load_checkpoint
    from tomocam.simulate import Acquisition, builtin_structures, shape_names, simulate_tomogram, write_tomogram
    from tomocam.write import open_store

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
    pointing = {m: pointing_game(store.heatmap(m)[...], store.classes, particles) for m in store.methods}
    overview = out / "overview.png"
    draw_overview(sim.volume, store.labels()[...], store.classes, particles, overview)
    return DemoResult(
        paths["tomogram"], Path(summary.store), overview, summary, pointing, len(particles), store.classes
    )
