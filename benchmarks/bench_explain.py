"""Benchmark of ``tomocam explain``: tiles/s of bare forward inference vs the whole explain run on the same
tomogram, time and peak memory for a tomogram and one 8x larger, and 1 vs 2 local workers.

Each explain run is a child process (so its peak RSS is its own). Prints a table. Example:

    .venv/bin/python benchmarks/bench_explain.py --shape 64 128 128 --model cnn2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_inputs(folder: Path, shape: tuple[int, int, int], arch: str) -> tuple[Path, Path]:
    """A noise tomogram with blobs, and an untrained paper-sized model (23 classes, 40^3 input)."""
    import mrcfile
    import torch

    import tomocam
    from tomocam.models import build_model

    torch.manual_seed(0)
    model = tomocam.save_checkpoint(build_model(arch), folder / f"{arch}.pt", classes=[f"c{i}" for i in range(23)],
                                    input_size=40, voxel_size=10.0)
    rng = np.random.default_rng(0)
    mrc = folder / f"tomo_{'x'.join(map(str, shape))}.mrc"
    with mrcfile.new(mrc, overwrite=True) as f:
        f.set_data(rng.standard_normal(shape).astype(np.float32))
        f.voxel_size = 10.0
    return mrc, model


def forward_only(mrc: Path, model_path: Path, batch: int) -> float:
    """Tiles/s of bare forward inference on every tile of the explain grid (tiles cut in advance)."""
    import torch

    from tomocam.models import load_checkpoint, normalise
    from tomocam.read import open_tomogram
    from tomocam.tile import TileGrid, cut_tiles, make_blocks, read_slab

    model, meta = load_checkpoint(model_path)
    tomo = open_tomogram(mrc)
    grid = TileGrid.build(tomo.shape, meta.input_size)
    (block,) = make_blocks(grid, max(grid.grid_shape))
    slab, origin = read_slab(tomo.array(), grid, block)
    tiles = torch.from_numpy(cut_tiles(slab, origin, grid, block.indices())).unsqueeze(1)
    t0 = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(tiles), batch):
            model(normalise(tiles[i : i + batch], meta.normalisation))
    return len(tiles) / (time.perf_counter() - t0)


def child(args: argparse.Namespace) -> None:
    """One explain run; prints JSON with seconds per phase and peak RSS (MiB)."""
    from tomocam.pipeline import ExplainConfig, explain_tomogram

    config = ExplainConfig(tomogram=args.mrc, output=args.out, model=args.model, batch_size=args.batch,
                           overwrite=True, methods=("respond",))
    summary = explain_tomogram(config, workers=args.workers)
    if args.forward:
        fwd = forward_only(Path(args.mrc), Path(args.model), args.batch)
    else:
        fwd = None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"tiles": summary.n_tiles, "seconds": summary.seconds, "peak_mib": max(peak, kids), "forward": fwd}))


def run_child(mrc: Path, model: Path, out: Path, workers: int, batch: int, forward: bool) -> dict:
    cmd = [sys.executable, __file__, "--child", "--mrc", str(mrc), "--model-path", str(model), "--out", str(out),
           "--workers", str(workers), "--batch", str(batch)] + (["--forward"] if forward else [])
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shape", type=int, nargs=3, default=[64, 128, 128])
    parser.add_argument("--arch", default="cnn2")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mrc", help=argparse.SUPPRESS)
    parser.add_argument("--model-path", dest="model", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--forward", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        small = tuple(args.shape)
        large = tuple(2 * s for s in small)
        rows = []
        for shape, workers, forward in ((small, 1, True), (large, 1, True), (small, 2, False), (large, 2, False)):
            mrc, model = make_inputs(tmp, shape, args.arch)
            r = run_child(mrc, model, tmp / "out.zarr", workers, args.batch, forward)
            rows.append((shape, workers, r))
        print(f"\nexplain benchmark: {args.arch} (23 classes, 40^3 tiles, stride 20), Respond-CAM, batch {args.batch}, "
              f"{os.cpu_count()} CPU cores, device cpu")
        head = (f"{'tomogram (z,y,x)':>18} {'workers':>7} {'tiles':>6} {'fwd tiles/s':>11} {'phase1 t/s':>10} "
                f"{'ratio':>5} {'total s':>8} {'explain t/s':>11} {'peak MiB':>8}")
        print(head)
        print("-" * len(head))
        for shape, workers, r in rows:
            s = r["seconds"]
            p1 = r["tiles"] / s["phase1"]
            fwd = r["forward"]
            ratio = f"{p1 / fwd:.2f}" if fwd else "-"
            print(f"{str(shape):>18} {workers:>7} {r['tiles']:>6} {fwd or float('nan'):>11.1f} {p1:>10.1f} {ratio:>5} "
                  f"{s['total']:>8.1f} {r['tiles'] / s['total']:>11.1f} {r['peak_mib']:>8.0f}")


if __name__ == "__main__":
    main()
