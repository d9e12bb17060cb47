"""Pick thresholds on simulated tomograms with known particles: the old fixed default (0) against the threshold
chosen from the data (median + 3 robust standard deviations of each class's heatmap peaks, ``tomocam picks``'s
default), with Otsu's threshold on the same peaks and the best F1 over all thresholds (an oracle that knows the
truth) beside them.

For each seed: simulate a tomogram of the built-in procedural shapes, explain it with Respond-CAM (the
pipeline of ``tomocam explain``, local Dask), pick each shape class (exclusive: a site goes to its highest
class, ``background`` included; non-maximum suppression at 0.8 of the smallest particle radius) and score
picks against the particle table (a pick matches a particle of its class within the smallest particle radius).
Prints precision, recall, F1 and picks per particle for each rule, per seed and averaged. Usage::

    python benchmarks/picks_threshold.py [--model M.pt] [--seeds 0 1 2 3] [--shape 64,128,128] [-n 30]
        [--snr 1] [--workdir DIR]   # stores in DIR are reused when present
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd


def _sweep():
    """``sweep`` of benchmarks/picks_respond_vs_grad.py (P/R/F1 at every threshold), imported from beside us."""
    path = Path(__file__).with_name("picks_respond_vs_grad.py")
    spec = importlib.util.spec_from_file_location("picks_respond_vs_grad", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="checkpoint (default: the bundled model)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--shape", default="64,128,128", help="tomogram z,y,x voxels")
    parser.add_argument("-n", "--n-particles", type=int, default=30)
    parser.add_argument("--snr", default="1")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()

    import torch
    from distributed import Client, LocalCluster
    from skimage.filters import threshold_otsu

    from tomocam.models import bundled_model_path, load_checkpoint
    from tomocam.particles import from_voxels
    from tomocam.picking import evaluate_picks, pick_store, store_tomogram
    from tomocam.pipeline import ExplainConfig, explain_tomogram
    from tomocam.simulate.acquisition import Acquisition
    from tomocam.simulate.shapes import builtin_structures, shape_names
    from tomocam.simulate.tomogram import simulate_tomogram, write_tomogram
    from tomocam.store import open_store

    sweep = _sweep()
    torch.set_num_threads(1)
    model = args.model or bundled_model_path()
    _, meta = load_checkpoint(model)
    structures = builtin_structures([c for c in meta.classes if c in shape_names()], voxel_size=meta.voxel_size)
    names = [s.name for s in structures]
    radius = 0.8 * min(s.radius for s in structures) * meta.voxel_size  # angstrom
    tolerance = min(s.radius for s in structures) * meta.voxel_size
    shape = tuple(int(v) for v in args.shape.split(","))
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="tomocam-threshold-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"model {model}; radius {radius:.0f} A, tolerance {tolerance:.0f} A; tomogram {shape}, "
          f"{args.n_particles} particles, SNR {args.snr}; seeds {args.seeds}; workdir {workdir}")
    rows = []
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        for seed in args.seeds:
            sim = simulate_tomogram(shape, structures, args.n_particles,
                                    acquisition=Acquisition(snr=float(args.snr)), seed=seed)
            out = workdir / f"tomo{seed}.zarr"
            try:
                store = open_store(out)
            except Exception:
                paths = write_tomogram(sim, workdir / f"tomo{seed}.mrc", overwrite=True)
                config = ExplainConfig(tomogram=str(paths["tomogram"]), output=str(out), model=str(model),
                                       overwrite=True)
                store = open_store(explain_tomogram(config, client=client).store)
            truth = from_voxels(store_tomogram(store), sim.table["class_name"].tolist(),
                                sim.table[["z", "y", "x"]].to_numpy())
            everything = pick_store(store, classes=names, threshold=-np.inf, radius=radius, exclusive=False)

            def score(picks: pd.DataFrame, truth=truth) -> dict:
                _, s = evaluate_picks(picks, truth, tolerance, classes=names)
                return {"precision": s.precision, "recall": s.recall, "f1": s.f1,
                        "picks/particle": len(picks) / len(truth)}

            def otsu(name: str, everything=everything) -> float:
                peaks = everything.loc[everything["class"] == name, "score"].to_numpy()
                return float(threshold_otsu(peaks)) if len(np.unique(peaks)) > 1 else -np.inf

            fixed = pick_store(store, classes=names, threshold=0.0, radius=radius)
            auto = pick_store(store, classes=names, radius=radius)
            exclusive = pick_store(store, classes=names, threshold=-np.inf, radius=radius)
            otsu_t = exclusive["class"].map({n: otsu(n) for n in names})
            curve = sweep(exclusive, truth, tolerance)
            best = curve.loc[curve["f1"].idxmax()]
            rows += [
                {"seed": seed, "rule": "0 (old default)", **score(fixed)},
                {"seed": seed, "rule": "median + 3 MAD sd (new default)", **score(auto)},
                {"seed": seed, "rule": "Otsu on peaks", **score(exclusive[exclusive["score"] > otsu_t])},
                {"seed": seed, "rule": "best F1 (oracle, one threshold)", **score(
                    exclusive[exclusive["score"] >= best["threshold"]])},
            ]
    table = pd.DataFrame(rows)
    pd.set_option("display.width", 160)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print("\nmean over seeds:")
    print(table.drop(columns=["seed"]).groupby("rule", sort=False).mean().to_string(float_format=lambda v: f"{v:.2f}"))


if __name__ == "__main__":
    main()
