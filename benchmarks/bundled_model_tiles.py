"""Quality check of a model on tiles cut from a simulated tomogram, as `tomocam explain` cuts them.

Simulates a tomogram of the built-in shapes (ground truth known), cuts 40^3 tiles at half-tile stride, normalises
them as the checkpoint says and classifies them. A tile's true label is the class of the particle whose centre lies
in its central cell (within stride/2 voxels of the tile centre on every axis), else "background", the rule the
bundled model was trained with. Prints per-class recall and precision and the overall tile accuracy. Usage::

    python benchmarks/bundled_model_tiles.py [--model tomocam/bundled/default.pt] [--snr 1] [--seeds 0 1]
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np
import torch

from tomocam.models import bundled_model_path, load_checkpoint, normalise
from tomocam.simulate import Acquisition, builtin_structures, simulate_tomogram


def tile_truth(table, starts_zyx: list[tuple[int, int, int]], tile: int, stride: int, background: int) -> np.ndarray:
    """True class per tile ``(t,)``: the particle whose centre is nearest the tile centre, if within stride/2."""
    centres = table[["z", "y", "x"]].to_numpy()  # (p, 3)
    out = np.full(len(starts_zyx), background)
    for i, s in enumerate(starts_zyx):
        offset = np.abs(centres - (np.asarray(s) + (tile - 1) / 2))
        inside = np.flatnonzero(offset.max(axis=1) <= stride / 2)
        if inside.size:
            out[i] = table.class_index.to_numpy()[inside[np.argmin(offset[inside].sum(axis=1))]]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(bundled_model_path()))
    parser.add_argument("--snr", type=float, default=1.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--shape", type=int, nargs=3, default=[100, 200, 200])
    parser.add_argument("--particles", type=int, default=40)
    args = parser.parse_args()
    model, meta = load_checkpoint(args.model)
    tile, stride = meta.input_size, meta.input_size // 2
    shapes = builtin_structures(None, meta.voxel_size)
    names = [s.name for s in shapes]
    if meta.classes[: len(names)] != names:
        raise SystemExit(f"model classes {meta.classes} do not start with the built-in shapes {names}")
    background = meta.classes.index("background") if "background" in meta.classes else len(names)
    truth, pred = [], []
    for seed in args.seeds:
        sim = simulate_tomogram(tuple(args.shape), shapes, args.particles, acquisition=Acquisition(snr=args.snr),
                                seed=seed)
        starts = list(itertools.product(*(range(0, n - tile + 1, stride) for n in sim.volume.shape)))
        tiles = np.stack([sim.volume[z:z + tile, y:y + tile, x:x + tile] for z, y, x in starts])
        x = normalise(torch.from_numpy(tiles).unsqueeze(1), meta.normalisation)
        with torch.no_grad():
            logits = torch.cat([model(x[i:i + 64]) for i in range(0, len(x), 64)])
        pred.append(logits.argmax(1).numpy())
        truth.append(tile_truth(sim.table, starts, tile, stride, background))
    t, p = np.concatenate(truth), np.concatenate(pred)
    print(f"model {args.model}  SNR {args.snr}  tomograms {len(args.seeds)} x {args.shape}  tiles {len(t)}")
    print(f"{'class':<12} {'tiles':>6} {'recall':>7} {'precision':>10}")
    for k, name in enumerate(meta.classes):
        n = int((t == k).sum())
        recall = float((p[t == k] == k).mean()) if n else float("nan")
        precision = float((t[p == k] == k).mean()) if (p == k).any() else float("nan")
        print(f"{name:<12} {n:6d} {recall:7.3f} {precision:10.3f}")
    print(f"tile accuracy {float((t == p).mean()):.3f} "
          f"(always-background would score {float((t == background).mean()):.3f})")


if __name__ == "__main__":
    main()
