"""Benchmark: render, picks and export on a large store read only what they need, in bounded memory.

Builds a store of ``--shape`` voxels and ``--classes`` classes (box by box: level 0, the label image and every
pyramid level of the box, with the pure functions phase 2 uses), then times each reader and records the
peak resident memory of a fresh process per reader, against the size of one level-0 heatmap:

- render overview at 256 px (pyramid level chosen from the output size) vs forced to level 0;
- picks at level 0 and level 1;
- MRC export of one class at level 0 (streamed into a memory-mapped file);
- "open-only", the baseline: the imports and an opened store, nothing read.

Usage::

    python benchmarks/bench_readers.py [--shape 128,512,512] [--classes 3] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def build(path: Path, shape: tuple[int, int, int], k: int, chunk: int = 64) -> None:
    """A complete store with Gaussian-ish particles every 32 voxels, written one chunk at a time."""
    import mrcfile
    import numpy as np
    import zarr

    from tomocam.store.create import create_root
    from tomocam.store.layout import n_levels_for
    from tomocam.store.manifest import record_whole, write_completion_marker
    from tomocam.store.ome import image_metadata, label_metadata
    from tomocam.store.pyramid import heatmap_pyramid, label_block, label_pyramid

    vs = (10.0, 10.0, 10.0)
    tomo = path.with_suffix(".mrc")
    with mrcfile.new_mmap(tomo, shape=shape, mrc_mode=2, overwrite=True) as mrc:
        for z0 in range(0, shape[0], chunk):
            mrc.data[z0 : z0 + chunk] = np.random.default_rng(z0).standard_normal(
                (min(chunk, shape[0] - z0), *shape[1:])).astype(np.float32)
        mrc.voxel_size = 10.0
    levels = n_levels_for(shape, chunk)
    classes = [f"class{i}" for i in range(k)]
    root = create_root(str(path), {"version": "bench", "classes": classes, "methods": ["respond"], "levels": levels,
                                   "input": {"path": str(tomo), "shape": list(shape), "voxel_size": list(vs)}})
    group = root.create_group("respond")
    labels = root.create_group("labels").create_group("segmentation")
    heat_levels, label_levels = [], []
    for level in range(levels):
        level_shape = tuple(n >> level for n in shape)
        heat_levels.append(group.create_array(str(level), shape=(k, *level_shape), chunks=(1, chunk, chunk, chunk),
                                              dtype="float32", fill_value=0.0))
        label_levels.append(labels.create_array(str(level), shape=level_shape, chunks=(chunk,) * 3, dtype="uint16",
                                                fill_value=0))
    g = np.indices((chunk,) * 3, dtype=np.float32)
    # One box of chunk^3 voxels at a time (its start a multiple of 2**(levels - 1)): level 0 of every class, then
    # every pyramid level of the box from memory, as phase 2 does.
    for z0 in range(0, shape[0], chunk):
        for y0 in range(0, shape[1], chunk):
            for x0 in range(0, shape[2], chunk):
                lo = (z0, y0, x0)
                box = tuple(min(chunk, n - a) for a, n in zip(lo, shape))
                block = np.zeros((k, chunk, chunk, chunk), np.float32)
                for c in range(k):
                    # one blob per 32^3 cell, class c owns cells with (cell index sum) % k == c
                    for oz in (0, 32):
                        for oy in (0, 32):
                            for ox in (0, 32):
                                cell = (z0 + oz) // 32 + (y0 + oy) // 32 + (x0 + ox) // 32
                                amp = 1.0 if cell % k == c else 0.2
                                d2 = (g[0] - oz - 16) ** 2 + (g[1] - oy - 16) ** 2 + (g[2] - ox - 16) ** 2
                                block[c] += amp * np.exp(-d2 / 32)
                block = block[:, : box[0], : box[1], : box[2]]
                pyramids = zip(heat_levels, heatmap_pyramid(block, levels), label_levels,
                               label_pyramid(label_block(block, 0.5, ()), levels))
                for level, (heat_out, heat, label_out, lab) in enumerate(pyramids):
                    part = tuple(slice(a >> level, (a >> level) + (n >> level)) for a, n in zip(lo, box))
                    heat_out[(slice(None), *part)] = heat
                    label_out[part] = lab
    group.attrs["ome"] = image_metadata("respond", vs, levels, classes, (-1.0, 1.0))
    labels.attrs["ome"] = label_metadata("segmentation", vs, levels, classes, "../../respond")
    record_whole(str(path), *[name for name, node in root.members(max_depth=None) if isinstance(node, zarr.Array)])
    write_completion_marker(str(path))


def child(task: str, store_path: str, out: str) -> dict:
    """Run one reader in this (fresh) process; return its time and peak memory."""
    from tomocam.picking import pick_store
    from tomocam.render.tomogram import render_store
    from tomocam.store import open_store
    from tomocam.write.export_mrc import export_store

    store = open_store(store_path)
    start = time.perf_counter()
    if task == "open-only":  # baseline: imports and an opened store
        pass
    elif task == "render-auto":
        render_store(store, classes=store.classes[:2], pixels=256).savefig(Path(out) / "a.png", dpi=60)
    elif task == "render-level0":
        render_store(store, classes=store.classes[:2], pixels=10**6).savefig(Path(out) / "b.png", dpi=60)
    elif task.startswith("picks-level"):
        n = len(pick_store(store, threshold=0.5, radius=100.0, level=int(task[-1])))
        print(f"  ({n} picks)", file=sys.stderr)
    elif task == "export-one-class":
        export_store(store, Path(out), classes=store.classes[:1], labels=False, overwrite=True)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", default="128,512,512")
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--child", nargs=3, metavar=("TASK", "STORE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    shape = tuple(int(v) for v in args.shape.split(","))
    work = args.workdir or Path(tempfile.mkdtemp(prefix="tomocam-bench-readers-"))
    work.mkdir(parents=True, exist_ok=True)
    store = work / "big.zarr"
    t = time.perf_counter()
    build(store, shape, args.classes)
    one_class_mb = 4 * shape[0] * shape[1] * shape[2] / 2**20
    print(f"store {shape} x {args.classes} classes built in {time.perf_counter() - t:.1f} s; "
          f"one level-0 class heatmap = {one_class_mb:.0f} MiB, all classes = {args.classes * one_class_mb:.0f} MiB")
    print(f"{'reader':<18} {'seconds':>8} {'peak RSS MiB':>13}")
    for task in ("open-only", "render-auto", "render-level0", "picks-level1", "picks-level0", "export-one-class"):
        res = subprocess.run([sys.executable, __file__, "--child", task, str(store), str(work)],
                             capture_output=True, text=True, check=True)
        row = json.loads(res.stdout.strip().splitlines()[-1])
        note = res.stderr.strip()
        print(f"{task:<18} {row['seconds']:>8.2f} {row['peak_rss_mb']:>13.0f}{note and '  ' + note}")


if __name__ == "__main__":
    main()
