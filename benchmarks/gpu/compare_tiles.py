"""Compare the per-tile results (``tiles/``) of two explain stores of the same tomogram and model, e.g. the GPU
suite's demo against the same demo run on a CPU: is what CUDA computes what the CPU computes?

For every array of ``tiles/`` present in both (``logits`` and each method's feature-resolution maps) prints the
largest absolute difference relative to the array's largest magnitude, and the fraction of tiles whose top class
agrees. Exits 1 when an array differs by more than ``--tolerance`` (relative; default 1e-3: TF32 convolutions on
the GPU keep about 3 decimal digits). Usage::

    python benchmarks/gpu/compare_tiles.py GPU.zarr CPU.zarr [--tolerance 1e-3]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import zarr


def compare(a_path: str, b_path: str) -> tuple[dict[str, float], float]:
    """``({array: max |a - b| / max |b|}, fraction of tiles with the same top logit)``."""
    a, b = zarr.open_group(a_path, mode="r")["tiles"], zarr.open_group(b_path, mode="r")["tiles"]
    names = sorted(set(a.array_keys()) & set(b.array_keys()) - {"done"})
    diffs = {}
    for name in names:
        x, y = np.asarray(a[name][...], dtype=np.float64), np.asarray(b[name][...], dtype=np.float64)
        if x.shape != y.shape:
            raise SystemExit(f"tiles/{name}: shapes differ, {x.shape} vs {y.shape}: not the same run")
        diffs[name] = float(np.abs(x - y).max() / max(np.abs(y).max(), 1e-30))
    la = np.asarray(a["logits"][...]).reshape(-1, a["logits"].shape[-1])  # (tiles, classes)
    lb = np.asarray(b["logits"][...]).reshape(-1, b["logits"].shape[-1])
    agree = float((la.argmax(1) == lb.argmax(1)).mean())
    return diffs, agree


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--tolerance", type=float, default=1e-3)
    args = parser.parse_args()
    diffs, agree = compare(args.a, args.b)
    print("| array | max abs difference / max abs |\n|---|---|")
    for name, d in diffs.items():
        print(f"| tiles/{name} | {d:.2e} |")
    print(f"\ntop class agrees on {agree:.1%} of tiles")
    return int(any(d > args.tolerance for d in diffs.values()))


if __name__ == "__main__":
    sys.exit(main())
