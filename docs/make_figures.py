"""Make the example figures under docs/ with tomocam's own commands (the README's "Looking at results").

Simulates a small tomogram of the model's built-in shapes, explains it with Respond-CAM and Grad-CAM, draws
the store overview and class montages through one particle, picks particles and scores them against the
simulated truth, and draws the paper's Fig. 3 and Fig. 4 for one subtomogram cut around that particle.
Each step is a ``tomocam`` command, printed before it runs. Usage::

    python docs/make_figures.py [--model M.pt] [--workdir DIR]   # a few minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent


def tomocam(*args: str) -> None:
    """Run one ``tomocam`` command (the console script of this interpreter), echoing it first."""
    print("$ tomocam " + " ".join(shlex.quote(a) for a in args), flush=True)
    subprocess.run([sys.executable, "-m", "tomocam", *args], check=True)


def main() -> None:
    """Simulate, explain, render and pick, printing each ``tomocam`` command."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="checkpoint (default: the bundled model)")
    parser.add_argument("--workdir", type=Path, default=None, help="where the tomogram and store go")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()

    import mrcfile
    import numpy as np
    import pandas as pd

    from tomocam.models import bundled_model_path, load_checkpoint
    from tomocam.simulate.shapes import shape_names

    model = args.model or bundled_model_path()
    _, meta = load_checkpoint(model)
    shapes = [c for c in meta.classes if c in shape_names()]
    work = args.workdir or Path(tempfile.mkdtemp(prefix="tomocam-docs-"))
    tomo, store = work / "example.mrc", work / "example.zarr"
    model_opt = ["--model", str(model)]

    tomocam("simulate", "tomogram", str(tomo), "--shape", "64,128,128", "-n", "24", "--shapes", ",".join(shapes),
            "--voxel-size", str(meta.voxel_size), "--snr", "1", "--seed", str(args.seed), "--overwrite")
    tomocam("explain", str(tomo), *model_opt, "-m", "respond", "-m", "gradcam", "-o", str(store), "--overwrite")
    truth = pd.read_csv(work / "example_particles.csv")
    first = truth.iloc[0]
    at = tuple(int(round(first[a])) for a in ("z", "y", "x"))
    other = next(c for c in shapes if c != first["class_name"])
    tomocam("render", str(store), "-o", str(DOCS), "--at", ",".join(map(str, at)), "-c", first["class_name"],
            "-c", other, "--dpi", "90", "--overwrite")
    from tomocam.store import open_store

    opened = open_store(store)
    radius = meta.input_size * meta.voxel_size / 4  # a quarter tile: the built-in shapes are ~100 A in radius
    for method in ("respond", "gradcam"):
        # the two methods' maps differ in scale: threshold each at a fifth of its largest value
        peak = float(np.asarray(opened.heatmap(method, opened.n_levels - 1)).max())
        tomocam("picks", str(store), "-m", method, "--radius", f"{radius:g}", "--threshold", f"{0.2 * peak:.3g}",
                "--tolerance", "150", "--truth", str(work / "example_particles.csv"), "--overwrite")

    # One subtomogram of the model's input size around the first particle, for Fig. 3 and Fig. 4.
    s = meta.input_size
    with mrcfile.mmap(tomo, mode="r") as mrc:
        lo = [int(np.clip(c - s // 2, 0, n - s)) for c, n in zip(at, mrc.data.shape)]
        box = np.array(mrc.data[tuple(slice(v, v + s) for v in lo)], dtype=np.float32)
    particle = work / "particle.mrc"
    with mrcfile.new(particle, overwrite=True) as mrc:
        mrc.set_data(box)
        mrc.voxel_size = meta.voxel_size
    tomocam("render", str(particle), *model_opt, "-o", str(DOCS), "--dpi", "90", "--overwrite")
    print(f"figures in {DOCS}; tomogram, store and picks in {work}")


if __name__ == "__main__":
    main()
