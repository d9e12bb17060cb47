"""Particle picking from Respond-CAM vs Grad-CAM heatmaps on simulated tomograms with known particles.

For each seed: simulate a tomogram with the built-in procedural shapes (``tomocam simulate tomogram``'s
library), explain it with both methods (``tomocam explain``'s pipeline, local Dask), pick every positive
local maximum of each class heatmap (exclusive: a site goes to its highest class; non-maximum suppression at
the particle radius), and score the picks against the particle table at a distance tolerance.

The two methods' heatmaps have different scales, so no single threshold is fair to both: the table gives,
per method, precision/recall/F1 at the threshold with the best F1 (found by sweeping thresholds over the
pick scores), the average precision over the ranked picks, precision/recall with the threshold set at
a fixed fraction of each store's largest heatmap value, and the best F1 when any pick near any particle
counts (localisation alone, class ignored). A pick matches a particle of its class within the smallest
particle radius; non-maximum suppression uses 0.8 of it. Usage::

    python benchmarks/picks_respond_vs_grad.py [--model M.pt] [--seeds 0 1 2] [--shape 64,128,128] [-n 30]
        [--snr inf] [--tolerance A] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd


def sweep(picks: pd.DataFrame, truth: pd.DataFrame, tolerance: float) -> pd.DataFrame:
    """Precision, recall and F1 (over every class of ``truth``) of the picks above each distinct score."""
    from tomocam.picking import evaluate_picks

    scores = np.sort(picks["score"].unique())[::-1]
    if len(scores) > 200:
        scores = np.quantile(picks["score"], np.linspace(1, 0, 200))
    rows = []
    for t in scores:
        _, s = evaluate_picks(picks[picks["score"] >= t], truth, tolerance, classes=sorted(set(truth["class"])))
        rows.append({"threshold": t, "picks": s.true_positives + s.false_positives, "precision": s.precision,
                     "recall": s.recall, "f1": s.f1})
    return pd.DataFrame(rows)


def average_precision(curve: pd.DataFrame) -> float:
    """Area under the precision-recall curve of the sweep (step-wise, recall increasing)."""
    curve = curve.sort_values("recall")
    recall = np.concatenate([[0.0], curve["recall"].to_numpy()])
    precision = np.maximum.accumulate(curve["precision"].to_numpy()[::-1])[::-1]
    return float(np.sum(np.diff(recall) * precision))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="checkpoint (default: the bundled model)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--shape", default="64,128,128", help="tomogram z,y,x voxels")
    parser.add_argument("-n", "--n-particles", type=int, default=30)
    parser.add_argument("--snr", default="inf")
    parser.add_argument("--fraction", type=float, default=0.2, help="fixed threshold: fraction of the max")
    parser.add_argument("--tolerance", type=float, default=None,
                        help="match distance, angstrom (default: the smallest particle radius)")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()

    import torch
    from distributed import Client, LocalCluster

    from tomocam.models import bundled_model_path, load_checkpoint
    from tomocam.particles import read_particles
    from tomocam.picking import evaluate_picks, pick_store
    from tomocam.pipeline import ExplainConfig, explain_tomogram
    from tomocam.simulate.acquisition import Acquisition
    from tomocam.simulate.shapes import builtin_structures, shape_names
    from tomocam.simulate.tomogram import simulate_tomogram, write_tomogram
    from tomocam.store import open_store

    torch.set_num_threads(1)
    model = args.model or bundled_model_path()
    _, meta = load_checkpoint(model)
    structures = builtin_structures([c for c in meta.classes if c in shape_names()], voxel_size=meta.voxel_size)
    radius = 0.8 * min(s.radius for s in structures) * meta.voxel_size  # angstrom
    tolerance = args.tolerance or min(s.radius for s in structures) * meta.voxel_size  # particles >= 2 radii apart
    shape = tuple(int(v) for v in args.shape.split(","))
    snr = float(args.snr)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="tomocam-picks-"))
    print(f"model {model} ({', '.join(meta.classes)}); shapes {[s.name for s in structures]}; "
          f"radius {radius:.0f} A, tolerance {tolerance:.0f} A; tomogram {shape}, {args.n_particles} particles, "
          f"SNR {args.snr}; seeds {args.seeds}; workdir {workdir}")
    results = []
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster:
        with Client(cluster) as client:
            for seed in args.seeds:
                sim = simulate_tomogram(shape, structures, args.n_particles, acquisition=Acquisition(snr=snr),
                                        seed=seed)
                paths = write_tomogram(sim, workdir / f"tomo{seed}.mrc", overwrite=True)
                config = ExplainConfig(tomogram=str(paths["tomogram"]), output=str(workdir / f"tomo{seed}.zarr"),
                                       model=str(model), methods=("respond", "gradcam"), overwrite=True)
                store = open_store(explain_tomogram(config, client=client).store)
                truth = read_particles(paths["particles"], tomogram=paths["tomogram"].stem)
                for method in ("respond", "gradcam"):
                    # Only the shape classes pick; "background" still competes for each site (exclusive).
                    picks = pick_store(store, method=method, classes=[s.name for s in structures], threshold=0.0,
                                       radius=radius)
                    curve = sweep(picks, truth, tolerance)
                    anyclass = sweep(picks.assign(**{"class": "particle"}), truth.assign(**{"class": "particle"}),
                                     tolerance)
                    best = curve.loc[curve["f1"].idxmax()] if len(curve) else None
                    peak = float(np.asarray(store.heatmap(method, store.n_levels - 1)).max())
                    fixed = picks[picks["score"] >= args.fraction * peak]
                    _, at_fixed = evaluate_picks(fixed, truth, tolerance, classes=sorted(set(truth["class"])))
                    results.append({
                        "seed": seed, "method": method, "particles": len(truth),
                        "best_f1": 0.0 if best is None else best["f1"],
                        "precision@best": 0.0 if best is None else best["precision"],
                        "recall@best": 0.0 if best is None else best["recall"],
                        "AP": average_precision(curve) if len(curve) else 0.0,
                        "best_f1_any_class": anyclass["f1"].max() if len(anyclass) else 0.0,
                        f"precision@{args.fraction:g}max": at_fixed.precision,
                        f"recall@{args.fraction:g}max": at_fixed.recall,
                    })
    table = pd.DataFrame(results)
    pd.set_option("display.width", 160)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print("\nmean over seeds:")
    print(table.drop(columns=["seed", "particles"]).groupby("method", sort=False).mean()
          .to_string(float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
